#!/usr/bin/env python3
"""What the deploy reads from the stack file, checked before anything uses it.

    python3 .github/scripts/stack_file.py Pulumi.prod.yaml >> "$GITHUB_OUTPUT"

Prints `catalog=<path>` (the file the stack's `modelsvc:catalog` names, default services.yaml) and `target=<eks |
kubeconfig>` (`modelsvc:target`). Fails when that catalog is not a regular file in the commit (mode 100644: never a
symlink, which could make the review and the deploy read different files) or the setting leaves the repository.
Reads the committed blobs with git (REV, default HEAD), like the review does.
"""

from __future__ import annotations

import os
import sys

from modelsvc.catalog.loader import decode
from modelsvc.catalog.yamlpos import parse_yaml
from modelsvc.review import SourceError, catalog_path
from modelsvc.review.sources import git_blob


def target(rev: str, stack_file: str) -> str:
    try:
        data, _, _ = parse_yaml(decode(git_blob(rev, stack_file), stack_file), stack_file)
    except SourceError:
        return "eks"
    config = data.get("config") if isinstance(data, dict) else None
    value = config.get("modelsvc:target", "eks") if isinstance(config, dict) else "eks"
    return value if value in ("eks", "kubeconfig") else "eks"


def main(argv: list[str]) -> int:
    stack_file = argv[1] if len(argv) > 1 else "Pulumi.prod.yaml"
    rev = os.environ.get("REV") or "HEAD"
    try:
        catalog = catalog_path(rev, stack_file)
        git_blob(rev, catalog)  # a regular file, or SourceError
    except SourceError as e:
        print(f"::error title=catalog file::{e}", file=sys.stderr)
        return 1
    print(f"catalog={catalog}")
    print(f"target={target(rev, stack_file)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
