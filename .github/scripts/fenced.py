#!/usr/bin/env python3
"""Print a file as a Markdown section: a title and the text in a code fence nothing inside can close.

    python3 .github/scripts/fenced.py TITLE FILE >> "$GITHUB_STEP_SUMMARY"

The fence is one backtick longer than the longest backtick run in the text (at least three), so a value quoted in
the text (Pulumi's diff quotes services.yaml) cannot end the block and inject Markdown or HTML into the summary.
"""

from __future__ import annotations

import re
import sys


def fenced(title: str, text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"### {title}\n\n{fence}text\n{text.rstrip()}\n{fence}\n"


def main(argv: list[str]) -> int:
    try:
        with open(argv[2], encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (IndexError, OSError) as e:
        print(f"fenced.py: {e}", file=sys.stderr)
        return 2
    print(fenced(argv[1], text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
