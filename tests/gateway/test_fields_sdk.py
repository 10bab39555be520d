"""Every field of the pinned openai SDK's request-parameter types is classified in the field table
(gateway/fields.py): honoured, accepted at its neutral value, or refused by name — never "unrecognized". When an SDK
upgrade adds a field, this fails until the field has a row."""

import pytest
import typing_extensions
from openai.types import completion_create_params, image_generate_params
from openai.types.chat import completion_create_params as chat_create_params
from openai.types.responses import response_create_params

from gateway.errors import InvalidRequest
from gateway.fields import ENDPOINTS, NEUTRAL, REFUSED, validate

SDK = {
    "chat.completions": (chat_create_params, "CompletionCreateParams"),
    "completions": (completion_create_params, "CompletionCreateParams"),
    "images.generations": (image_generate_params, "ImageGenerateParams"),
    "responses": (response_create_params, "ResponseCreateParams"),
}


def sdk_fields(module, prefix: str) -> set[str]:
    """The union of the request TypedDicts' keys (base, streaming and non-streaming variants)."""
    names: set[str] = set()
    for attr in dir(module):
        t = getattr(module, attr)
        if attr.startswith(prefix) and typing_extensions.is_typeddict(t):
            names |= set(t.__required_keys__) | set(t.__optional_keys__)
    assert names, f"no request-parameter types named {prefix}* in {module.__name__}"
    return names


@pytest.mark.parametrize("endpoint", SDK)
def test_every_sdk_field_has_a_row(endpoint):
    module, prefix = SDK[endpoint]
    missing = sdk_fields(module, prefix) - set(ENDPOINTS[endpoint].fields)
    assert not missing, f"{endpoint}: classify {sorted(missing)} in gateway/fields.py"


@pytest.mark.parametrize("endpoint", SDK)
def test_no_documented_field_is_unrecognized(endpoint):
    """A non-neutral value of a refused or neutral-only field is refused by name as unsupported_parameter."""
    for name, f in ENDPOINTS[endpoint].fields.items():
        if f.support is REFUSED or (f.support is NEUTRAL and f.neutral):
            value = {
                "object": {"x": 1},
                "array": ["x"],
                "string": "x-unsupported",
                "boolean": True,
                "integer": 7,
                "number": 7,
            }[f.types[0]]
            if value in f.neutral:
                continue
            body = {"model": "a/b", name: value}
            with pytest.raises(InvalidRequest) as e:
                validate(body, endpoint)
            assert e.value.code != "unrecognized" and "Unrecognized" not in e.value.message, (endpoint, name)
            if e.value.param == name:
                assert e.value.code in ("unsupported_parameter", "invalid_type", "invalid_value"), (name, e.value.code)


def test_langchain_js_dalle_defaults_and_newer_chat_fields_are_accepted():
    validate({"model": "a/b", "prompt": "x", "style": "vivid", "quality": "standard"}, "images.generations")
    validate(
        {
            "model": "a/b",
            "messages": [{"role": "user", "content": "x"}],
            "verbosity": "medium",
            "prompt_cache_retention": "24h",
        },
        "chat.completions",
    )
    with pytest.raises(InvalidRequest) as e:
        validate({"model": "a/b", "prompt": "x", "style": "natural"}, "images.generations")
    assert (e.value.param, e.value.code) == ("style", "unsupported_parameter")
