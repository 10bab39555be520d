"""Markdown that services.yaml values cannot break out of."""

from __future__ import annotations

import re


def code(value, *, cell: bool = False) -> str:
    """`value` as a Markdown code span that nothing inside can break out of (cell=True: inside a table row)."""
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(value))
    if cell:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"
