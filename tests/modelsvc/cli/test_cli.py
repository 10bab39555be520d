"""The modelsvc command as a user runs it: subprocess, exit codes, output."""

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelsvc.catalog import loads
from tests.conftest import ROOT
from tests.modelsvc.catalog.samples import VALID, replace

pytestmark = pytest.mark.e2e  # every test here runs the CLI as a subprocess

MODELSVC = str(Path(sys.executable).parent / "modelsvc")


def run(*args, cwd=ROOT):
    return subprocess.run([MODELSVC, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "services.yaml"
    path.write_text("# our services\n" + VALID.replace("    instances: 1\n", "    instances: 1  # keep small\n"))
    return path


def test_validate_example_passes_with_summary():
    r = run("validate")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("services.yaml: valid — 5 services (7 instances, 12 GPUs) on 2 pools")
    assert r.stdout.rstrip().endswith("; up to 20 GPUs with autoscaling")  # Support Bot: 2 → 4 × 4 GPUs


def test_validate_lists_every_problem_and_exits_1(tmp_path):
    bad = tmp_path / "services.yaml"
    bad.write_text(replace(replace(VALID, "  replicas: 1\n", "  replicas: 0\n"), "    task: chat\n", "    tsk: chat\n"))
    r = run("validate", str(bad))
    assert r.returncode == 1
    assert f"{bad}:4:13: 'replicas' is 0, must be >= 1" in r.stderr
    assert f"{bad}:12:5: unknown field 'tsk' — did you mean 'task'?" in r.stderr
    assert r.stderr.strip().endswith("2 problem(s)")


def test_validate_github_format_prints_annotations(tmp_path):
    bad = tmp_path / "services.yaml"
    bad.write_text(replace(VALID, "  replicas: 1\n", "  replicas: 0\n"))
    r = run("validate", str(bad), "--format", "github")
    assert r.returncode == 1
    assert (
        f"::error file={bad},line=4,col=13,title=services.yaml::'replicas' is 0, must be >= 1 — use a value >= 1"
        in r.stdout
    )


def test_validate_missing_file():
    r = run("validate", "/nonexistent/services.yaml")
    assert r.returncode == 1
    assert "/nonexistent/services.yaml:1:1: cannot read the file" in r.stderr


def test_keys_new_prints_key_once_and_a_matching_entry():
    r = run("keys", "new", "--owner", "u-a", "--id", "k-a-laptop")
    assert r.returncode == 0
    key, *entry = r.stdout.strip().splitlines()
    assert key.startswith("sk-ms-") and len(key) >= 40
    assert r.stdout.count(key) == 1  # shown once, never in the entry
    assert entry == ["  - id: k-a-laptop", "    owner: u-a", f"    sha256: {hashlib.sha256(key.encode()).hexdigest()}"]
    c = loads(replace(VALID, "keys:\n", "keys:\n" + "\n".join(entry) + "\n"))
    assert c.key_for_digest(hashlib.sha256(key.encode()).hexdigest()).id == "k-a-laptop"
    assert run("keys", "new", "--owner", "u-a").stdout.splitlines()[0] != key


def test_scale_edits_in_place_keeping_comments(catalog_file):
    before = catalog_file.read_text()
    r = run("scale", "u-a/test", "--add", "2", "--file", str(catalog_file))
    assert r.returncode == 0, r.stderr
    after = catalog_file.read_text()
    assert after == before.replace("    instances: 1  # keep small\n", "    instances: 3  # keep small\n")
    assert run("scale", "u-a/test", "--to", "1", "--file", str(catalog_file)).returncode == 0
    assert catalog_file.read_text() == before


def test_scale_refuses_what_would_make_the_file_invalid(catalog_file):
    before = catalog_file.read_text()
    r = run("scale", "u-b/big", "--to", "9", "--file", str(catalog_file))
    assert r.returncode == 1
    assert "refusing the change" in r.stderr and "pool 'h100' needs" in r.stderr
    assert catalog_file.read_text() == before
    r = run("scale", "u-a/nope", "--to", "1", "--file", str(catalog_file))
    assert r.returncode == 1 and "no service with access name 'u-a/nope'" in r.stderr
    r = run("scale", "u-a/test", "--add", "-5", "--file", str(catalog_file))
    assert r.returncode == 1 and "cannot go to -4" in r.stderr


def test_delete_needs_the_exact_access_name(catalog_file):
    before = catalog_file.read_text()
    r = run("delete", "u-b/big", "--confirm", "u-b/bi", "--file", str(catalog_file))
    assert r.returncode == 1 and "--confirm u-b/big" in r.stderr
    assert catalog_file.read_text() == before
    r = run("delete", "u-b/big", "--confirm", "u-b/big", "--file", str(catalog_file))
    assert r.returncode == 0, r.stderr
    after = catalog_file.read_text()
    assert "u-b/big" not in after and "# our services" in after and "# keep small" in after
    assert [s.access_name for s in loads(after).services] == ["u-a/test"]


def test_examples_are_filled_with_url_and_access_name():
    r = run("examples", "u-8105f7322477/test")
    assert r.returncode == 0
    assert "curl https://models.example.com/v1/chat/completions" in r.stdout
    assert '"model": "u-8105f7322477/test"' in r.stdout
    assert 'OpenAI(base_url="https://models.example.com/v1"' in r.stdout
    assert 'new OpenAI({ baseURL: "https://models.example.com/v1"' in r.stdout
    images = run("examples", "u-3f9a2c7e51d0/product-images")
    assert "/v1/images/generations" in images.stdout and "client.images.generate(" in images.stdout
    r = run("examples", "u-x/none")
    assert r.returncode == 1 and "no service with access name 'u-x/none'" in r.stderr


def test_schema_check_passes_on_the_committed_schema():
    assert run("schema", "--check").returncode == 0


# -- review ---------------------------------------------------------------------------------------------------------
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_review_needs_a_confirmation_for_a_rename(tmp_path):
    base = write(tmp_path, "base.yaml", VALID)
    head = write(tmp_path, "head.yaml", replace(VALID, "access_name: u-a/test", "access_name: u-a/test2"))
    r = run("review", base, head)
    assert r.returncode == 1
    assert "renamed `u-a/test` → `u-a/test2` (`ms-000000000001`): callers of the old name get 404" in r.stdout
    [line] = re.findall(r"`Confirm-Change: (u-a/test@[0-9a-f]{10})`", r.stdout)
    assert run("review", base, head, "--confirm-change", "u-a/test").returncode == 2, "a bare name binds nothing"
    r = run("review", base, head, "--confirm-change", line)
    assert r.returncode == 0 and "passes with confirmed changes callers will notice" in r.stdout


def test_review_blocks_unconfirmed_deletion(tmp_path):
    base = write(tmp_path, "base.yaml", VALID)
    head_text = VALID[: VALID.index("  - name: Big")]
    head = write(tmp_path, "head.yaml", head_text)
    r = run("review", base, head)
    assert r.returncode == 1
    assert "removed `u-b/big` (`ms-000000000002`): callers get 404 — **not confirmed**" in r.stdout
    [token] = re.findall(r"`Confirm-Delete: (u-b/big@[0-9a-f]{10})`", r.stdout)
    r = run("review", base, head, "--confirm-delete", token)
    assert r.returncode == 0
    assert "removed `u-b/big` (`ms-000000000002`): callers get 404 — confirmed" in r.stdout
    assert "| `h100` | 3 → 1 | 9 → 1 (-8) | 2 → 1 | 2 |" in r.stdout


def test_review_shows_gpu_delta_model_change_and_keys(tmp_path):
    head_text = replace(VALID, "    instances: 2\n", "    instances: 1\n")
    head_text = replace(head_text, "    model: chat-8b\n", "    model: chat-70b\n")
    head_text = replace(head_text, "  - id: k-b\n", "  - id: k-b2\n")
    out = str(tmp_path / "review.md")
    r = run(
        "review", write(tmp_path, "b.yaml", VALID), write(tmp_path, "h.yaml", head_text), "--quiet", "--output", out
    )
    assert r.returncode == 1 and r.stdout == "", "--quiet: the review goes to the file only"
    md = Path(out).read_text()
    assert "`u-b/big`: instances 2 → 1 (-1 instance(s), -4 GPU(s))" in md
    assert "`u-a/test`: model `chat-8b` → `chat-70b`: every caller gets answers from another model" in md
    assert "key `k-b` is now key `k-b2` (the same secret, same owner `u-b`)" in md
    assert md.startswith("<!-- modelsvc-review -->")
    tokens = re.findall(r"`Confirm-Change: ([a-z0-9/-]+@[0-9a-f]{10})`", md)
    assert sorted(t.split("@")[0] for t in tokens) == ["k-b", "u-a/test"]
    args = [a for t in tokens for a in ("--confirm-change", t)]
    r = run("review", write(tmp_path, "b.yaml", VALID), write(tmp_path, "h.yaml", head_text), *args)
    assert r.returncode == 0, r.stdout


def test_review_of_an_invalid_head_fails_with_located_errors(tmp_path):
    head = write(tmp_path, "services.yaml", replace(VALID, "  replicas: 1\n", "  replicas: 0\n"))
    r = run("review", write(tmp_path, "b.yaml", VALID), head)
    assert r.returncode == 1
    assert "the new services.yaml is invalid" in r.stdout and ":4:13: 'replicas' is 0" in r.stdout


def test_review_reads_git_revisions(tmp_path):
    git = shutil.which("git")
    env = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([git, "init", "-q", "-b", "main", str(tmp_path)], check=True)
    (tmp_path / "services.yaml").write_text(VALID)
    subprocess.run([git, *env, "-C", str(tmp_path), "commit", "-qam", "base", "--allow-empty"], check=True)
    subprocess.run([git, "-C", str(tmp_path), "add", "services.yaml"], check=True)
    subprocess.run([git, *env, "-C", str(tmp_path), "commit", "-qm", "add services"], check=True)
    (tmp_path / "services.yaml").write_text(replace(VALID, "    instances: 1\n", "    instances: 3\n"))
    subprocess.run([git, *env, "-C", str(tmp_path), "commit", "-qam", "scale"], check=True)
    r = run("review", "HEAD~1:services.yaml", "HEAD:services.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "`u-a/test`: instances 1 → 3 (+2 instance(s), +2 GPU(s))" in r.stdout
    r = run("review", "nope:services.yaml", "HEAD:services.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "bad revision 'nope'" in r.stderr


def test_render_writes_valid_manifests(tmp_path):
    import yaml

    r = run("render", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "out").glob("*.yaml"))
    assert len(files) >= 10 and "apply.sh" in r.stdout
    assert (tmp_path / "out" / "apply.sh").read_text().startswith("#!/bin/sh")
    kinds = {yaml.safe_load(f.read_text())["kind"] for f in files}
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Job"} <= kinds


# -- create ---------------------------------------------------------------------------------------------------------
def test_create_appends_a_service_with_a_fresh_id_and_prints_the_review(catalog_file):
    before = catalog_file.read_text()
    r = run(
        "create",
        "--name",
        "Support `v2`",
        "--owner",
        "u-a",
        "--model",
        "chat-8b",
        "--instances",
        "1",
        "--file",
        str(catalog_file),
    )
    assert r.returncode == 0, r.stderr
    after = catalog_file.read_text()
    assert after.startswith(before), "appended; comments and the rest of the file kept"
    c = loads(after)
    new = c.service("u-a/support-v2")
    assert new.name == "Support `v2`" and new.pool == "h100" and new.instances == 1 and new.model == "chat-8b"
    assert re.fullmatch(r"ms-[0-9a-f]{12}", new.id) and new.id not in {s.id for s in loads(before).services}
    assert (
        f"- ➕ new service `u-a/support-v2` (`` Support `v2` ``, `{new.id}`): `chat-8b`, 1 instance(s) on "
        "`h100`, +1 GPU(s)" in r.stdout
    )
    # 10 GPUs plus room to build the pool's largest (4-GPU) engine: still 2 nodes of 8
    assert "| `h100` | 3 → 4 | 9 → 10 (+1) | 2 → 2 | 2 |" in r.stdout and "**Result: ✅ passes**" in r.stdout
    again = run(
        "create",
        "--name",
        "Support v2",
        "--owner",
        "u-a",
        "--model",
        "chat-8b",
        "--access-name",
        "u-a/other",
        "--file",
        str(catalog_file),
    )
    assert again.returncode == 0, again.stderr
    assert len({s.id for s in loads(catalog_file.read_text()).services}) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--instances", "3", "--model", "chat-70b"], "pool 'h100' needs 4 nodes"),  # over capacity, with build room
        (["--owner", "u-nokey"], "owner 'u-nokey' has no API key"),
        (["--access-name", "u-a/test"], "duplicate access name 'u-a/test'"),
        (["--access-name", "u-b/x"], "the access name must start with the owner"),
        (["--name", "a\nb"], "'name' must not contain control characters"),
        (["--model", "nope"], "model 'nope' is not defined"),
    ],
)
def test_create_refuses_an_invalid_result_and_writes_nothing(catalog_file, args, message):
    before = catalog_file.read_text()
    base = {"--name": "New", "--owner": "u-a", "--model": "chat-8b"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    r = run("create", *[x for kv in base.items() for x in kv], "--file", str(catalog_file))
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert catalog_file.read_text() == before
    assert not Path(str(catalog_file) + ".tmp").exists()


def test_validate_never_echoes_a_pasted_key(tmp_path):
    from tests.modelsvc.catalog.samples import DIGEST_A, KEY_A

    bad = tmp_path / "services.yaml"
    bad.write_text(replace(VALID, DIGEST_A, KEY_A))
    for fmt in ("text", "github"):
        r = run("validate", str(bad), "--format", fmt)
        assert r.returncode == 1 and "sha256" in r.stdout + r.stderr
        assert KEY_A not in r.stdout + r.stderr and KEY_A[6:20] not in r.stdout + r.stderr
