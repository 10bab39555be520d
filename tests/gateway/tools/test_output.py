"""Tool calls read from each family's real output format (written out from the families' documented templates and
examples: Meta's Llama 3.1 prompt format, Qwen's function-calling guide, Mistral's function calling), however the
text is cut into pieces, and what is not a clean call: half calls, trailing text, unbalanced markers, calls of
functions that were not offered, a call larger than the buffer cap."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tools import Output

TOOLS = frozenset({"get_current_temperature", "get_temperature_date", "get_weather"})


def run(fmt: str, text: str, cuts=(), **kw):
    """Feed text in pieces; returns the Output and the deltas, with the streamed text/calls reassembled."""
    out = Output(fmt, tools=kw.pop("tools", TOOLS), **kw)
    bounds = sorted({c for c in cuts if 0 < c < len(text)} | {0, len(text)})
    deltas = []
    for a, b in itertools.pairwise(bounds):
        deltas += out.feed(text[a:b])
    deltas += out.end()
    streamed_text = "".join(d.text for d in deltas)
    streamed_reasoning = "".join(d.reasoning for d in deltas)
    calls: dict[int, list[Any]] = {}  # [id, name, arguments so far]
    for d in deltas:
        for t in d.tool_calls or ():
            entry = calls.setdefault(t.index, [None, None, ""])
            if t.id is not None:
                assert entry[0] is None, "a call's head (id, name) comes once"
                entry[0], entry[1] = t.id, t.name
            entry[2] += t.arguments
    return out, streamed_text, streamed_reasoning, [tuple(calls[i]) for i in sorted(calls)]


def parsed(out) -> tuple[str, str, list[tuple[str, dict]]]:
    return out.content, out.reasoning, [(c.name, json.loads(c.arguments)) for c in out.calls]


# -- the families' formats ------------------------------------------------------------------------------------------
# Meta's Llama 3.1 prompt format: "JSON based tool calling" answers with the call object as the whole message
# (<|python_tag|> is a special token: Triton's postprocessing with skip_special_tokens drops it); Llama 3.2/3.3 may
# write several separated by "; ".
LLAMA_ONE = '{"name": "get_current_temperature", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}}'
LLAMA_TWO = (
    '<|python_tag|>{"name": "get_current_temperature", "parameters": {"location": "Paris"}}; '
    '{"name": "get_temperature_date", "parameters": {"location": "Paris", "date": "2024-10-01"}}'
)
# Qwen's function-calling guide (Qwen2.5): text is allowed before the calls; each call in its own block
HERMES = (
    "Let me check both.\n<tool_call>\n"
    '{"name": "get_current_temperature", "arguments": {"location": "San Francisco, CA, USA"}}\n'
    "</tool_call>\n<tool_call>\n"
    '{"name": "get_temperature_date", "arguments": {"location": "San Francisco, CA, USA", "date": "2024-10-01"}}\n'
    "</tool_call>"
)
# Qwen3 thinks first
QWEN3 = (
    "<think>\nThe user wants the weather; I should call the tool.\n</think>\n\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
)
# Mistral 7B v0.3 / Nemo ([TOOL_CALLS] is special: dropped by postprocessing) and the v11 tokenizer's format
MISTRAL = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "format": "celsius"}}]'
MISTRAL_STRIPPED = (
    '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_temperature_date", '
    '"arguments": {"location": "Paris", "date": "2024-10-01"}}]'
)
MISTRAL_V11 = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_temperature_date[ARGS]{"location": "x"}'
MISTRAL_V11_STRIPPED = 'get_weather{"city": "Paris"}'

CASES = [
    (
        "llama3_json",
        LLAMA_ONE,
        ("", "", [("get_current_temperature", {"location": "San Francisco, CA", "unit": "celsius"})]),
    ),
    (
        "llama3_json",
        LLAMA_TWO,
        (
            "",
            "",
            [
                ("get_current_temperature", {"location": "Paris"}),
                ("get_temperature_date", {"location": "Paris", "date": "2024-10-01"}),
            ],
        ),
    ),
    (
        "hermes",
        HERMES,
        (
            "Let me check both.",
            "",
            [
                ("get_current_temperature", {"location": "San Francisco, CA, USA"}),
                ("get_temperature_date", {"location": "San Francisco, CA, USA", "date": "2024-10-01"}),
            ],
        ),
    ),
    (
        "hermes",
        QWEN3,
        ("", "The user wants the weather; I should call the tool.", [("get_weather", {"city": "Paris"})]),
    ),
    ("mistral", MISTRAL, ("", "", [("get_weather", {"city": "Paris", "format": "celsius"})])),
    (
        "mistral",
        MISTRAL_STRIPPED,
        (
            "",
            "",
            [("get_weather", {"city": "Paris"}), ("get_temperature_date", {"location": "Paris", "date": "2024-10-01"})],
        ),
    ),
    (
        "mistral",
        MISTRAL_V11,
        ("", "", [("get_weather", {"city": "Paris"}), ("get_temperature_date", {"location": "x"})]),
    ),
    ("mistral", MISTRAL_V11_STRIPPED, ("", "", [("get_weather", {"city": "Paris"})])),
    (
        "array",
        '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        ("", "", [("get_weather", {"city": "Paris"})]),
    ),
]


@pytest.mark.parametrize("fmt,text,want", CASES)
def test_family_formats(fmt, text, want):
    out, text_s, reasoning_s, calls_s = run(fmt, text, reasoning=fmt == "hermes")
    assert parsed(out) == want
    assert out.failed is None and not out.open_call
    # what was streamed is what was parsed
    assert (text_s, reasoning_s) == (out.content, out.reasoning)
    assert [(name, json.loads(args)) for _, name, args in calls_s] == want[2]
    assert all(call_id.startswith("call_") and len(call_id) == 29 for call_id, _, _ in calls_s)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CASES), st.lists(st.integers(1, 300), max_size=40))
def test_any_cut_gives_the_same_calls(case, cuts):
    fmt, text, want = case
    out, text_s, reasoning_s, calls_s = run(fmt, text, cuts, reasoning=fmt == "hermes")
    assert parsed(out) == want
    assert (text_s, reasoning_s) == (out.content, out.reasoning)
    assert [(n, json.loads(a)) for _, n, a in calls_s] == want[2]


def test_arguments_stream_in_fragments_after_the_head():
    """OpenAI's tool_calls deltas: the first names the call (index, id, name), later ones carry argument text."""
    out = Output("hermes", tools=TOOLS)
    deltas = []
    for piece in ['<tool_call>\n{"name": "get_weather", "argu', 'ments": {"ci', 'ty": "Par', 'is"}}\n</tool_call>']:
        deltas += out.feed(piece)
    deltas += out.end()
    pieces = [t for d in deltas for t in d.tool_calls or ()]
    assert pieces[0].id and pieces[0].name == "get_weather"
    assert all(p.id is None and p.name is None for p in pieces[1:]) and len(pieces) >= 3
    assert "".join(p.arguments for p in pieces) == '{"city": "Paris"}'


