"""The image workflow: builds on main and release tags, pushes to GHCR with provenance, names images exactly as the
stack checks them (infra/images.py), and rebuilds a content-tagged image only when its sources change."""

from __future__ import annotations

import pytest

from infra import images

from .workflow_steps import ROOT, run_step, step, workflow

WF = workflow("images.yml")


def test_triggers_and_serialisation():
    assert WF["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert "workflow_dispatch" in WF["on"] and "pull_request" not in WF["on"]  # no PR code ever holds packages: write
    assert WF["concurrency"]["cancel-in-progress"] is False


def _builds():
    for job_name, job in WF["jobs"].items():
        for s in job["steps"]:
            if s.get("uses", "").startswith("docker/build-push-action@"):
                yield job_name, job, s


def test_every_image_is_pushed_with_provenance_and_attested():
    builds = list(_builds())
    assert {j for j, _, _ in builds} == {"image", "diffusion"}
    for job_name, job, build in builds:
        assert build["with"]["push"] is True
        assert build["with"]["provenance"] == "mode=max" and build["with"]["sbom"] is True
        attest = [s for s in job["steps"] if s.get("uses", "").startswith("actions/attest-build-provenance@")]
        assert len(attest) == 1 and attest[0]["with"]["push-to-registry"] is True, job_name
        assert attest[0]["with"]["subject-digest"] == "${{ steps.build.outputs.digest }}"
        login = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/login-action@"))
        assert login["with"] == {
            "registry": "ghcr.io",
            "username": "${{ github.actor }}",
            "password": "${{ github.token }}",
        }
    matrix = {m["image"]: m for m in WF["jobs"]["image"]["strategy"]["matrix"]["include"]}
    assert set(matrix) == {"gateway", "build-tools", "vision"}
    for name, m in matrix.items():
        assert (ROOT / m["dockerfile"]).is_file(), name
        assert m["key"] in {"gatewayImage", "buildImage", "visionImage"}


@pytest.mark.parametrize("image", ["gateway", "build-tools", "vision"])
@pytest.mark.e2e
def test_the_image_names_are_the_ones_the_stack_expects(image, tmp_path):
    s = step(WF, "image", "name")
    out = tmp_path / "out"
    out.touch()
    ctx = {
        "matrix.image": image,
        "github.repository_owner": "Acme-Labs",
        "github.sha": "a" * 40,
        "github.ref_type": "tag",
        "github.ref_name": "v1.2.3",
    }
    done = run_step(s, ROOT, ctx, {"RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, done.stderr
    got = dict(line.split("=", 1) for line in out.read_text().splitlines())
    repo = f"ghcr.io/acme-labs/{images.NAMES[image]}"  # GHCR names are lowercase
    assert got["repo"] == repo
    if image == "gateway":
        assert got["tags"] == f"{repo}:sha-{'a' * 40},{repo}:v1.2.3"
    else:  # the content tag: what `python3 -m infra.images tag` computes from the checkout
        assert got["tags"] == got["first"] == f"{repo}:{images.tag(image)}"


@pytest.mark.e2e
def test_the_diffusion_image_is_nvidias_recipe_at_the_pinned_commit(tmp_path):
    s = step(WF, "diffusion", "name")
    out = tmp_path / "out"
    out.touch()
    done = run_step(
        s, ROOT, {"github.repository_owner": "acme"}, {"RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(out)}
    )
    assert done.returncode == 0, done.stderr
    got = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert got["ref"] == f"ghcr.io/acme/tritonserver-diffusion:{images.tag('diffusion')}"
    assert (got["tutorials"], got["commit"], got["base"]) == (
        "triton-inference-server/tutorials",
        images.TUTORIALS_COMMIT,
        "24.08-py3",  # build.sh: BASE_IMAGE_TAG_DIFFUSION
    )
    checkout = next(x for x in WF["jobs"]["diffusion"]["steps"] if x.get("with", {}).get("path") == "tutorials")
    assert checkout["with"]["ref"] == "${{ steps.name.outputs.commit }}"
    build = next(b for j, _, b in _builds() if j == "diffusion")
    assert "FRAMEWORK=DIFFUSION" in build["with"]["build-args"]
    assert build["with"]["file"] == "${{ steps.name.outputs.context }}/docker/Dockerfile"


def test_a_content_tagged_image_is_built_once():
    job = WF["jobs"]["image"]
    existing = step(WF, "image", "existing")
    assert "imagetools inspect" in existing["run"] and '"$IMAGE" != gateway' in existing["run"]
    build = next(s for s in job["steps"] if s.get("id") == "build")
    assert build["if"] == "${{ !steps.existing.outputs.digest }}"


def test_build_tools_tag_follows_exactly_its_sources(tmp_path):
    for name in images.BUILD_TOOLS_INPUTS:
        assert (ROOT / name).exists(), name
    (tmp_path / "infra" / "modelrepo").mkdir(parents=True)
    (tmp_path / "infra" / "modelrepo" / "a.py").write_text("x = 1\n")
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "app.py").write_text("y = 1\n")
    before = images.content_tag(("infra/modelrepo",), root=tmp_path)
    (tmp_path / "gateway" / "app.py").write_text("y = 2\n")  # a gateway change
    assert images.content_tag(("infra/modelrepo",), root=tmp_path) == before
    (tmp_path / "infra" / "modelrepo" / "a.py").write_text("x = 2\n")
    assert images.content_tag(("infra/modelrepo",), root=tmp_path) != before
