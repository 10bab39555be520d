"""The chunk template against orjson itself: whatever text the template reads from a chunk's bytes is what parsing
the chunk gives, and it reads only chunks whose parse is the learnt chunk with a new text; every other chunk is left
to the parser. The chunk shapes are those upstreams send: vLLM's (as a vLLM 0.9 server streamed them for Qwen3,
github.com/Zerohertz/Instruct_KR_2025_Summer_Meetup_vLLM, src/03_v1_chat_completions_with_stream.sh), OpenAI's (with
system_fingerprint and a per-chunk obfuscation nonce), and one with usage in every chunk (continuous usage stats)."""

from __future__ import annotations

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.backends.base import GenRequest, Sampling
from gateway.backends.openai import _Answer
from gateway.backends.openai_chunks import ChunkTemplate, plain_index

VLLM = (
    '{"id":"chatcmpl-dc461701bc424bac9de697c529922071","object":"chat.completion.chunk","created":1753616032,'
    '"model":"Qwen/Qwen3-0.6B","choices":[{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}'
)
VLLM_ROLE = (
    '{"id":"chatcmpl-dc461701bc424bac9de697c529922071","object":"chat.completion.chunk","created":1753616032,'
    '"model":"Qwen/Qwen3-0.6B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
    '"finish_reason":null}]}'
)
VLLM_END = (
    '{"id":"chatcmpl-dc461701bc424bac9de697c529922071","object":"chat.completion.chunk","created":1753616032,'
    '"model":"Qwen/Qwen3-0.6B","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop",'
    '"stop_reason":null}]}'
)
OPENAI = (
    '{"id":"chatcmpl-C1x","object":"chat.completion.chunk","created":1764000000,"model":"gpt-4o-mini-2024-07-18",'
    '"service_tier":"default","system_fingerprint":"fp_51db84afab","choices":[{"index":0,"delta":{"content":%s},'
    '"logprobs":null,"finish_reason":null}],"obfuscation":"%s"}'
)
CONTINUOUS = (
    '{"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":%s},'
    '"finish_reason":null}],"usage":{"prompt_tokens":30,"completion_tokens":%d,"total_tokens":%d}}'
)
TEXTS = ["<think>", "\n", " Hello", "!", " 😊", ' say "hi"', "a\\b", "", " 你好", "\t", "zq"]


def vllm(text: str) -> bytes:
    return (VLLM % orjson.dumps(text).decode()).encode()


def content(payload: bytes) -> str:
    return orjson.loads(payload)["choices"][0]["delta"]["content"]


def answer() -> _Answer:
    return _Answer(GenRequest("", Sampling(max_tokens=100)))


def taken(a: _Answer, payloads: list[bytes]) -> list[tuple[str, int]]:
    """The deltas of each payload, fed to the answer one read at a time."""
    out: list = []
    for p in payloads:
        a.feed([p], out)
    return [(d.text, d.index) for d in out]


def test_a_vllm_stream_is_read_from_its_bytes_after_its_first_text_chunk():
    template = ChunkTemplate()
    template.learn(VLLM_ROLE.encode(), orjson.loads(VLLM_ROLE))  # the role chunk's text is empty: nothing learnt
    assert template.prefix is None
    first = vllm("<think>")
    template.learn(first, orjson.loads(first))
    assert template.prefix is not None and template.prefix.endswith(b'"content":"')
    for text in ("<think>", " Hello", "!", " 😊", "", " 你好"):
        assert template.read(vllm(text)) == text == content(vllm(text))
    for text in ("\n", ' say "hi"', "a\\b", "\t"):  # escaped in the chunk: left to the parser
        assert template.read(vllm(text)) is None
    assert template.read(VLLM_END.encode()) is None  # the finish chunk differs after the text
    assert template.read(VLLM_ROLE.encode()) is None


def test_chunks_the_template_cannot_read_are_not_learnt_from():
    for event in (
        orjson.loads(VLLM_END),  # a finish reason
        orjson.loads(CONTINUOUS % ('" x"', 1, 31)),  # usage
        {"choices": [{"index": 0, "delta": {"content": "x", "reasoning_content": "r"}}]},
        {"choices": [{"index": 0, "delta": {"content": "x", "tool_calls": [{"index": 0}]}}]},
        {"choices": [{"index": 0, "delta": {"content": "x"}}, {"index": 1, "delta": {"content": "y"}}]},
        {"choices": [{"index": "0", "delta": {"content": "x"}}]},
        {"choices": [{"index": 0, "text": "x"}]},  # completions: no delta
        ["x"],
    ):
        assert plain_index(event) is None, event


