"""A request's output read per choice: finish reasons, strict schemas, cut calls, streamed and not."""

import pytest

from gateway.backends.base import Choice, Delta, GenResult
from gateway.errors import ModelOutputError
from gateway.tools.reading import Reading

TOOLS = frozenset({"get_weather"})
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
STRICT = '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}'


def result(text: str, reason: str = "stop", more=()) -> GenResult:
    return GenResult(text, 10, 5, reason, more=list(more))


def test_whole_answer_with_a_call():
    r = Reading("hermes", tools=TOOLS).whole(result("Let me look.\n" + CALL))
    assert (r.text, r.finish_reason, [c.name for c in r.tool_calls]) == ("Let me look.", "tool_calls", ["get_weather"])


def test_a_forced_call_finishes_with_stop_as_openai_reports_it():
    r = Reading("named", tools=TOOLS, forced="get_weather").whole(result('{"city": "Paris"}'))
    assert r.finish_reason == "stop" and r.tool_calls[0].arguments == '{"city": "Paris"}'


def test_a_cut_call_in_a_whole_answer_is_the_models_text():
    r = Reading("hermes", tools=TOOLS).whole(result(CALL[:40], "length"))
    assert (r.text, r.tool_calls, r.finish_reason) == (CALL[:40], None, "length")


def test_each_choice_is_read():
    r = Reading("hermes", tools=TOOLS).whole(result(CALL, more=[Choice("plain words", "stop", 2)]))
    assert r.finish_reason == "tool_calls" and r.more[0].tool_calls is None and r.more[0].text == "plain words"


def test_strict_arguments_are_checked():
    reading = Reading("hermes", tools=TOOLS, strict={"get_weather": STRICT})
    assert reading.whole(result(CALL)).tool_calls
    bad = '<tool_call>\n{"name": "get_weather", "arguments": {"town": "Paris"}}\n</tool_call>'
    with pytest.raises(ModelOutputError) as e:
        reading.whole(result(bad))
    assert e.value.status == 502 and e.value.type == "model_error" and "city" in e.value.message


def test_streamed_reading_ends_with_the_calls():
    reader = Reading("hermes", tools=TOOLS).stream()
    pieces = []
    for i in range(0, len(CALL), 5):
        pieces += reader.feed(Delta(CALL[i : i + 5]))
    rest, done = reader.finish(result(CALL))
    assert done.finish_reason == "tool_calls" and done.tool_calls[0].name == "get_weather" and done.text == ""
    args = "".join(t.arguments for d in pieces + rest for t in d.tool_calls or ())
    assert args == done.tool_calls[0].arguments


def test_a_streamed_call_that_breaks_raises():
    reader = Reading("hermes", tools=TOOLS).stream()
    reader.feed(Delta('<tool_call>\n{"name": "get_weather", "arguments": {"a": '))
    with pytest.raises(ModelOutputError):
        reader.feed(Delta("}}"))


def test_a_streamed_call_cut_by_max_tokens_is_reported_as_it_went_out():
    reader = Reading("hermes", tools=TOOLS).stream()
    reader.feed(Delta('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'))
    _, done = reader.finish(result("ignored", "length"))
    assert done.finish_reason == "length" and done.tool_calls[0].arguments == '{"city": "Pa'


def test_logprobs_stay_with_the_text_they_belong_to():
    reader = Reading("text", reasoning=True).stream()
    held = reader.feed(Delta("<thi", [("<thi", -0.1)]))
    assert held and held[0].text == "" and held[0].logprobs == [("<thi", -0.1)]
