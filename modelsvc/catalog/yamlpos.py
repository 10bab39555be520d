"""YAML → plain data plus the source position of every value and key.

PyYAML silently keeps the last of two duplicate mapping keys; we compose the node graph ourselves so that duplicates
become located problems and every later error can point at a line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from .errors import Problem

Path = tuple  # of str | int


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


def _pos(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def parse_yaml(text: str, filename: str) -> tuple[object, Positions, list[Problem]]:
    """Returns (data, positions, problems). On a syntax error data is None and problems holds it."""
    positions = Positions()
    problems: list[Problem] = []
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, positions, problems

        def build(node, path: Path):
            positions.values[path] = _pos(node.start_mark)
            if isinstance(node, yaml.MappingNode):
                loader.flatten_mapping(node)  # resolve YAML merge keys (<<) the way PyYAML does
                out: dict = {}
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
