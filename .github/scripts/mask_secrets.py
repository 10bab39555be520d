#!/usr/bin/env python3
"""Tell the runner to mask every secret-shaped value of a file before any step prints from it.

    python .github/scripts/mask_secrets.py services.yaml

Prints one `::add-mask::VALUE` line per secret-shaped span (the shapes modelsvc's loader refuses) and per value of a
`sha256:` field that is not a digest (a key pasted in its place). The runner consumes these lines (they are not shown)
and replaces the values with *** in every later line of the job's log. Nothing else is printed.
"""

from __future__ import annotations

import re
import sys

from modelsvc.catalog import secrets

SHA256_FIELD = re.compile(r"^\s*(?:-\s+)?sha256:\s*['\"]?([^'\"#\s]+)")
DIGEST = re.compile(r"^[0-9a-f]{64}$")


def values(text: str) -> list[str]:
    found: list[str] = []
    for line in text.splitlines():
        found += [line[start:end] for start, end, _ in secrets.find(line)]
        m = SHA256_FIELD.match(line)
        if m and not DIGEST.match(m.group(1)):
            found.append(m.group(1))
    return list(dict.fromkeys(v.strip() for v in found if v.strip()))


def main(argv: list[str]) -> int:
    try:
        with open(argv[1], encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (IndexError, OSError):
        return 0  # nothing to mask; the validation step reports a missing file
    for value in values(text):
        print(f"::add-mask::{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
