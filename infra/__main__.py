"""Pulumi entry point (Pulumi.yaml: main: infra/). Runs from the repository root, where services.yaml lives."""

import os
import sys

_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _root not in sys.path:
    sys.path.insert(0, _root)
os.chdir(os.environ.get("MODELSVC_ROOT", _root))  # relative `modelsvc:catalog` paths are relative to the repo root

from infra.program import main  # noqa: E402

main()
