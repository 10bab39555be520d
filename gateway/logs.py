"""Logging for the gateway process. Sanic may reconfigure the root logger when it starts, so our loggers get
their own handler, set up once per worker from the server-start listener."""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: int = logging.INFO) -> None:
    for name in ("gateway", "modelsvc"):
        logger = logging.getLogger(name)
        if not any(getattr(h, "_modelsvc", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(_FORMAT))
            handler._modelsvc = True
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
