"""The incremental JSON validator agrees with json.loads on every input, however it is cut into pieces."""

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tools.jsonscan import JsonError, JsonScan

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def scan(text: str, cuts: list[int]) -> bool:
    """Whether the scanner accepts text as exactly one JSON value, fed in pieces at `cuts`."""
    s = JsonScan()
    bounds = sorted({c for c in cuts if 0 < c < len(text)} | {0, len(text)})
    try:
        for a, b in itertools.pairwise(bounds):
            end = s.feed(text[a:b])
            if end >= 0:
                return text[a + end :].strip() == ""
        return s.finish()
    except JsonError:
        return False


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def loads_ok(text: str) -> bool:
    """json.loads without its NaN / Infinity extension."""
    try:
        json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(json_values, st.lists(st.integers(0, 400), max_size=12), st.sampled_from([None, 2]))
def test_valid_json_is_accepted_in_any_pieces(value, cuts, indent):
    text = json.dumps(value, indent=indent)
    assert scan(text, cuts)


@settings(max_examples=500, deadline=None)
@given(json_values, st.integers(0, 10_000), st.sampled_from(list(',}]":x0-. \\eE{[tn')), st.lists(st.integers(0, 400)))
def test_broken_json_is_refused_like_json_loads(value, where, char, cuts):
    text = json.dumps(value)
    i = where % (len(text) + 1)
    broken = text[:i] + char + text[i + 1 :]
    assert scan(broken, cuts) == loads_ok(broken), broken


def test_members_locate_keys_and_values():
    text = '{"name": "get_weather", "arguments": {"city": "Paris", "n": [1, 2]}, "x": 10}'
    s = JsonScan()
    assert s.feed(text) == len(text)
    spans = {text[m.key_start : m.key_end]: text[m.value_start : m.value_end] for m in s.members}
    assert spans == {'"name"': '"get_weather"', '"arguments"': '{"city": "Paris", "n": [1, 2]}', '"x"': "10"}


def test_the_end_is_found_without_reading_past_it():
    s = JsonScan()
    assert s.feed('{"a": 1') == -1
    assert s.feed("} and then text") == 1
    assert s.done
