"""OpenAI's request validation, and the engine extensions TensorRT-LLM honours, through the official Python SDK."""

import openai
import pytest
from openai import OpenAI

from devtools.standin.testing import StandInThread

from .harness import DEMO_KEY, OTHER_KEY, Gateway

SVC = "u-8105f7322477/test"  # a stand-in with every input of TensorRT-LLM's ensemble that the gateway uses
BARE = "u-8105f7322477/support-bot"  # a stand-in whose config lacks min_tokens, end_id, top_k and log probabilities
IMAGES = "u-3f9a2c7e51d0/product-images"
MSG = [{"role": "user", "content": "tell me about extensions"}]


@pytest.fixture(scope="module")
def fid(e2e, tmp_path_factory):
    engines = [
        StandInThread("chat").start(),
        StandInThread("image").start(),
        StandInThread("chat", omit_inputs=("min_tokens", "end_id", "top_k", "return_log_probs")).start(),
    ]
    chat, image, bare = (f"127.0.0.1:{t.server.port}" for t in engines)
    g = Gateway(tmp_path_factory.mktemp("fid"), {SVC: [chat], BARE: [bare], IMAGES: [image]}).start()
    yield g
    g.stop()
    for t in engines:
        t.stop()


@pytest.fixture(scope="module")
def client(fid):
    return OpenAI(base_url=fid.url + "/v1", api_key=DEMO_KEY, max_retries=0)


def bad_request(call) -> dict:
    with pytest.raises(openai.BadRequestError) as e:
        call()
    assert e.value.status_code == 400 and isinstance(e.value.body, dict)
    return e.value.body


@pytest.mark.parametrize("endpoint", ["chat", "completions", "images"])
def test_unknown_fields_get_openais_400(fid, client, endpoint):
    if endpoint == "chat":
        call = lambda: client.chat.completions.create(model=SVC, messages=MSG, extra_body={"foo_bar": 1})  # noqa: E731
    elif endpoint == "completions":
        call = lambda: client.completions.create(model=SVC, prompt="x", extra_body={"foo_bar": 1})  # noqa: E731
    else:
        other = OpenAI(base_url=fid.url + "/v1", api_key=OTHER_KEY, max_retries=0)
        call = lambda: other.images.generate(model=IMAGES, prompt="x", extra_body={"foo_bar": 1})  # noqa: E731
    body = bad_request(call)
    assert body["message"] == "Unrecognized request argument supplied: foo_bar"
    assert (body["type"], body["param"]) == ("invalid_request_error", "foo_bar")


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"min_tokens": -1}, "min_tokens"),
        ({"ignore_eos": 123}, "ignore_eos"),
        ({"top_k": "ten"}, "top_k"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"min_p": 2}, "min_p"),
    ],
)
def test_extensions_are_validated(client, extra, param):
    assert (
        bad_request(lambda: client.chat.completions.create(model=SVC, messages=MSG, extra_body=extra))["param"] == param
    )


def test_extensions_are_honoured_by_the_engine(client):
    plain = client.chat.completions.create(model=SVC, messages=MSG, max_tokens=60)
    assert plain.usage.completion_tokens <= 40 and plain.choices[0].finish_reason == "stop"  # the natural end
    r = client.chat.completions.create(model=SVC, messages=MSG, max_tokens=60, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 60 and r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model=SVC, messages=MSG, max_tokens=60, extra_body={"min_tokens": 45})
    assert r.usage.completion_tokens == 45 and r.choices[0].message.content.startswith(plain.choices[0].message.content)
    r = client.completions.create(
        model=SVC,
        prompt="once upon",
        max_tokens=50,
        extra_body={
            "top_k": 20,
            "repetition_penalty": 1.1,
            "length_penalty": 1.0,
            "beam_width": 1,
            "bad_words": ["zzz"],
        },
    )
    assert r.choices[0].text


@pytest.mark.parametrize("extra", [{"min_tokens": 3}, {"ignore_eos": True}, {"top_k": 5}, {"min_p": 0.1}])
def test_extensions_the_models_config_lacks_are_refused_naming_them(client, extra):
    (name,) = extra
    body = bad_request(lambda: client.chat.completions.create(model=BARE, messages=MSG, extra_body=extra))
    assert body["param"] == name and body["code"] == "unsupported_parameter" and name in body["message"]
    client.chat.completions.create(model=BARE, messages=MSG, extra_body={"ignore_eos": False})  # neutral: fine


def test_echo_prepends_the_prompt_and_keeps_usage(client):
    plain = client.completions.create(model=SVC, prompt="once upon a time", max_tokens=10)
    echoed = client.completions.create(model=SVC, prompt="once upon a time", max_tokens=10, echo=True)
    assert echoed.choices[0].text == "once upon a time" + plain.choices[0].text
    assert echoed.usage == plain.usage
    chunks = list(
        client.completions.create(model=SVC, prompt="once upon a time", max_tokens=10, echo=True, stream=True)
    )
    assert chunks[0].choices[0].text == "once upon a time"
    assert "".join(c.choices[0].text for c in chunks if c.choices) == echoed.choices[0].text


def test_logprobs_of_the_chosen_tokens(client):
    r = client.chat.completions.create(model=SVC, messages=MSG, max_tokens=12, logprobs=True)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    assert all(t.logprob < 0 and t.top_logprobs == [] for t in content)
    streamed = [
        t
        for c in client.chat.completions.create(model=SVC, messages=MSG, max_tokens=12, logprobs=True, stream=True)
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content
    ]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]
    c = client.completions.create(model=SVC, prompt="once upon", max_tokens=5, logprobs=0)
    lp = c.choices[0].logprobs
    assert len(lp.token_logprobs) == c.usage.completion_tokens and "".join(lp.tokens) == c.choices[0].text
    assert (
        bad_request(lambda: client.chat.completions.create(model=SVC, messages=MSG, logprobs=True, top_logprobs=2))[
            "param"
        ]
        == "top_logprobs"
    )
    assert (
        bad_request(lambda: client.chat.completions.create(model=BARE, messages=MSG, logprobs=True))["param"]
        == "logprobs"
    )


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"n": 129}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        # the stand-in's chat profile has no chat template (ChatML): it renders no tools
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        (  # strict mode as OpenAI checks it: every object closed, every property required
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "strict": True,
                        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                    },
                }
            },
            "response_format",
        ),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
        ({"max_completion_tokens": 10**6}, "max_completion_tokens"),
    ],
)
def test_openai_validation_of_standard_fields(client, kwargs, param):
    assert bad_request(lambda: client.chat.completions.create(model=SVC, messages=MSG, **kwargs))["param"] == param


def test_standard_fields_accepted(client):
    r = client.chat.completions.create(
        model=SVC,
        messages=MSG,
        user="u-42",
        seed=7,
        logit_bias={},
        n=1,
        max_completion_tokens=5,
        metadata={"team": "a"},
        store=False,
    )
    assert r.usage.completion_tokens <= 5
    chunks = list(
        client.chat.completions.create(
            model=SVC, messages=MSG, stream=True, max_tokens=5, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and 1 <= chunks[-1].usage.completion_tokens <= 5