def test_a_text_that_also_appears_elsewhere_in_the_chunk_is_found_where_the_parse_says():
    # the text is the model name, and the id: the probe shows which bytes are the content
    for raw in (
        '{"id":"zq","model":"zq","choices":[{"index":0,"delta":{"content":"zq"}}]}',
        '{"choices":[{"index":0,"delta":{"content":"ab"}}],"model":"ab"}',
        '{"choices":[{"index":0,"delta":{"content":"ab","content":"ab"}}]}',  # a duplicate key: the last one counts
    ):
        template = ChunkTemplate()
        template.learn(raw.encode(), orjson.loads(raw))
        assert template.prefix is not None, raw
        for text in ("cd", "", "zq x"):
            changed = template.prefix + text.encode() + template.suffix
            assert template.read(changed) == text == content(changed), raw


def test_an_upstream_whose_chunks_differ_beyond_their_text_is_parsed_and_stops_being_learnt():
    a = answer()
    payloads = [(OPENAI % (orjson.dumps(f" w{i}").decode(), "abcdefghij"[i] * (i % 5 + 1))).encode() for i in range(10)]
    assert taken(a, payloads) == [(f" w{i}", 0) for i in range(10)]
    assert a.template.tries == 3
    a = answer()  # with usage in every chunk: never learnt
    payloads = [(CONTINUOUS % (orjson.dumps(f" w{i}").decode(), i + 1, i + 31)).encode() for i in range(5)]
    assert taken(a, payloads) == [(f" w{i}", 0) for i in range(5)]
    assert a.template.prefix is None and a.template.tries == 0
    assert a.req.work.prompt_tokens == 30


def test_an_answer_read_through_the_template_is_the_answer_parsed():
    stream = [VLLM_ROLE.encode()] + [vllm(t) for t in TEXTS * 3] + [VLLM_END.encode()]
    fast, slow = answer(), answer()
    slow.template.tries = 99  # never learns: every chunk parsed
    assert taken(fast, stream) == taken(slow, stream) == [(t, 0) for t in TEXTS * 3 if t]
    assert fast.template.prefix is not None and slow.template.prefix is None
    assert fast.result() == slow.result()
    assert fast.req.work.completion_tokens == slow.req.work.completion_tokens == len([t for t in TEXTS * 3 if t])


EMPTY = vllm("")
AFTER_QUOTE = EMPTY.index(b'"content":""') + len(b'"content":"')  # an empty text's closing quote


@settings(max_examples=400, deadline=None)
@example(EMPTY, AFTER_QUOTE, 1, b"", "cut")  # its opening quote then ends both the prefix and the suffix
@given(
    st.sampled_from([vllm(t) for t in TEXTS] + [VLLM_END.encode(), VLLM_ROLE.encode()]),
    st.integers(0, 400),
    st.integers(0, 8),
    st.binary(max_size=6) | st.sampled_from([b'"', b"\\", b"}", b"]", b",", b'"x":1', b"\xff", b"\xe4\xbd"]),
    st.sampled_from(["cut", "insert", "replace", "append"]),
)
def test_whatever_the_template_reads_from_altered_bytes_is_what_orjson_parses(base, at, span, noise, how):
    template = ChunkTemplate()
    learnt = vllm(" Hello")
    template.learn(learnt, orjson.loads(learnt))
    at = min(at, len(base))
    if how == "cut":
        payload = base[:at] + base[at + span :]
    elif how == "insert":
        payload = base[:at] + noise + base[at:]
    elif how == "replace":
        payload = base[:at] + noise + base[at + len(noise) :]
    else:
        payload = base + noise
    text = template.read(payload)
    if text is None:
        return
    parsed = orjson.loads(payload)  # what the template read must parse, to the learnt chunk with that text
    expected = orjson.loads(learnt)
    expected["choices"][0]["delta"]["content"] = text
    assert parsed == expected
