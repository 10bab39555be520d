"""RepoError: a model repository that cannot be built, located at the file (and key or placeholder) at fault."""

from __future__ import annotations


class RepoError(Exception):
    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
