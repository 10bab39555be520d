"""The stand-in emulates guided decoding, tool calling, end tokens and num_return_sequences on NVIDIA's real
tensor contract (the real tritonclient as the client), and records what it received."""

import json

import jsonschema
import pytest
import tritonclient.grpc as tg
from tritonclient.utils import InferenceServerException

from devtools.standin import agents
from devtools.standin.testing import StandInThread
from gateway.prompt import render_chat

from .test_standin_server import llm_inputs, stream_all, tensor, text_of

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "temp": {"type": "integer", "minimum": -40, "maximum": 50},
        "unit": {"enum": ["c", "f"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "when": {"type": "string", "format": "date"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["city", "temp", "unit", "tags", "when", "note"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture(scope="module")
def llama(e2e):
    t = StandInThread("chat", family="llama3").start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def unguided(e2e):
    t = StandInThread("chat", guided=False).start()
    yield t
    t.stop()


def answer(url: str, inputs) -> str:
    """The one response of a non-streamed request (the models are decoupled: unary ModelInfer is refused)."""
    import asyncio

    results = asyncio.run(stream_all(url, "ensemble", inputs))
    result, error = results[0]
    if error is not None:
        raise error
    return text_of(result)


def guided(prompt, kind, guide=None, max_tokens=200):
    ins = llm_inputs(prompt, max_tokens, exclude=True, counts=True)
    ins.append(tensor("guided_decoding_guide_type", [kind], "BYTES"))
    if guide is not None:
        ins.append(tensor("guided_decoding_guide", [guide], "BYTES"))
    return ins


def test_guided_output_satisfies_the_schema_and_the_inner_schema_is_recorded(chat):
    for prompt in ("weather in Paris?", "and in Rome?", "again"):
        out = answer(chat.url, guided(prompt, "json_schema", json.dumps(SCHEMA)))
        jsonschema.validate(json.loads(out), SCHEMA)
    got = chat.server.received[-1]
    assert got["guided_decoding_guide_type"] == ["json_schema"]
    assert json.loads(got["guided_decoding_guide"][0]) == SCHEMA


def test_guide_type_json_gives_an_object(chat):
    out = answer(chat.url, guided("hi", "json"))
    assert isinstance(json.loads(out), dict)


def test_an_unknown_guide_type_is_ignored_as_the_backends_do(chat):
    out = answer(chat.url, guided("hi", "structural_tag", "{}"))
    with pytest.raises(ValueError):
        json.loads(out)  # unconstrained text


def test_guides_need_a_guided_decoder(unguided):
    with pytest.raises(InferenceServerException) as e:
        answer(unguided.url, guided("hi", "json"))
    assert "GuidedDecoder is not setup" in e.value.message()
    cfg = tg.InferenceServerClient(unguided.url).get_model_config("tensorrt_llm").config
    assert cfg.parameters["guided_decoding_backend"].string_value == ""


@pytest.mark.e2e
def test_undeclared_guide_inputs_are_refused_as_triton_does(tmp_path):
    with StandInThread("chat", omit_inputs=("guided_decoding_guide_type", "guided_decoding_guide")) as t:
        with pytest.raises(InferenceServerException) as e:
            answer(t.url, guided("hi", "json"))
        assert "unexpected inference input 'guided_decoding_guide_type'" in e.value.message()


def prompt_with_tools(text, tools=TOOLS):
    from devtools.standin.models import FAMILIES, TEMPLATES

    template = (TEMPLATES / FAMILIES["llama3"][0]).read_text()
    return render_chat([{"role": "user", "content": text}], template, bos_token="<|begin_of_text|>", tools=tools)


def test_a_request_that_names_a_tool_gets_a_call_in_the_familys_format(llama):
    prompt = prompt_with_tools("What is the weather in Paris? Use get_weather.")
    stops = ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"]
    out = answer(llama.url, llm_inputs(prompt, 200, exclude=True, stop=stops))
    assert out.endswith("<|eom_id|>")  # the stop word ends it, and stays in the text (as with TensorRT-LLM)
    call = json.loads(out.removesuffix("<|eom_id|>"))
    assert call["name"] == "get_weather" and isinstance(call["parameters"]["city"], str)


def test_without_the_end_tokens_as_stop_words_the_engine_writes_on(llama):
    """NVIDIA's FIXME in its Llama tool parser: a turn ended by <|eom_id|> while end_id is <|eot_id|> goes on."""
    prompt = prompt_with_tools("What is the weather in Paris? Use get_weather.")
    out = answer(llama.url, llm_inputs(prompt, 200, exclude=True))
    assert "<|eom_id|>assistant\n\n" in out


def test_no_call_when_not_asked_or_after_a_tool_result(llama):
    plain = answer(llama.url, llm_inputs(prompt_with_tools("Tell me a story."), 50, exclude=True))
    assert not plain.lstrip().startswith("{")
    assert agents.wanted_call(prompt_with_tools("Tell me a story.")) is None
    from devtools.standin.models import FAMILIES, TEMPLATES

    template = (TEMPLATES / FAMILIES["llama3"][0]).read_text()
    after = render_chat(
        [
            {"role": "user", "content": "Weather in Paris? Use get_weather."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "21C", "tool_call_id": "c1"},
        ],
        template,
        tools=TOOLS,
    )
    assert agents.wanted_call(after) is None


def test_the_families_tool_layouts_are_found():
    from devtools.standin.models import FAMILIES, TEMPLATES

    for family, (name, bos, eos) in FAMILIES.items():
        prompt = render_chat(
            [{"role": "user", "content": "Use get_weather for Paris"}],
            (TEMPLATES / name).read_text(),
            bos_token=bos,
            eos_token=eos,
            tools=TOOLS,
        )
        found = agents.offered(prompt)
        assert found is not None, family
        assert [t["name"] for t in found[1]] == ["get_weather"]
        assert agents.wanted_call(prompt) is not None


async def test_num_return_sequences_streams_every_sequence_with_its_index(chat):
    ins = llm_inputs("Count", 6, exclude=True, counts=True, stream=True)
    ins.append(tensor("num_return_sequences", [3], "INT32"))
    results = await stream_all(chat.url, "ensemble", ins)
    assert all(err is None for _, err in results)
    by_seq: dict[int, str] = {}
    for r, _ in results:
        seq = int(r.as_numpy("sequence_index").reshape(-1)[0])
        by_seq[seq] = r.as_numpy("text_output").reshape(-1)[0].decode()  # BLS accumulates; the ensemble does not
    assert set(by_seq) == {0, 1, 2}


def test_num_return_sequences_unary_answers_one_response_per_sequence(chat):
    ins = llm_inputs("Count", 6, exclude=True, counts=True, stream=False)
    ins.append(tensor("num_return_sequences", [2], "INT32"))
    import asyncio

    results = asyncio.run(stream_all(chat.url, "ensemble", ins))
    seqs = [int(r.as_numpy("sequence_index").reshape(-1)[0]) for r, _ in results]
    texts = [r.as_numpy("text_output").reshape(-1)[0].decode() for r, _ in results]
    assert seqs == [0, 1] and texts[0] != texts[1]
    # sequence 0 is what n = 1 answers
    one = asyncio.run(stream_all(chat.url, "ensemble", llm_inputs("Count", 6, exclude=True, stream=False)))
    assert one[0][0].as_numpy("text_output").reshape(-1)[0].decode() == texts[0]
