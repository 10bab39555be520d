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
    body = {"model": "a/b", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]}
    p = chat_params(body, VISION)
    assert p.images == ("data:image/png;base64,AA==",)
    assert p.messages[0]["content"] == "what is\n<image>"
    with pytest.raises(InvalidRequest) as e:
        chat_params(body, CHAT)
    assert e.value.code == "image_not_supported"
    bad = {"model": "a/b", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}
    with pytest.raises(InvalidRequest) as e:
        chat_params(bad, VISION)
    assert e.value.param == "messages[0].content[0].image_url.url"


def test_neutral_values_of_unsupported_parameters_pass():
    chat_params({"model": "a/b", "messages": MSG, "tools": [], "logprobs": False, "response_format": {"type": "text"}},
                CHAT)
    with pytest.raises(UnsupportedParameter):
        chat_params({"model": "a/b", "messages": MSG, "logprobs": True}, CHAT)


def test_assistant_null_content_and_images_endpoint():
    p = chat_params({"model": "a/b", "messages": [{"role": "assistant", "content": None}, *MSG]}, CHAT)
    assert p.messages[0] == {"role": "assistant", "content": ""}
    ip = image_params({"model": "a/b", "prompt": "cat", "n": 3, "size": "64x64"}, IMAGES)
    assert (ip.n, ip.size) == (3, "64x64")
    for body, param in [({"model": "a/b"}, "prompt"), ({"model": "a/b", "prompt": "x", "n": 11}, "n"),
                        ({"model": "a/b", "prompt": "x", "response_format": "url"}, "response_format")]:
        with pytest.raises(InvalidRequest) as e:
            image_params(body, IMAGES)
        assert e.value.param == param
