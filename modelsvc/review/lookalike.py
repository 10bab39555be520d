"""Owners and access names that read like another one: `u-a/test` and `u-a/te5t`, `rnodel` and `model`, a Cyrillic
`о` for a Latin `o`.

`skeleton()` follows the idea of Unicode TS #39's confusable skeleton (map each character to a prototype, compare the
results): compatibility forms folded (NFKC: fullwidth letters), accents dropped, the Cyrillic and Greek letters that
render like Latin ones mapped to them, and the ASCII look-alikes a reader confuses at a glance (0/o, 1/l/i, rn/m, vv/w,
cl/d). Two different names with one skeleton are flagged; the table is short on purpose (it covers the characters
a name can plausibly be typed or pasted with), not Unicode's full confusables list.
"""

from __future__ import annotations

import unicodedata

from modelsvc.catalog import Catalog

from .changes import Change, Confirm, Kind, Section

_PROTOTYPE = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q",
        "ԝ": "w", "ӏ": "l", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
        "υ": "u", "χ": "x", "ω": "w",
        # Latin letters that read as others
        "ı": "i", "ł": "l", "ø": "o", "đ": "d",
        # dashes and slashes
        "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-", "⁄": "/", "∕": "/",
        # ASCII look-alikes
        "0": "o", "1": "l", "i": "l", "|": "l",
    }
)  # fmt: skip
_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def skeleton(text: str) -> str:
    """The form two names share when a reader would take one for the other."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    plain = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    out = plain.translate(_PROTOTYPE)
    for seq, proto in _SEQUENCES:
        out = out.replace(seq, proto)
    return out


def _owners(catalog: Catalog) -> set[str]:
    return {s.owner for s in catalog.services} | {k.owner for k in catalog.keys}


def _flag(new: set[str], existing: set[str]) -> list[tuple[str, list[str]]]:
    """(new name, the other names it reads like) for each new name whose skeleton another name shares."""
    by_skeleton: dict[str, set[str]] = {}
    for name in existing | new:
        by_skeleton.setdefault(skeleton(name), set()).add(name)
    out = []
    for name in sorted(new):
        others = sorted(by_skeleton[skeleton(name)] - {name})
        if others:
            out.append((name, others))
    return out


def lookalikes(base: Catalog, head: Catalog) -> list[Change]:
    """A new owner or access name that reads like another owner or access name of either file."""
    out = []
    head_owners, base_owners = _owners(head), _owners(base)
    for name, others in _flag(head_owners - base_owners, head_owners | base_owners):
        services = tuple(s.access_name for s in head.services if s.owner == name)
        out.append(
            Change(
                Kind.lookalike,
                Section.services,
                name,
                services,
                Confirm.change,
                after={"what": "owner", "name": name, "like": ", ".join(others)},
            )
        )
    head_names, base_names = {s.access_name for s in head.services}, {s.access_name for s in base.services}
    for name, others in _flag(head_names - base_names, head_names | base_names):
        out.append(
            Change(
                Kind.lookalike,
                Section.services,
                name,
                (name, *others),
                Confirm.change,
                after={"what": "access name", "name": name, "like": ", ".join(others)},
            )
        )
    return out
