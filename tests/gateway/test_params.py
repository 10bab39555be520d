import pytest

from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.params import chat_params, completion_params, image_params
from modelsvc.catalog import Model, Task

CHAT = Model(source="s3://m", max_output_tokens=100)
VISION = Model(task=Task.vision_chat, source="s3://m")
IMAGES = Model(task=Task.image_generation, source="s3://m")
MSG = [{"role": "user", "content": "hi"}]


def test_defaults_and_max_tokens_precedence():
    p = chat_params({"model": "a/b", "messages": MSG}, CHAT)
    assert p.sampling.max_tokens == 100 and p.sampling.temperature is None and not p.stream
    p = chat_params({"model": "a/b", "messages": MSG, "max_tokens": 5, "max_completion_tokens": 7}, CHAT)
    assert p.sampling.max_tokens == 7  # the newer name wins
    assert completion_params({"model": "a/b", "prompt": "x"}, CHAT).sampling.max_tokens == 16  # OpenAI's default


def test_stop_forms_and_negative_seed():
    assert chat_params({"model": "a/b", "messages": MSG, "stop": "END"}, CHAT).sampling.stop == ("END",)
    assert chat_params({"model": "a/b", "messages": MSG, "stop": ["a", "b"]}, CHAT).sampling.stop == ("a", "b")
    assert chat_params({"model": "a/b", "messages": MSG, "seed": -1}, CHAT).sampling.seed == 2**64 - 1


def test_parts_images_and_placeholders():
    body = {
        "model": "a/b",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                ],
            }
        ],
    }
    p = chat_params(body, VISION)
    assert p.images == ("data:image/png;base64,AA==",)
    assert p.messages[0]["content"] == "what is\n<image>"
    with pytest.raises(InvalidRequest) as e:
        chat_params(body, CHAT)
    assert e.value.code == "image_not_supported"
    bad = {
        "model": "a/b",
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}],
    }
    with pytest.raises(InvalidRequest) as e:
        chat_params(bad, VISION)
    assert e.value.param == "messages[0].content[0].image_url.url"


def test_a_callers_image_placeholder_is_text_in_every_content_form():
    """On a vision model only image parts place <image>: typed into a plain-string message (before: it reached the
    engine as a placeholder with no image, a 502) or a text part, it is text."""
    typed = "what is <image> here"
    for content in (typed, [{"type": "text", "text": typed}]):
        body = {"model": "x", "messages": [{"role": "system", "content": typed}, {"role": "user", "content": content}]}
        p = chat_params(body, VISION)
        assert p.images == () and all("<image>" not in m["content"] for m in p.messages)
        assert all(m["content"].replace("\u200b", "") == typed for m in p.messages)
    assert (
        chat_params({"model": "x", "messages": [{"role": "user", "content": typed}]}, CHAT).messages[0]["content"]
        == typed
    )  # on a text model <image> means nothing


def test_neutral_values_of_unsupported_parameters_pass():
    chat_params(
        {"model": "a/b", "messages": MSG, "tools": [], "logprobs": False, "response_format": {"type": "text"}}, CHAT
    )
    with pytest.raises(UnsupportedParameter):
        chat_params({"model": "a/b", "messages": MSG, "logprobs": True, "top_logprobs": 3}, CHAT)


def test_assistant_null_content_and_images_endpoint():
    p = chat_params({"model": "a/b", "messages": [{"role": "assistant", "content": None}, *MSG]}, CHAT)
    assert p.messages[0] == {"role": "assistant", "content": ""}
    ip = image_params({"model": "a/b", "prompt": "cat", "n": 3, "size": "64x64"}, IMAGES)
    assert (ip.n, ip.size) == (3, "64x64")
    for body, param in [
        ({"model": "a/b"}, "prompt"),
        ({"model": "a/b", "prompt": "x", "n": 11}, "n"),
        ({"model": "a/b", "prompt": "x", "response_format": "url"}, "response_format"),
    ]:
        with pytest.raises(InvalidRequest) as e:
            image_params(body, IMAGES)
        assert e.value.param == param


