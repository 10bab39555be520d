"""YAML → plain data plus the source position of every value and key: the one YAML reader of services.yaml.

PyYAML silently keeps the last of two duplicate mapping keys; we compose the node graph ourselves so that duplicates
become located problems and every later error can point at a line and column.

The reader cannot be exhausted by a hostile file (`validate`, the review and the gateway's reload all read through
it): the text is at most MAX_BYTES, nesting at most MAX_DEPTH, a file holds at most MAX_ALIASES aliases, and building
the data visits at most MAX_EXPANSION nodes more than the file holds (an alias expands to a copy of its anchor's
value, so a "billion laughs" file of a few KB would otherwise build billions of values). Each limit is a located
problem, raised while reading, long before the work would add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem

Path = tuple[Any, ...]  # of str | int (mapping keys, list indices)

MAX_BYTES = 16 * 1024 * 1024  # a 3,000-service file is under 1 MB
MAX_DEPTH = 64  # services.yaml needs 6 levels
MAX_ALIASES = 1_000
MAX_EXPANSION = 100_000  # nodes built beyond those written (aliases and merge keys re-use nodes)


class _Limit(yaml.MarkedYAMLError):  # type: ignore[misc,unused-ignore]  # PyYAML ships no types
    """A reading limit was hit: reported like a syntax error, at the spot where it happened."""


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """SafeLoader that counts nesting depth and aliases while composing, before any of it is expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def _mark(self) -> Any:
        return self.peek_event().start_mark  # type: ignore[no-untyped-call,unused-ignore]  # untyped in the stubs

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Limit(problem=f"more than {MAX_ALIASES} aliases ('*name')", problem_mark=self._mark())
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(
                    problem=f"nested too deeply (more than {MAX_DEPTH} levels)",
                    problem_mark=self._mark(),
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: Any) -> None:
        # Merge keys copy the merged mappings' entries into the node (recursively): `<<: [*a, *a]` chains double at
        # each level, so the size is checked after each level, before the next one doubles it again.
        super().flatten_mapping(node)
        if len(node.value) > MAX_EXPANSION:
            raise _Limit(
                problem=f"merge keys ('<<') expand to more than {MAX_EXPANSION} entries", problem_mark=node.start_mark
            )


@dataclass
class Positions:
    """(line, col), 1-based, for each path's value and, for mapping entries, its key."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Position of the path, or of its nearest located ancestor (a missing field points at its parent)."""
        path = tuple(path)
        while True:
            table = self.keys if key and path in self.keys else self.values
            if path in table:
                return table[path]
            if not path:
                return (1, 1)
            path = path[:-1]


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def parse_yaml(text: str, filename: str) -> tuple[object, Positions, list[Problem]]:
    """Returns (data, positions, problems). On a syntax error data is None and problems holds it."""
    positions = Positions()
    problems: list[Problem] = []
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        hint = f"services.yaml is read whole by the review and every gateway pod; keep it under {MAX_BYTES >> 20} MiB"
        return None, positions, [Problem(filename, 1, 1, f"the file is {size} bytes, over {MAX_BYTES}", hint)]
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, positions, problems
        budget = [_count(root) + MAX_EXPANSION]

        def build(node: Any, path: Path) -> object:
            budget[0] -= 1
            if budget[0] < 0:
                raise _Limit(
                    problem=f"aliases or merge keys expand to more than {MAX_EXPANSION} values beyond those written",
                    problem_mark=node.start_mark,
                )
            positions.values[path] = _pos(node.start_mark)
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)  # resolve YAML merge keys (<<) the way PyYAML does
                out: dict[object, object] = {}
                for key_node, value_node in node.value:
                    key = loader.construct_object(key_node, deep=True)
                    if not isinstance(key, (str, int, float, bool)) or key is None:
                        line, col = _pos(key_node.start_mark)
                        problems.append(
                            Problem(
                                filename,
                                line,
                                col,
                                "mapping keys must be plain strings",
                                "write the key as a plain word",
                            )
                        )
                        continue
                    if key in out:
                        line, col = _pos(key_node.start_mark)
                        first = positions.keys[path + (key,)][0]
                        problems.append(
                            Problem(
                                filename,
                                line,
                                col,
                                f"duplicate key '{key}' (first defined on line {first})",
                                "remove one of the two; YAML would silently keep only the last",
                            )
                        )
                        continue
                    positions.keys[path + (key,)] = _pos(key_node.start_mark)
                    out[key] = build(value_node, path + (key,))
                return out
            if isinstance(node, yaml.SequenceNode):
                return [build(item, path + (i,)) for i, item in enumerate(node.value)]
            return loader.construct_object(node, deep=True)

        return build(root, ()), positions, problems
    except _Limit as e:
        line, col = _pos(e.problem_mark) if e.problem_mark else (1, 1)
        hint = "services.yaml needs no deep nesting and few anchors: write the values out"
        return None, positions, [Problem(filename, line, col, f"YAML refused: {e.problem}", hint)]
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = _pos(mark) if mark else (1, 1)
        what = e.problem or e.context or "invalid YAML"
        return (
            None,
            positions,
            [
                Problem(
                    filename,
                    line,
                    col,
                    f"YAML syntax error: {what}",
                    "check indentation, colons and quoting around this spot",
                )
            ],
        )
    except RecursionError:  # PyYAML composes (and we build) nested nodes recursively: where the reader got to
        line, col = _pos(loader.get_mark())
        return (
            None,
            positions,
            [
                Problem(
                    filename,
                    line,
                    col,
                    "YAML nested too deeply",
                    "services.yaml needs a few levels of nesting; remove the extra brackets",
                )
            ],
        )
    except yaml.YAMLError as e:  # reader errors (bad bytes) carry no mark
        return None, positions, [Problem(filename, 1, 1, f"YAML error: {e}", "save the file as UTF-8 text")]
    finally:
        loader.dispose()


def _count(root: yaml.Node) -> int:
    """Distinct nodes in the composed graph (an anchored node counts once, however many aliases name it)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return len(seen)


def load_data(text: str, filename: str) -> object:
    """Plain data only (no positions, no located problems; None when it does not parse), for reading many versions
    of a file fast (the review's look at the git history). libyaml, 7x faster, when the text has nothing the bounded
    reader guards against (anchors, aliases, merge keys, deep flow nesting, size), else parse_yaml."""
    guarded = any(c in text for c in "&*<") or text.count("[") + text.count("{") > 100 or len(text) > MAX_BYTES
    if getattr(yaml, "__with_libyaml__", False) and not guarded:
        try:
            return yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            return None
    return parse_yaml(text, filename)[0]
