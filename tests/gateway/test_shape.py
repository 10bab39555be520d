"""gateway/shape.py: the pre-encoded frame of a plain text chunk is byte for byte the chunk built as a dict."""

import orjson
import pytest

from gateway.backends.base import Delta
from gateway.shape import TextShape, sse

TEXTS = ["", "hello", ' "quoted" \\ back', "naïve — 東京 😀", "\x00frame\x00", "line\nbreak\t</script>"]


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("include_usage", [True, False])
def test_the_text_frame_is_the_chunk_dict_encoded(chat, include_usage):
    # an id and a model name that hold the frame's own marker cannot move the cut
    shape = TextShape(chat, "req-\x00frame\x00", 1700000000, "team/\x00frame\x00", include_usage=include_usage)
    reference = TextShape(chat, "req-\x00frame\x00", 1700000000, "team/\x00frame\x00", include_usage=include_usage)
    for text in TEXTS:
        got = shape.delta(Delta(text))
        assert got == sse(reference._chunk(text))
        event = orjson.loads(got[len(b"data: ") :])
        assert (event["choices"][0]["delta"]["content"] if chat else event["choices"][0]["text"]) == text


def test_other_choices_and_logprobs_are_built_as_before():
    shape = TextShape(True, "r", 1, "m", n=2)
    reference = TextShape(True, "r", 1, "m", n=2)
    assert shape.delta(Delta("x", index=1)) == sse(reference._chunk("x", index=1))
    lp = [("x", -0.5)]
    assert shape.delta(Delta("x", logprobs=lp)) == sse(reference._chunk("x", tokens=lp))
