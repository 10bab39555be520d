"""Shared by every test directory: the repository root on sys.path, and small catalogs to build from."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))

from modelsvc.catalog import Catalog, load, loads  # noqa: E402  (after the path is set)

SMALL = """\
version: 1
gateway:
  public_url: https://models.example.com/v1
  replicas: 3
pools:
  h100:
    instance_type: p5.48xlarge
    gpus_per_node: 8
    max_nodes: 4
  l4:
    instance_type: g6.12xlarge
    gpus_per_node: 4
    max_nodes: 6
    gpu_type: l4
  idle:
    instance_type: g6.xlarge
    gpus_per_node: 1
    max_nodes: 2
models:
  small:
    source: s3://example-models/small
    gpus: 1
  big:
    source: s3://example-models/big
    gpus: 4
    dtype: fp8
  remote:
    backend: openai
    upstream: http://vllm.example:8000/v1
keys:
  - id: k-alice
    owner: alice
    sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
  - id: k-bob
    owner: bob
    sha256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
services:
  - name: A
    access_name: alice/chat
    id: ms-000000000001
    model: small
    instances: 3
    pool: h100
  - name: B
    access_name: alice/big
    id: ms-000000000002
    model: big
    instances: 2
    pool: h100
  - name: C
    access_name: bob/chat
    id: ms-000000000003
    model: small
    instances: 2
    pool: l4
  - name: D
    access_name: bob/remote
    id: ms-000000000004
    model: remote
"""


def _make_catalog(text: str = SMALL) -> Catalog:
    return loads(text)


@pytest.fixture
def make_catalog():
    """make_catalog(text=SMALL) → Catalog; tests edit SMALL with str.replace."""
    return _make_catalog


@pytest.fixture
def small_text() -> str:
    return SMALL


@pytest.fixture
def small() -> Catalog:
    return _make_catalog()


@pytest.fixture
def example() -> Catalog:
    return load(str(ROOT / "services.yaml"))
