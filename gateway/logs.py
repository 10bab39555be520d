"""Logging for the gateway process. Sanic may reconfigure the root logger when it starts, so our loggers — and
Sanic's own, whose error paths may quote a request's URL — get one handler, set up once per worker from the
server-start listener, whose formatter redacts query strings and anything shaped like a key from every line,
tracebacks included."""

from __future__ import annotations

import logging
import re
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LOGGERS = ("gateway", "modelsvc", "sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets")
# A query string (everything from '?' to the next blank or quote), and bearer-key-shaped tokens anywhere.
_QUERY = re.compile(r"\?[^\s'\"]*=[^\s'\"]*")
_KEYLIKE = re.compile(r"\b(sk|ak|key|tok)[-_][A-Za-z0-9_\-]{8,}")
_USERINFO = re.compile(r"://[^/\s@'\"]+@")  # credentials in an upstream URL


def redact(text: str) -> str:
    return _KEYLIKE.sub("[redacted]", _QUERY.sub("?[redacted]", _USERINFO.sub("://[redacted]@", text)))


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Handler(logging.StreamHandler):
    _modelsvc = True  # ours: setup() called again adds no second one


def setup(level: int = logging.INFO) -> None:
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(getattr(h, "_modelsvc", False) for h in logger.handlers):
            handler = _Handler(sys.stderr)
            handler.setFormatter(RedactingFormatter(_FORMAT))
            logger.addHandler(handler)
        if not name.startswith("sanic"):
            logger.setLevel(level)
        logger.propagate = False
