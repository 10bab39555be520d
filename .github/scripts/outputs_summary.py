#!/usr/bin/env python3
"""Stack outputs as a Markdown table, for $GITHUB_STEP_SUMMARY.

    pulumi stack output --json --stack prod | python .github/scripts/outputs_summary.py prod >> "$GITHUB_STEP_SUMMARY"

Secret outputs stay masked: `pulumi stack output --json` prints them as "[secret]" unless --show-secrets is given,
which the workflow never passes.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "`" + text.replace("|", "\\|").replace("`", "'").replace("\n", " ") + "`"


def render(stack: str, outputs: dict[str, Any]) -> str:
    lines = [f"### Stack outputs: `{stack}`", ""]
    if not outputs:
        return "\n".join(lines + ["- none", ""])
    lines += ["| output | value |", "|---|---|"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in sorted(outputs.items())]
    return "\n".join(lines + [""])


def main(argv: list[str]) -> int:
    stack = argv[1] if len(argv) > 1 else "stack"
    raw = sys.stdin.read().strip()
    print(render(stack, json.loads(raw) if raw else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
