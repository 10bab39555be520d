"""API keys: strong random tokens of which only the SHA-256 digest is ever stored."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sk-ms-"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_service_id() -> str:
    return "ms-" + secrets.token_hex(6)


def yaml_entry(key_id: str, owner: str, key: str) -> str:
    return f"  - id: {key_id}\n    owner: {owner}\n    sha256: {digest(key)}\n"
