"""What the command families share: the default file, printing located problems, finding a service."""

from __future__ import annotations

import sys

from modelsvc.catalog import Catalog, CatalogError, Service, load

DEFAULT_FILE = "services.yaml"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def print_problems(err: CatalogError, fmt: str = "text") -> None:
    for p in err.problems:
        if fmt == "github":
            # GitHub workflow command: an annotation on the line of the file in the PR's diff.
            # Escaped as the runner expects: a value can neither end the command nor start a new line.
            msg = _escape_data(f"{p.message} — {p.hint}")
            path = _escape_data(p.path).replace(":", "%3A").replace(",", "%2C")
            print(f"::error file={path},line={p.line},col={p.col},title=services.yaml::{msg}")
        else:
            print(p, file=sys.stderr)


def load_service(path: str, access_name: str) -> tuple[Catalog, Service] | None:
    """(catalog, service), or None after printing why not."""
    try:
        c = load(path)
    except CatalogError as e:
        print_problems(e)
        return None
    svc = c.service(access_name)
    if svc is None:
        print(f"modelsvc: no service with access name '{access_name}' in {path}", file=sys.stderr)
        return None
    return c, svc