def test_text_streams_as_text_until_a_marker_could_begin():
    out = Output("hermes", tools=TOOLS)
    assert [d.text for d in out.feed("Sure, ")] == ["Sure,"]  # trailing whitespace waits for what follows
    assert out.feed("<tool") == []  # could be the marker: held
    assert [d.text for d in out.feed("kit> is a word")] == [" <toolkit> is a word"]


def test_mistral_ids_are_nine_letters_or_digits():
    from gateway.tools import mistral_call_id

    _out, _, _, calls = run("mistral", MISTRAL, new_id=mistral_call_id)
    assert len(calls[0][0]) == 9 and calls[0][0].isalnum()


def test_named_format_is_the_arguments_themselves():
    out, _, _, _calls = run("named", '{"city": "Paris"}', forced="get_weather")
    assert parsed(out) == ("", "", [("get_weather", {"city": "Paris"})])


def test_parallel_false_keeps_the_first_call():
    out, _, _, calls = run("llama3_json", LLAMA_TWO, max_calls=1)
    assert [c.name for c in out.calls] == ["get_current_temperature"] and len(calls) == 1


# -- what is not a clean call ---------------------------------------------------------------------------------------
def test_a_json_answer_is_not_a_call():
    for text in ('{"answer": 42}', '{"name": "Bob", "age": 3}', "[1, 2, 3] is a list"):
        out, text_s, _, calls = run("llama3_json" if text[0] == "{" else "mistral", text)
        assert out.content == text_s == text and out.calls == [] and calls == []