@pytest.mark.parametrize(
    "parse,body,field",
    [
        (chat_params, {"model": "a/b", "messages": MSG, "foo_bar": 1}, "foo_bar"),
        (chat_params, {"model": "a/b", "messages": MSG, "prompt": "x"}, "prompt"),  # a completions field on chat
        (completion_params, {"model": "a/b", "prompt": "x", "foo_bar": 1}, "foo_bar"),
        (completion_params, {"model": "a/b", "prompt": "x", "messages": MSG}, "messages"),
        (image_params, {"model": "a/b", "prompt": "x", "foo_bar": 1}, "foo_bar"),
    ],
)
def test_unknown_fields_are_refused_like_openai(parse, body, field):
    model = IMAGES if parse is image_params else CHAT
    with pytest.raises(InvalidRequest) as e:
        parse(body, model)
    assert e.value.message == f"Unrecognized request argument supplied: {field}"
    assert (e.value.status, e.value.type, e.value.param) == (400, "invalid_request_error", field)


def test_several_unknown_fields_are_named_together():
    with pytest.raises(InvalidRequest) as e:
        chat_params({"model": "a/b", "messages": MSG, "a": 1, "b": 2}, CHAT)
    assert e.value.message == "Unrecognized request arguments supplied: a, b"
    with pytest.raises(InvalidRequest) as e:
        chat_params({"model": "a/b", "messages": MSG, "stream": True, "stream_options": {"x": 1}}, CHAT)
    assert e.value.param == "stream_options.x"


@pytest.mark.parametrize(
    "name,value,ok",
    [
        ("top_k", -1, 0),
        ("top_k", 0, 0),
        ("top_k", 40, 40),
        ("top_k", -2, None),
        ("top_k", 1.5, None),
        ("min_p", 0.05, 0.05),
        ("min_p", 1.5, None),
        ("min_p", "x", None),
        ("repetition_penalty", 1.1, 1.1),
        ("repetition_penalty", 0, None),
        ("repetition_penalty", 2.5, None),
        ("min_tokens", 5, 5),
        ("min_tokens", -1, None),
        ("min_tokens", 101, None),  # above max_tokens (100)
        ("length_penalty", -0.5, -0.5),
        ("length_penalty", float("nan"), None),
        ("ignore_eos", True, True),
        ("ignore_eos", 123, None),
        ("beam_width", 2, 2),
        ("beam_width", 0, None),
        ("bad_words", ["x", "y"], ("x", "y")),
        ("bad_words", "x", None),
        ("bad_words", [""], None),
    ],
)
def test_extensions_are_validated_with_vllms_ranges(name, value, ok):
    body = {"model": "a/b", "messages": MSG, name: value}
    if ok is None:
        with pytest.raises(InvalidRequest) as e:
            chat_params(body, CHAT)
        assert e.value.param == name
    else:
        assert chat_params(body, CHAT).sampling.extensions == {name: ok}
    assert chat_params({"model": "a/b", "messages": MSG, "ignore_eos": False}, CHAT).sampling.extensions == {}


def test_logprobs_and_echo_forms():
    assert chat_params({"model": "a/b", "messages": MSG, "logprobs": True, "top_logprobs": 0}, CHAT).sampling.logprobs
    assert completion_params({"model": "a/b", "prompt": "x", "logprobs": 0}, CHAT).sampling.logprobs
    assert not completion_params({"model": "a/b", "prompt": "x"}, CHAT).sampling.logprobs
    for parse, body, param in [
        (chat_params, {"model": "a/b", "messages": MSG, "top_logprobs": 0}, "top_logprobs"),
        (completion_params, {"model": "a/b", "prompt": "x", "logprobs": 2}, "logprobs"),
        (completion_params, {"model": "a/b", "prompt": "x", "logprobs": 0, "echo": True}, "echo"),
    ]:
        with pytest.raises(InvalidRequest) as e:
            parse(body, CHAT)
        assert e.value.param == param
    assert completion_params({"model": "a/b", "prompt": "x", "echo": True}, CHAT).echo


