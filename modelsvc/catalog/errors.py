"""Located problems in services.yaml, reported all at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int  # 1-based
    col: int  # 1-based
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}"
        return f"{where}: {self.message} — {self.hint}" if self.hint else f"{where}: {self.message}"


class CatalogError(Exception):
    """services.yaml is invalid; `problems` lists every located problem, sorted by position."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.line, p.col, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
