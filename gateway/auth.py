"""Bearer API keys: hash the presented token, look the digest up. Tokens are never stored, logged or compared raw."""

from __future__ import annotations

import hashlib
import hmac

from modelsvc.catalog import Key, Service

from .errors import AuthenticationError, ModelNotFound


class KeyRing:
    """Digest → key. Built once per catalog version (plus local-only demo keys)."""

    def __init__(self, keys):
        self._by_digest: dict[bytes, Key] = {bytes.fromhex(k.sha256): k for k in keys}

    def authenticate(self, authorization: str | None) -> Key:
        if not authorization:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        key = self._by_digest.get(digest)
        # The dict lookup only ever sees digests; confirm with a constant-time comparison all the same.
        if key is None or not hmac.compare_digest(bytes.fromhex(key.sha256), digest):
            raise AuthenticationError("incorrect API key provided")
        return key


def authorize(key: Key, service: Service | None, requested: str) -> Service:
    """A key may call its owner's services only. Another owner's service looks exactly like an unknown one."""
    if service is None or service.owner != key.owner:
        raise ModelNotFound(f"the model '{requested}' does not exist or you do not have access to it",
                            param="model")
    return service
