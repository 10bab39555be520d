"""Bearer API keys: hash the presented token, look the digest up. Tokens are never stored, logged or compared raw."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qsl, unquote

from modelsvc.catalog import Key, Service
from modelsvc.catalog.keys import PREFIX

from .errors import AuthenticationError, InvalidRequest, ModelNotFound

# Query parameter names that carry credentials in other APIs, compared lowercased without separators
# ("API-Key", "api_key", "apiKey" are all "apikey").
_KEY_NAMES = {
    "apikey",
    "key",
    "token",
    "accesstoken",
    "authtoken",
    "authorization",
    "auth",
    "bearer",
    "xapikey",
    "idtoken",
    "sessiontoken",
    "secret",
    "clientsecret",
    "password",
    "sig",
    "signature",
}
# Anything shaped like one of our keys (modelsvc/catalog/keys.py), wherever it sits in the URL.
_OUR_KEY = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_\-]{8,}", re.IGNORECASE)
_SEPARATORS = re.compile(r"[^a-z0-9]")


def refuse_key_in_url(path: str, query: str) -> None:
    """A key in a URL ends up in proxy logs and browser history: refuse the request (400) whatever the key's
    validity, and never echo the value (nor a parameter name that could itself be the key)."""
    names = set()
    for name, _ in parse_qsl(query, keep_blank_values=True):
        normal = _SEPARATORS.sub("", name.lower())
        if normal in _KEY_NAMES:
            names.add(normal)
    # unquote twice: a key percent-encoded once more must not slip through
    if names or _OUR_KEY.search(unquote(unquote(path + "?" + query))):
        what = f" (query parameter '{sorted(names)[0]}')" if names else ""
        raise InvalidRequest(
            "API keys are accepted only in the 'Authorization: Bearer <key>' header, never in the "
            f"URL{what}; treat a key sent in a URL as leaked and rotate it",
            code="api_key_in_url",
        )


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
        raise ModelNotFound(f"the model '{requested}' does not exist or you do not have access to it", param="model")
    return service
