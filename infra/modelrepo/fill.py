"""``fill_template.py`` semantics, as a function (NVIDIA/TensorRT-LLM ``triton_backend/tools/fill_template.py``).

What NVIDIA's tool does, and so what this does:

* the template is a ``string.Template``; ``max_queue_size`` and ``max_queue_delay_microseconds`` default to ``0``;
  the given values override the defaults; then ``safe_substitute`` (``$key`` and ``${key}`` replaced, ``$$`` -> ``$``,
  unknown placeholders left as they are);
* every *given* key must exist in the template, else it fails naming the key and the file (NVIDIA's tool asserts
  ``key in template_text``). We are stricter in one way: the key must occur as a placeholder (``$key`` /
  ``${key}``), not merely as text, because a key that only occurs as text would be ignored without a word.

What NVIDIA's tool does not do, and we add: refusing a result that still holds a placeholder (see ``leftovers``).
Values are passed as a mapping, so the tool's backslash escaping of ``,`` and ``:`` on its command line has no
counterpart here.
"""

from __future__ import annotations

import re
from string import Template

from .errors import RepoError

DEFAULTS = {"max_queue_size": "0", "max_queue_delay_microseconds": "0"}
_ANY_BRACED = re.compile(r"\$\{([^}]*)\}")


def placeholders(text: str) -> set[str]:
    """The keys a template can be filled with: its valid ``$key`` / ``${key}`` placeholders."""
    return set(Template(text).get_identifiers())


def fill(text: str, values: dict[str, object], where: str) -> str:
    """``text`` with ``values`` substituted; RepoError naming the key and ``where`` for a key the template lacks."""
    known = placeholders(text)
    for key in values:
        if key not in known:
            raise RepoError(where, f"key '{key}' does not exist in the template (no ${{{key}}} placeholder)")
    merged = {**DEFAULTS, **{k: _text(v) for k, v in values.items()}}
    return Template(text).safe_substitute(merged)


def leftovers(text: str) -> list[str]:
    """Placeholders still in a filled text, in order of appearance (``${…}`` of any content, and ``$key``)."""
    found = [m.group(1) for m in _ANY_BRACED.finditer(text)]
    found += [k for k in Template(text).get_identifiers() if k not in found]
    return list(dict.fromkeys(found))


def _text(value: object) -> str:
    # fill_template.py receives every value as command-line text: booleans are spelled as Python prints them.
    return str(value)
