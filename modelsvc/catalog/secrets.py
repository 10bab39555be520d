"""What a plaintext secret looks like, and how to keep one out of every message that quotes the file.

Problems, the review and workflow logs quote values from services.yaml. A key pasted into the wrong field must
never be quoted back: those messages end up in annotations, job summaries, logs and PR comments (kept in e-mails
and edit history). `redact` is applied to every message the loader produces; `find` feeds `::add-mask::`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PATTERNS = [
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), "an API key"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"), "a GitHub token"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "a Hugging Face token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "a password in a URL"),
]
REDACTED = "[redacted]"


def find(text: str) -> list[tuple[int, int, str]]:
    """(start, end, what) of every secret-shaped span, per pattern, in text order."""
    found = [(m.start(), m.end(), what) for pattern, what in PATTERNS for m in pattern.finditer(text)]
    return sorted(found)


def redact(text: str, values: Iterable[str | None] = ()) -> str:
    """text with every secret-shaped span, and every one of `values` (e.g. what sits in a sha256 field), replaced."""
    for value in sorted((v for v in values if v), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern, _ in PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text
