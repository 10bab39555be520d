"""`modelsvc validate` refuses what would fail in the cluster: sources outside the model store (builds are
offline), builds that do not fit the build Job's disk, a vision dtype the recipe does not build; and with --stack,
the stack file's placeholder or unpinned images, located in that file."""

from __future__ import annotations

from modelsvc.cli import main
from tests.conftest import ROOT, SMALL


def _validate(tmp_path, capsys, text: str, *stack: str) -> tuple[int, str]:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    args = ["validate", str(path)]
    for s in stack:
        args += ["--stack", s]
    rc = main(args)
    return rc, capsys.readouterr().err


def test_the_example_validates(capsys):
    assert main(["validate", str(ROOT / "services.yaml")]) == 0


def test_a_hub_id_source_is_refused_where_it_is(tmp_path, capsys):
    text = SMALL.replace("source: s3://example-models/small", "source: meta-llama/Llama-3.1-8B-Instruct")
    rc, err = _validate(tmp_path, capsys, text)
    assert rc == 1
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "small:")
    assert f"services.yaml:{line}:3: model 'small' cannot be deployed" in err
    assert "without internet" in err and "aws s3 sync" in err


def test_a_build_that_does_not_fit_the_disk_is_refused(tmp_path, capsys):
    big = SMALL.replace(
        "source: s3://example-models/big\n    gpus: 4\n    dtype: fp8",
        "source: s3://m/llama-3.1-70b\n    gpus: 4\n    dtype: bfloat16",
    )
    rc, err = _validate(tmp_path, capsys, big)
    assert rc == 1 and "model 'big'" in err and "GiB of disk" in err and "400Gi" in err and "fp8" in err
    fp8 = big.replace("dtype: bfloat16", "dtype: fp8")
    assert _validate(tmp_path, capsys, fp8)[0] == 0  # 140 GB checkpoint + 3 × 70 GB fits


def test_a_vision_model_in_fp8_is_refused(tmp_path, capsys):
    text = (
        (ROOT / "services.yaml")
        .read_text()
        .replace(
            "    task: vision-chat\n    source: s3://example-models/qwen2-vl-7b-instruct\n",
            "    task: vision-chat\n    source: s3://example-models/qwen2-vl-7b-instruct\n    dtype: fp8\n",
        )
    )
    rc, err = _validate(tmp_path, capsys, text)
    assert rc == 1 and "float16" in err and "qwen2-vl-7b-instruct" in err


def test_the_stack_file_must_pin_our_images(tmp_path, capsys):
    text = (ROOT / "services.yaml").read_text()
    rc, err = _validate(tmp_path, capsys, text, str(ROOT / "Pulumi.prod.yaml"))
    assert rc == 1  # the repository's stack files name no image yet: the images workflow has to run first
    for key in ("gatewayImage", "buildImage", "visionImage", "diffusionImage"):
        assert f"modelsvc:{key} is not set" in err
    stack = tmp_path / "Pulumi.prod.yaml"
    digests = {
        "gatewayImage": "ghcr.io/acme/modelsvc-gateway@sha256:" + "1" * 64,
        "buildImage": "ghcr.io/acme/modelsvc-build@sha256:" + "2" * 64,
        "visionImage": "ghcr.io/acme/modelsvc-trtllm-vision@sha256:" + "3" * 64,
        "diffusionImage": "ghcr.io/acme/tritonserver-diffusion:24.08",  # a tag only
    }
    body = "".join(f"  modelsvc:{k}: {v}\n" for k, v in digests.items())
    stack.write_text("config:\n  modelsvc:target: kubeconfig\n" + body)
    rc, err = _validate(tmp_path, capsys, text, str(stack))
    assert rc == 1 and f"{stack}:6:3: modelsvc:diffusionImage" in err and "not pinned by digest" in err
    assert "gatewayImage" not in err
    stack.write_text(stack.read_text().replace(digests["diffusionImage"], "ghcr.io/acme/d@sha256:" + "4" * 64))
    assert _validate(tmp_path, capsys, text, str(stack))[0] == 0


def test_a_stack_with_a_build_disk_no_node_has_is_refused(tmp_path, capsys):
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        "config:\n  modelsvc:target: eks\n  modelsvc:buildDisk: 900Gi\n  modelsvc:kubernetesVersion: '1.29'\n"
    )
    rc, err = _validate(tmp_path, capsys, (ROOT / "services.yaml").read_text(), str(stack))
    assert rc == 1 and "modelsvc:buildDisk 900Gi" in err and "1.29" in err
