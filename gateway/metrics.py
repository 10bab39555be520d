"""Prometheus exposition, for one process or several.

With `modelsvc serve --workers N` each worker process counts its own requests. The primary process points every
worker at one fresh PROMETHEUS_MULTIPROC_DIR before they start (prometheus-client's multiprocess mode: each
process writes its samples to files there), and a scrape answered by any worker merges all of them.
"""

from __future__ import annotations

import glob
import os
import tempfile

from prometheus_client import CollectorRegistry, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_workers() -> str:
    """In the primary, before workers start: an empty directory for their metric files (stale files from an
    earlier run would be counted again)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="modelsvc-metrics-")
        os.environ[MULTIPROC_ENV] = path
    return path


def exposition(registry: CollectorRegistry) -> bytes:
    """The /metrics body: this process's registry, or every worker's samples merged in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
    return generate_latest(registry)
