"""Where the two files a review compares come from: a path, or a git revision such as `origin/main:services.yaml`.

A pull request's files are data: they are read as git blobs (`git ls-tree` + `git cat-file`), never checked out and
never run. services.yaml must be a regular file: a symlink (mode 120000) would let the review read one file (e.g. the
base's, through a link into the reviewer's own checkout) while the deploy reads another, and any mode but 100644 is
refused too. The file reviewed is the one the stack's `modelsvc:catalog` names at each revision.
"""

from __future__ import annotations

import os
import posixpath
import stat
import subprocess
from collections.abc import Sequence

from modelsvc.catalog.loader import decode
from modelsvc.catalog.yamlpos import MAX_BYTES, load_data, parse_yaml

REGULAR = "100644"
DEFAULT_CATALOG = "services.yaml"
CATALOG_SETTING = "modelsvc:catalog"


class SourceError(Exception):
    """A file the review cannot read or must not trust (missing, a symlink, not a regular file, too large)."""


def _git(args: Sequence[str], cwd: str | None = None) -> bytes:
    proc = subprocess.run(["git", *args], capture_output=True, cwd=cwd)
    if proc.returncode != 0:
        raise SourceError(f"git {' '.join(args)}: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout


def git_blob(rev: str, path: str, cwd: str | None = None) -> bytes:
    """The bytes of `path` at `rev`, refused unless it is a regular file (mode 100644) of at most MAX_BYTES."""
    entry = _git(["ls-tree", "-z", "--full-tree", rev, "--", path], cwd).split(b"\0")[0].decode("utf-8", "replace")
    if not entry:
        raise SourceError(f"{rev}:{path}: no such file")
    meta, _, name = entry.partition("\t")
    mode, kind, oid = meta.split()
    if name != path:
        raise SourceError(f"{rev}:{path}: no such file")
    if mode == "120000":
        raise SourceError(f"{rev}:{path} is a symlink: services.yaml must be a regular file (mode {REGULAR})")
    if kind != "blob" or mode != REGULAR:
        raise SourceError(f"{rev}:{path} has mode {mode} ({kind}): services.yaml must be a regular file ({REGULAR})")
    size = int(_git(["cat-file", "-s", oid], cwd))
    if size > MAX_BYTES:
        raise SourceError(f"{rev}:{path} is {size} bytes, over {MAX_BYTES}")
    return _git(["cat-file", "blob", oid], cwd)


def read_file(path: str) -> bytes:
    """A local file's bytes, refused when it is a symlink or not a regular file."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise SourceError(f"{path} is a symlink: services.yaml must be a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path} is not a regular file")
    if st.st_size > MAX_BYTES:
        raise SourceError(f"{path} is {st.st_size} bytes, over {MAX_BYTES}")
    with open(path, "rb") as f:
        return f.read(MAX_BYTES + 1)


def read_source(spec: str) -> tuple[str, str]:
    """(text, display name) of a path, or of a git revision such as `HEAD^1:services.yaml`. Raises SourceError when
    there is no such file or it is not a regular file, CatalogError (located) when it is not UTF-8."""
    if os.path.lexists(spec):
        return decode(read_file(spec), spec), spec
    if ":" in spec:
        rev, path = spec.split(":", 1)
        name = path or spec
        return decode(git_blob(rev, path), name), name
    raise SourceError(f"{spec}: no such file (use a path or a git revision like origin/main:services.yaml)")


def catalog_path(rev: str, stack_file: str, cwd: str | None = None) -> str:
    """The file the stack's `modelsvc:catalog` setting names at `rev` (services.yaml when unset): the file the
    deploy reads, so the file the review compares."""
    try:
        raw = git_blob(rev, stack_file, cwd)
    except SourceError as e:
        if "no such file" in str(e):
            return DEFAULT_CATALOG
        raise
    data, _, problems = parse_yaml(decode(raw, stack_file), stack_file)
    if problems:
        raise SourceError(f"{rev}:{stack_file}: {problems[0].message}")
    config = data.get("config") if isinstance(data, dict) else None
    value = config.get(CATALOG_SETTING, DEFAULT_CATALOG) if isinstance(config, dict) else DEFAULT_CATALOG
    if isinstance(value, dict):  # `modelsvc:catalog: {value: ...}` is also valid Pulumi config
        value = value.get("value", DEFAULT_CATALOG)
    if not isinstance(value, str) or not _relative(value):
        raise SourceError(f"{rev}:{stack_file}: {CATALOG_SETTING} must be a relative path inside the repository")
    return posixpath.normpath(value)


def _relative(path: str) -> bool:
    norm = posixpath.normpath(path)
    return bool(path) and not path.startswith("/") and norm != ".." and not norm.startswith("../") and "\\" not in path


def name_history(
    rev: str, path: str, *, days: int = 90, max_commits: int = 50, cwd: str | None = None
) -> dict[str, list[tuple[str, str, str]]]:
    """access name → [(service id, commit, date)], newest first, over the versions of `path` committed in the
    `days` before `rev` (at most `max_commits` of them): who held each name recently."""
    if days <= 0:
        return {}
    log = _git(["log", f"--since={days}.days", f"-n{max_commits}", "--format=%H%x09%cI", rev, "--", path], cwd)
    out: dict[str, list[tuple[str, str, str]]] = {}
    for line in log.decode().splitlines():
        commit, _, date = line.partition("\t")
        try:
            data = load_data(decode(git_blob(commit, path, cwd), path), path)
        except Exception:  # a version that was a symlink, too big, not UTF-8 or not YAML names nobody
            continue
        services = data.get("services") if isinstance(data, dict) else None
        for s in services if isinstance(services, list) else []:
            name, sid = (s.get("access_name"), s.get("id")) if isinstance(s, dict) else (None, None)
            if isinstance(name, str) and isinstance(sid, str) and (sid, commit, date) not in out.get(name, []):
                if not any(h[0] == sid for h in out.get(name, [])):
                    out.setdefault(name, []).append((sid, commit, date[:10]))
    return out
