"""gateway/settings.pyi, mypy's view of the Settings built at run time, says what the code builds: generated from
the declarations (modelsvc/catalog/gateway_settings.py), checked in, and failing here when either side moves."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from devtools.settings_stub import STUB, _annotation, render
from gateway.settings import Settings
from modelsvc.catalog.gateway_settings import SETTINGS


def test_checked_in_stub_is_current() -> None:
    assert STUB.read_text(encoding="utf-8") == render(), (
        "gateway/settings.pyi is out of date with modelsvc/catalog/gateway_settings.py: "
        "run `python -m devtools.settings_stub`"
    )


def _stub_fields() -> dict[str, str]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings"]
    return {
        n.target.id: ast.unparse(n.annotation)
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }


def test_stub_has_every_field_in_order_with_choices_as_literals() -> None:
    stub = _stub_fields()
    assert list(stub) == [f.name for f in dataclasses.fields(Settings)]
    assert stub["images"] == "ImagePolicy"
    assert stub["discovery"] == "Literal['static', 'dns']"
    assert stub["metrics_host"] == "str | None"  # optional: None means unset
    assert stub["usage_spool"] == "str"
    for s in SETTINGS:
        if s.field and "." not in s.field and s.choices:
            assert stub[s.field].startswith("Literal[")


def test_a_type_it_cannot_spell_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"teach devtools/settings_stub\.py"):
        _annotation(list[int], (), set(), set())
