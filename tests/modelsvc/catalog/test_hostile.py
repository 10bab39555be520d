"""Hostile services.yaml: a reader that cannot be exhausted, invisible characters refused in every string field, and
settings that would deploy nothing refused by validation."""

from __future__ import annotations

import time
import typing

import pytest
from pydantic import BaseModel

from modelsvc.catalog import CatalogError, loads
from modelsvc.catalog import model as m
from modelsvc.catalog.yamlpos import MAX_ALIASES, MAX_BYTES, MAX_DEPTH, parse_yaml

from .samples import VALID, replace


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


def _laughs(levels: int = 9) -> str:
    """The "billion laughs": each level is nine aliases of the one before (9^9 strings from ~600 bytes)."""
    lines = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_under_a_second_with_its_line():
    text = VALID + _laughs()
    assert len(text) < 2_000
    start = time.process_time()
    found = problems(text)
    assert time.process_time() - start < 1.0
    (p,) = [p for p in found if "YAML refused" in p]
    assert "expand to more than" in p and p.startswith(f"services.yaml:{VALID.count(chr(10)) + 1}:")


def test_the_bomb_is_refused_by_load_and_validate_as_fast(tmp_path):
    """The gateway's reload and `modelsvc validate` read through load(): the same reader, the same limit."""
    from modelsvc.catalog import load

    path = tmp_path / "services.yaml"
    path.write_text(VALID + _laughs())
    start = time.process_time()
    with pytest.raises(CatalogError) as e:
        load(str(path))
    assert time.process_time() - start < 1.0
    assert any("YAML refused" in p.message for p in e.value.problems)


def test_too_many_aliases_are_refused_before_any_expansion():
    anchors = "shared: &l {requests_per_minute: 10}\n" + "".join(f"a{i}: *l\n" for i in range(MAX_ALIASES + 1))
    (p,) = [p for p in problems(VALID + anchors) if "YAML refused" in p]
    assert f"more than {MAX_ALIASES} aliases" in p


def test_a_few_anchors_still_work():
    text = replace(
        VALID,
        "    pool: h100\n  - name: Big",
        "    pool: h100\n    limits: &lim\n      requests_per_minute: 5\n  - name: Big",
    )
    text = replace(text, "    instances: 2\n    pool: h100\n", "    instances: 2\n    pool: h100\n    limits: *lim\n")
    c = loads(text)
    assert c.services[0].limits == c.services[1].limits and c.services[1].limits.requests_per_minute == 5


def test_nesting_and_size_limits_are_located_problems():
    deep = "extra: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    (p,) = problems(VALID + deep)
    assert "nested too deeply" in p and p.startswith(f"services.yaml:{VALID.count(chr(10)) + 1}:")
    start = time.process_time()
    data, _, found = parse_yaml("#" * (MAX_BYTES + 1), "big.yaml")
    assert time.process_time() - start < 1.0
    assert data is None and f"over {MAX_BYTES}" in found[0].message and found[0].line == 1


def _string_fields() -> list[tuple[str, str]]:
    """(class, field) of every text field of the services.yaml contract."""
    out = []
    for cls in (m.Gateway, m.Pool, m.Model, m.Limits, m.Autoscale, m.Key, m.Service):
        assert issubclass(cls, BaseModel)
        for name, info in cls.model_fields.items():
            if _is_text(info.annotation):
                out.append((cls.__name__, name))
    return out


def _is_text(annotation: object) -> bool:
    if annotation is str:
        return True
    return any(_is_text(a) for a in typing.get_args(annotation))


# A value of the field that validates, to carry the hostile character.
_SAMPLE = {
    ("Gateway", "public_url"): "http://x.example/v1",
    ("Model", "upstream"): "http://x.example/v1",
    ("Autoscale", "scale_down_delay"): "5m",
    ("Key", "sha256"): "0" * 64,
    ("Service", "access_name"): "u-a/test",
    ("Service", "id"): "ms-000000000001",
    ("Key", "id"): "k-a",
    ("Key", "owner"): "u-a",
}


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\x1b", "\x00", "\u2028"])
@pytest.mark.parametrize("cls,field", _string_fields())
def test_every_string_field_refuses_control_and_bidi_characters(cls, field, char):
    model = getattr(m, cls)
    value = _SAMPLE.get((cls, field), "text")
    hostile = value[:3] + char + value[3:]
    with pytest.raises(ValueError):
        model.model_validate({**_minimal(cls), field: hostile})


def _minimal(cls: str) -> dict[str, object]:
    minimal: dict[str, dict[str, object]] = {
        "Gateway": {"public_url": "http://x.example/v1"},
        "Pool": {"instance_type": "p5", "gpus_per_node": 8, "max_nodes": 1},
        "Model": {},
        "Limits": {},
        "Autoscale": {"max_instances": 2},
        "Key": {"id": "k-a", "owner": "u-a", "sha256": "0" * 64},
        "Service": {"name": "T", "access_name": "u-a/t", "id": "ms-000000000001", "model": "m"},
    }
    return minimal[cls]


def test_the_string_fields_the_issue_names_are_covered():
    fields = set(_string_fields())
    assert {("Pool", "instance_type"), ("Model", "source"), ("Model", "upstream_model")} <= fields


@pytest.mark.parametrize(
    "old,new",
    [
        ("instance_type: p5.48xlarge", 'instance_type: "p5.48xlarge\\u202e"'),
        ("source: s3://models/chat-8b", 'source: "s3://models/\\u202echat-8b"'),
    ],
)
def test_a_bidi_override_is_a_located_problem(old, new):
    text = replace(VALID, old, new)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "\\u202e" in ln)) + 1
    (p,) = problems(text)
    assert p.startswith(f"services.yaml:{line}:") and "bidi overrides" in p


def test_a_chat_template_keeps_its_newlines_but_not_a_bidi_override():
    ok = replace(
        VALID, "    max_output_tokens: 256\n", '    max_output_tokens: 256\n    chat_template: "{{ a }}\\n\\t{{ b }}"\n'
    )
    assert loads(ok).models["chat-8b"].chat_template == "{{ a }}\n\t{{ b }}"
    (p,) = problems(ok.replace("\\n\\t", "\\u202e"))
    assert "'chat_template' must not contain control characters other than newlines" in p


def test_pool_null_on_a_triton_service_is_refused():
    """`pool: null` validated and then deployed nothing (callers got 503)."""
    text = replace(VALID, "    instances: 1\n    pool: h100\n", "    instances: 1\n    pool: null\n")
    line = text.splitlines().index("    pool: null") + 1
    (p,) = problems(text)
    assert p.startswith(f"services.yaml:{line}:") and "names no 'pool'" in p and "503" in p
    (p,) = problems(replace(VALID, "    instances: 1\n    pool: h100\n", "    instances: 1\n"))
    assert "names no 'pool'" in p


def test_load_data_is_the_same_data_and_as_bounded():
    """The fast data-only path (libyaml) gives parse_yaml's data, and a file with aliases goes through the bounded
    reader: the bomb is refused there too, quickly."""
    from modelsvc.catalog.yamlpos import load_data

    assert load_data(VALID, "f") == parse_yaml(VALID, "f")[0]
    start = time.process_time()
    assert load_data(VALID + _laughs(), "f") is None
    assert time.process_time() - start < 1.0