def test_a_call_of_a_function_not_offered_is_text():
    text = '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'
    out, text_s, _, calls = run("hermes", text)
    assert out.calls == [] and calls == [] and text_s == text


def test_json_with_trailing_text():
    out, text_s, _, _ = run("llama3_json", LLAMA_ONE + " Let me know if you need anything else.")
    assert [c.name for c in out.calls] == ["get_current_temperature"]
    assert out.content == text_s == "Let me know if you need anything else."


def test_a_half_call_is_open_at_the_end():
    """Cut by max_tokens: what went out stays out (finish_reason "length"); nothing pretends it is complete."""
    out, _, _, calls = run("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par')
    assert out.calls == [] and out.open_call and out.failed is None
    assert calls == [(calls[0][0], "get_weather", '{"city": "Par')]
    assert out.partial_call is not None and out.partial_call.arguments == '{"city": "Par'


def test_a_half_call_without_its_head_is_text():
    out, text_s, _, calls = run("hermes", 'I will call <tool_call>\n{"na')
    assert calls == [] and out.content == text_s == 'I will call <tool_call>\n{"na'


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call><tool_call>{"name": "get_weather"}</tool_call>',  # nested opening markers
        "</tool_call> stray close",  # a close without an open
        "<tool_call>\nnot json at all\n</tool_call>",
        "<tool_call>\n[1, 2]\n</tool_call>",
    ],
)
def test_unbalanced_or_broken_markers_are_text(text):
    out, text_s, _, calls = run("hermes", text)
    assert calls == [] and out.calls == [] and out.failed is None
    assert out.content == text_s and text_s.strip() == text.strip()


def test_json_that_breaks_before_anything_went_out_is_text():
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": tru}}'
    out, text_s, _, calls = run("hermes", text)
    assert calls == [] and out.failed is None and out.content == text_s == text


def test_json_that_breaks_after_the_head_fails_the_call():
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": tru}}'
    out, _, _, calls = run("hermes", text, cuts=[text.index("city")])  # the head goes out with the first piece
    assert out.failed and "literal" in out.failed
    assert calls and calls[0][1] == "get_weather"  # the head had gone out: it cannot be taken back


def test_a_call_larger_than_the_cap():
    big = '{"name": "get_weather", "arguments": {"city": "' + "x" * 5000 + '"}}'
    # before its head went out (arguments first): given back as text, parsing stops
    backwards = '{"arguments": {"city": "' + "x" * 5000 + '"}, "name": "get_weather"}'
    out, text_s, _, calls = run("llama3_json", backwards, cuts=range(0, 6000, 7), limit=1000)
    assert calls == [] and out.content == text_s == backwards and out.failed is None
    # after its head went out: the call fails (the stream ends with an error; never a 500, never unbounded memory)
    out, _, _, calls = run("llama3_json", big, cuts=range(0, 6000, 7), limit=1000)
    assert out.failed and "1000" in out.failed and calls[0][1] == "get_weather"
    assert len(calls[0][2]) <= 1000


def test_endless_whitespace_after_a_marker_is_capped():
    out, _text_s, _, _ = run("mistral", "[TOOL_CALLS]" + " " * 5000, cuts=range(0, 6000, 100), limit=1000)
    assert out.calls == [] and out.failed is None


def test_reasoning_without_a_close_is_reasoning():
    out, _text_s, reasoning_s, _ = run("hermes", "<think>still thinking", reasoning=True)
    assert out.reasoning == reasoning_s == "still thinking" and out.content == ""


def test_reasoning_opened_by_the_prompt():
    out, _text_s, _reasoning_s, _ = run("text", "hmm, 2+2\n</think>\n\n4", reasoning=True, in_reasoning=True)
    assert (out.reasoning, out.content) == ("hmm, 2+2", "4")


def test_text_format_passes_everything_but_reasoning():
    out, text_s, _, _ = run("text", 'literally <tool_call>{"name": "get_weather"}</tool_call>', reasoning=True)
    assert out.content == text_s == 'literally <tool_call>{"name": "get_weather"}</tool_call>'
