from __future__ import annotations

import pytest

from infra.modelrepo import RepoError, templates


@pytest.fixture
def tpl():
    """NVIDIA's templates (MODELSVC_TRITON_TEMPLATES): fails with the explanation when they are missing."""

    def get(task: str = "chat", release: str = "trtllm-1.0.0"):
        try:
            return templates.for_task(task, release)
        except RepoError as e:
            pytest.fail(str(e))

    return get
