"""Our container images: what each is built from, its identity, and what a real stack must reference.

Standard library only: `.github/workflows/images.yml` runs `python3 -m infra.images tag NAME` before anything is
installed, to name what it builds.

* gateway: the repository's Dockerfile; one per commit (`sha-<commit>`, and `v<version>` on a release tag).
* build-tools: the build Job's model-repository step (infra/docker/build-tools.Dockerfile). Its tag is a hash of
  exactly the files it contains, so it changes only when they do: a gateway release never changes a build Job.
* vision: NVIDIA's Triton TensorRT-LLM image with the per-model requirements of its multimodal guide
  (infra/docker/vision.Dockerfile), tagged by the Triton release and that Dockerfile.
* diffusion: the Triton tutorials' Stable Diffusion image, built with NVIDIA's own recipe (build.sh → docker/Dockerfile)
  at a pinned commit of triton-inference-server/tutorials; tagged by that commit and its base image.

A real stack names each by digest (`…@sha256:<64 hex>`), the one the workflow pushed: a tag can move, a digest is
what was reviewed. `render` without a stack writes the local names `docker build` gives them (no registry).
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUILD_TOOLS_INPUTS = (
    "infra/docker/build-tools.Dockerfile",
    "requirements/build-tools.lock",
    "modelsvc/__init__.py",
    "modelsvc/catalog",
    "infra/__init__.py",
    "infra/modelrepo",
)
VISION_DOCKERFILE = "infra/docker/vision.Dockerfile"
# NVIDIA's documented recipe (Popular_Models_Guide/StableDiffusion/build.sh: BASE_IMAGE_TAG_DIFFUSION=24.08-py3,
# docker/Dockerfile), at triton-inference-server/tutorials branch r25.10, commit:
TUTORIALS_REPO = "triton-inference-server/tutorials"
TUTORIALS_COMMIT = "2a0c7e0b669c9484f337972cf2b2c065b47996a1"
DIFFUSION_CONTEXT = "Popular_Models_Guide/StableDiffusion"
DIFFUSION_BASE_TAG = "24.08-py3"

NAMES = {
    "gateway": "modelsvc-gateway",
    "build-tools": "modelsvc-build",
    "vision": "modelsvc-trtllm-vision",
    "diffusion": "tritonserver-diffusion",
}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
PLACEHOLDER = re.compile(r"(^|[./@:])(example|placeholder|changeme|owner|your-?org)([./:-]|$)|[<>{}$ ]", re.I)


def _files(path: Path):
    if not path.exists():  # an installed package has no Dockerfiles: the tag then only names what is there
        return
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    else:
        yield path


def content_tag(inputs: tuple[str, ...], extra: str = "", root: Path = ROOT) -> str:
    """16 hex digits of a SHA-256 over each input file's path and bytes (directories: every file under them)."""
    h = hashlib.sha256(extra.encode())
    for name in inputs:
        for f in _files(root / name):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def tag(name: str, triton_version: str = "25.10") -> str:
    if name == "build-tools":
        return content_tag(BUILD_TOOLS_INPUTS)
    if name == "vision":
        return f"{triton_version}-{content_tag((VISION_DOCKERFILE,), extra=triton_version)[:12]}"
    if name == "diffusion":
        return f"{DIFFUSION_BASE_TAG.removesuffix('-py3')}-tutorials-{TUTORIALS_COMMIT[:12]}"
    raise ValueError(f"no content tag for image {name!r} (one of build-tools, vision, diffusion)")


def local(name: str, version: str = "dev", triton_version: str = "25.10") -> str:
    """The name a workstation's `docker build` gives the image (what `render` writes without a stack): the package
    version, or the Triton release and recipe it is built on. Stable across commits, unlike the content tags."""
    suffix = {"gateway": version, "build-tools": version, "vision": triton_version, "diffusion": tag("diffusion")}
    return f"{NAMES[name]}:{suffix[name]}"


def problems(ref: str | None, key: str) -> list[str]:
    """Why an image reference cannot be deployed on a real stack (empty: it can), as one sentence."""
    hint = f"set modelsvc:{key} to the digest .github/workflows/images.yml pushed (its job summary prints it)"
    if not ref:
        return [f"modelsvc:{key} is not set: {hint}"]
    why = []
    registry = ref.split("/", 1)[0]
    if "/" not in ref or not ("." in registry or ":" in registry or registry == "localhost"):
        why.append("names no registry (a local build)")
    if PLACEHOLDER.search(ref.split("@")[0]):
        why.append("is a placeholder")
    if not DIGEST.search(ref):
        why.append("is not pinned by digest (…@sha256:<64 hex>; a tag can move)")
    return [f"modelsvc:{key} {ref!r} {', '.join(why)}: {hint}"] if why else []


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "tag":
        print(tag(argv[1], *argv[2:3]))
        return 0
    print("usage: python3 -m infra.images tag build-tools|vision|diffusion [TRITON_VERSION]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
