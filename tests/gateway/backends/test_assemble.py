"""The stream assembly on its own: stop strings, holdback, cumulative text, summed counts, finish_reason."""

import pytest

from gateway.backends.assemble import Assembly, holdback, stop_cut
from gateway.backends.base import Delta, GenRequest, Sampling


def req(max_tokens=100, stop=(), logprobs=False, prompt="four words of prompt"):
    return GenRequest(prompt, Sampling(max_tokens, stop=tuple(stop), logprobs=logprobs))


def feed(a: Assembly, pieces, counts=True):
    """Every response in turn; the texts the caller saw, then the held-back rest."""
    seen = []
    for piece in pieces:
        d = a.add(piece, 4 if counts else None, 1 if counts else None)
        if d is not None:
            seen.append(d.text)
        if a.stopped:
            break
    if (d := a.end()) is not None:
        seen.append(d.text)
    return seen


def test_stop_cut_and_holdback_helpers():
    assert stop_cut("hello END world", ["zzz", "END"]) == 6
    assert stop_cut("hello", ["zzz"]) is None
    assert stop_cut("abXcd", ["cd", "bX"]) == 1  # the earliest match, whichever stop string it is
    assert holdback("the EN", ["END"]) == 2 and holdback("the E", ["END", "Eq"]) == 1
    assert holdback("the end", ["END"]) == 0
    assert holdback("xEN", ["END!", "EN"]) == 2  # a proper prefix of END! (EN itself would have matched)


def test_a_stop_string_split_over_responses_is_held_back_and_cut():
    a = Assembly(req(stop=["END"]))
    seen = feed(a, ["one ", "two E", "N", "D three"])
    assert seen == ["one ", "two "] and a.stopped
    r = a.result()
    assert r.text == "one two " and r.finish_reason == "stop"


def test_held_back_text_that_is_no_stop_string_comes_out_at_the_end():
    a = Assembly(req(stop=["END"]))
    assert feed(a, ["one E", "N"]) == ["one ", "EN"]
    assert a.result().text == "one EN" and not a.stopped


def test_text_without_stops_passes_through_unchanged():
    a = Assembly(req())
    assert feed(a, ["a", "b", "c"]) == ["a", "b", "c"]
    assert a.result().text == "abc"


def test_cumulative_text_is_diffed():
    a = Assembly(req(), cumulative=True)
    assert feed(a, ["The", "The quick", "The quick fox"]) == ["The", " quick", " fox"]
    assert a.result().text == "The quick fox"


def test_counts_are_summed_per_chunk_and_finish_is_length_at_max_tokens():
    a = Assembly(req(max_tokens=3))
    feed(a, ["a", "b", "c"])
    r = a.result()
    assert (r.prompt_tokens, r.completion_tokens, r.finish_reason) == (4, 3, "length")
    a = Assembly(req(max_tokens=4))
    feed(a, ["a", "b", "c"])
    assert a.result().finish_reason == "stop"


def test_a_stop_at_max_tokens_is_stop():
    a = Assembly(req(max_tokens=2, stop=["b"]))
    feed(a, ["a", "b"])
    assert a.result().finish_reason == "stop"


def test_work_follows_the_responses_for_metering():
    r = req()
    a = Assembly(r)
    a.add("x", None, None)
    a.add("y", None, None)
    assert r.work.completion_tokens == 2 and r.work.prompt_tokens is None  # responses, until a count arrives
    a.add("z", 7, 5)
    assert (r.work.prompt_tokens, r.work.completion_tokens) == (7, 5)


def test_without_counts_completion_is_responses_or_words_and_prompt_the_estimate():
    a = Assembly(req())
    feed(a, ["one two", " three"], counts=False)
    r = a.result(count_responses=True)
    assert r.completion_tokens == 2 and r.prompt_tokens == 5  # estimate: 20 characters / 4
    a = Assembly(req())
    feed(a, ["one two", " three"], counts=False)
    assert a.result().completion_tokens == 3


def test_unstreamed_answers_are_cut_at_the_earliest_stop_of_the_whole_text():
    a = Assembly(req(stop=["abcd", "bc"]), stream=False)
    assert a.add("abc", None, 2) is None and a.add("d", 4, 1) is None
    r = a.result()
    assert (r.text, r.finish_reason, r.completion_tokens, r.prompt_tokens) == ("", "stop", 3, 4)


def test_logprobs_go_with_the_deltas_that_carry_their_text():
    a = Assembly(req(stop=["END"], logprobs=True))
    d1 = a.add("one ", 1, 1, [-0.1])
    d2 = a.add("E", 1, 1, [-0.2])  # held back: its token waits with it
    d3 = a.add("x", 1, 1, [-0.3])
    assert isinstance(d1, Delta) and d1.logprobs == [("one ", -0.1)]
    assert d2 is None and d3 is not None and d3.text == "Ex" and d3.logprobs == [("E", -0.2), ("x", -0.3)]
    assert a.result().logprobs == [("one ", -0.1), ("E", -0.2), ("x", -0.3)]


@pytest.mark.parametrize("pieces", [["ab", "cENDd"], ["abcE", "ND"], ["abcEND"]])
def test_the_output_is_the_same_however_the_engine_splits_it(pieces):
    a = Assembly(req(stop=["END"]))
    assert "".join(feed(a, pieces)) == "abc" == a.result().text
