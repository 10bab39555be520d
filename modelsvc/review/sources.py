"""Where the two files a review compares come from: a path, or a git revision such as `origin/main:services.yaml`."""

from __future__ import annotations

import os
import subprocess

from modelsvc.catalog.loader import decode


class SourceError(Exception):
    """A file the review cannot read at all (missing path, unknown revision)."""


def read_source(spec: str) -> tuple[str, str]:
    """(text, display name) of a path, or of a git revision such as `HEAD^1:services.yaml`. Raises SourceError when
    there is no such file, CatalogError (located) when it is not UTF-8."""
    if os.path.exists(spec):
        with open(spec, "rb") as f:
            return decode(f.read(), spec), spec
    if ":" in spec:
        proc = subprocess.run(["git", "show", spec], capture_output=True)
        if proc.returncode == 0:
            name = spec.split(":", 1)[1] or spec
            return decode(proc.stdout, name), name
        raise SourceError(f"cannot read {spec} from git: {proc.stderr.decode('utf-8', 'replace').strip()}")
    raise SourceError(f"{spec}: no such file (use a path or a git revision like origin/main:services.yaml)")
