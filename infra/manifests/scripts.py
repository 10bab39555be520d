"""The scripts the build Job and the Triton init container run, read from infra/scripts/ (real files: shellcheck and
py_compile check them, tests/infra/test_s3_scripts.py runs the S3 ones against a local S3 with the real `aws` CLI).

They run in images that do not have our package (aws-cli, NVIDIA's Triton image), so the manifests carry their text
(`sh -c TEXT` / `python3 -c TEXT`); the model-repository step runs in the gateway image and calls our module.
"""

from __future__ import annotations

from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"


def _read(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text(encoding="utf-8")


def _with_cache_lib(name: str) -> str:
    return _read("cache_lib.sh") + "\n" + _read(name)


FETCH_CHECKPOINT = _with_cache_lib("fetch_checkpoint.sh")  # build Job, step 1 (aws-cli image)
UPLOAD_ENGINE = _with_cache_lib("upload_engine.sh")  # build Job, last step (aws-cli image)
FETCH_ENGINE = _with_cache_lib("fetch_engine.sh")  # Triton pod init container (aws-cli image)
BUILD_ENGINE = _read("build_engine.py")  # build Job, GPU step (NVIDIA's image)

# Build Job, model-repository step (gateway image): infra.modelrepo fills NVIDIA's templates of the serving image
# (copied to /work/templates by the step before); the checkpoint's tokenizer_config.json carries its chat template.
MODEL_REPO = """set -eu
if [ -e /work/cached ]; then exit 0; fi
printf '%s' "$MODEL_REPO_SPEC" > /work/spec.json
set -- --spec /work/spec.json --templates /work/templates --out /work/out/repo
if [ -f /work/checkpoint/tokenizer_config.json ]; then
  set -- "$@" --tokenizer-config /work/checkpoint/tokenizer_config.json
fi
exec python -m infra.modelrepo "$@"
"""


def copy_templates(templates_dir: str) -> str:
    """Build Job step (serving image): the image's own templates, so they match its release exactly."""
    return f'set -eu\nif [ -e /work/cached ]; then exit 0; fi\ncp -R "{templates_dir}/." /work/templates/\n'
