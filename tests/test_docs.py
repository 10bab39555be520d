"""The documentation stands on its own: no comment or document cites a file outside the repository (the settings
whose defaults are fixture folders beside the checkout are named as settings), and every relative link in the
Markdown files reaches a file of the repository, and a heading of it when it names one."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.conftest import ROOT

SKIP = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis", "build", "dist"}
SKIP |= {"var", "test-artifacts", ".venv-litellm", ".portkey", "results"}
TEXT = {".py", ".md", ".yml", ".yaml", ".toml", ".sh", ".mjs", ".json", ".txt", ".cfg", ".ini", ""}
# ../shared/fixtures/... is where the fixture settings point by default (MODELSVC_TRITON_TEMPLATES, MODELSVC_K8S_CRDS):
# a setting, not a citation; a fixture tree's own files are (and so is a PROVENANCE.md read as a fixture's).
OUTSIDE = re.compile(
    r"DESIGN\.md|HELPERS\.md|agents-api\.md|\.\./shared/(?!fixtures\b)|shared/fixtures/\S*PROVENANCE|its PROVENANCE\.md"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _files(suffixes: set[str]) -> list[Path]:
    out = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.endswith(".egg-info")]
        for name in names:
            path = Path(folder) / name
            if path.suffix in suffixes and path.stat().st_size < 1_000_000:
                out.append(path)
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_nothing_cites_a_file_outside_the_repository():
    found = []
    for path in _files(TEXT):
        if path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert found == []


def test_relative_links_in_the_docs_resolve():
    broken = []
    for md in _files({".md"}):
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL, or an anchor in the same file (checked below for the other files)
            file, _, anchor = target.partition("#")
            dest = (md.parent / file).resolve()
            if not dest.exists() or (ROOT not in dest.parents and dest != ROOT):
                broken.append(f"{md.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+\s+(.*)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{md.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
