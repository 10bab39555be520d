"""Small catalogs for tests: a valid base and a helper that swaps lines in and out of it."""

import hashlib

KEY_A = "sk-ms-test-key-owner-a-000000000000000000"
KEY_B = "sk-ms-test-key-owner-b-000000000000000000"
DIGEST_A = hashlib.sha256(KEY_A.encode()).hexdigest()
DIGEST_B = hashlib.sha256(KEY_B.encode()).hexdigest()

VALID = f"""\
version: 1
gateway:
  public_url: http://127.0.0.1:8080/v1
  replicas: 1
pools:
  h100:
    instance_type: p5.48xlarge
    gpus_per_node: 8
    max_nodes: 2
models:
  chat-8b:
    task: chat
    source: s3://models/chat-8b
    gpus: 1
    max_input_tokens: 2048
    max_output_tokens: 256
  chat-70b:
    source: s3://models/chat-70b
    gpus: 4
keys:
  - id: k-a
    owner: u-a
    sha256: {DIGEST_A}
  - id: k-b
    owner: u-b
    sha256: {DIGEST_B}
services:
  - name: Test
    access_name: u-a/test
    id: ms-000000000001
    model: chat-8b
    instances: 1
    pool: h100
  - name: Big
    access_name: u-b/big
    id: ms-000000000002
    model: chat-70b
    instances: 2
    pool: h100
"""


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)