def test_image_placeholders_come_only_from_image_parts():
    body = {"model": "a/b", "messages": [{"role": "user", "content": [{"type": "text", "text": "<image> twice"}]}]}
    assert "<image>" not in chat_params(body, VISION).messages[0]["content"]


# -- the field table drives validation, the unknown-field refusal and the OpenAPI document ----------------------------
def test_a_field_added_to_the_table_is_validated_accepted_and_documented(monkeypatch):
    from gateway import fields
    from gateway.openapi import document

    body = {"model": "a/b", "messages": MSG, "frobnicate": 2}
    with pytest.raises(InvalidRequest) as e:
        chat_params(body, CHAT)
    assert e.value.message == "Unrecognized request argument supplied: frobnicate"
    assert "frobnicate" not in document()["components"]["schemas"]["ChatCompletionRequest"]["properties"]

    row = fields.Field("frobnicate", ("integer",), lo=0, hi=3, doc="How much to frobnicate.")
    monkeypatch.setitem(fields.ENDPOINTS, "chat.completions", fields.CHAT.with_fields(row))
    chat_params(body, CHAT)  # no longer unrecognized: the refusal list is the table's
    for value, code in [(9, "invalid_value"), ("x", "invalid_type")]:
        with pytest.raises(InvalidRequest) as e:
            chat_params({**body, "frobnicate": value}, CHAT)
        assert (e.value.param, e.value.code) == ("frobnicate", code)
    schema = document()["components"]["schemas"]["ChatCompletionRequest"]
    assert schema["properties"]["frobnicate"] == {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": 3,
        "description": "How much to frobnicate.",
    }
    assert schema["additionalProperties"] is False


def test_a_neutral_row_accepts_its_neutral_values_and_refuses_others_by_name(monkeypatch):
    from gateway import fields
    from gateway.openapi import document

    row = fields.Field("verbosity", ("string",), fields.NEUTRAL, neutral=("medium",))
    monkeypatch.setitem(fields.ENDPOINTS, "chat.completions", fields.CHAT.with_fields(row))
    chat_params({"model": "a/b", "messages": MSG, "verbosity": "medium"}, CHAT)
    chat_params({"model": "a/b", "messages": MSG, "verbosity": None}, CHAT)
    with pytest.raises(UnsupportedParameter) as e:
        chat_params({"model": "a/b", "messages": MSG, "verbosity": "high"}, CHAT)
    assert (e.value.param, e.value.code, e.value.status) == ("verbosity", "unsupported_parameter", 400)
    prop = document()["components"]["schemas"]["ChatCompletionRequest"]["properties"]["verbosity"]
    assert prop["enum"] == [None, "medium"]


@pytest.mark.parametrize("endpoint", ["chat.completions", "completions", "images.generations"])
def test_every_row_is_in_the_openapi_document_and_nothing_else(endpoint):
    from gateway import fields
    from gateway.openapi import document

    name = {"chat.completions": "ChatCompletionRequest", "completions": "CompletionRequest"}.get(
        endpoint, "ImageRequest"
    )
    schema = document()["components"]["schemas"][name]
    table = fields.ENDPOINTS[endpoint]
    assert set(schema["properties"]) == set(table.fields)
    assert set(schema["required"]) == set(table.required)


def test_openapi_examples_of_every_row_pass_validation():
    """What the document allows, validation accepts: each honoured row's bounds, each neutral row's values."""
    from gateway import fields

    for f in fields.CHAT.fields.values():
        if f.parse is not None or f.required:
            continue
        bounds = (None if f.lo_open else f.lo, f.hi)
        values = list(f.neutral) if f.support is fields.NEUTRAL else [v for v in bounds if v is not None]
        for value in values:
            if "integer" in f.types:
                value = int(value)
            extra = {"logprobs": True} if f.name == "top_logprobs" else {}  # the one cross-field rule here
            chat_params({"model": "a/b", "messages": MSG, f.name: value, **extra}, CHAT)
