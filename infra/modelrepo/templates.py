"""Where NVIDIA's templates are found when no Triton image is at hand (the stand-in engine, tests, ``./dev``).

ONE setting: ``MODELSVC_TRITON_TEMPLATES``, default ``<repo root>/../shared/fixtures/triton-templates`` (the fixture
tree CI keeps beside every checkout, which records where each file comes from; docs/triton-contract.md). It may
instead point at a release's ``all_models`` (e.g. a copy of the Triton image's ``/app/all_models``), which is then
the pinned release.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RepoError

ENV = "MODELSVC_TRITON_TEMPLATES"
DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "triton-templates"
# Releases in the fixture tree (directory of each release's all_models).
PINNED = "trtllm-1.0.0/triton_backend/all_models"  # TensorRT-LLM 1.0.0 = nvcr.io/nvidia/tritonserver:25.10-trtllm
RELEASES = {
    "trtllm-1.0.0": PINNED,
    "trtllm-1.2.x-stored": "trtllm-1.2.x-stored/triton_backend/all_models",
    "tensorrtllm_backend-r25.05": "tensorrtllm_backend-r25.05/all_models",
}
DIFFUSION = "tutorials-r25.10/Popular_Models_Guide/StableDiffusion/diffusion-models"


def root() -> Path:
    path = Path(os.environ.get(ENV) or DEFAULT)
    if not path.is_dir():
        raise RepoError(
            str(path),
            f"NVIDIA's Triton model templates are not here. Set {ENV} to the fixture tree "
            "(../shared/fixtures/triton-templates beside the checkout; docs/triton-contract.md) or to a copy of the "
            "Triton TensorRT-LLM image's /app/all_models",
        )
    return path


def _is_all_models(path: Path) -> bool:
    return (path / "inflight_batcher_llm").is_dir()


def release(name: str = "trtllm-1.0.0") -> Path:
    """A release's all_models directory."""
    base = root()
    if _is_all_models(base):
        if name != "trtllm-1.0.0":
            raise RepoError(str(base), f"{ENV} points at one all_models directory; release {name} is not in it")
        return base
    path = base / RELEASES[name]
    if not path.is_dir():
        raise RepoError(str(path), f"release {name} is missing from the templates at {base} ({ENV})")
    return path


def for_task(task: str, name: str = "trtllm-1.0.0") -> Path:
    """The templates directory a task's recipe reads: the release's all_models, or the tutorial's diffusion
    models for image-generation."""
    if task != "image-generation":
        return release(name)
    path = root() / DIFFUSION
    if not path.is_dir():
        raise RepoError(str(path), f"the Triton tutorials' Stable Diffusion configs are missing ({ENV})")
    return path
