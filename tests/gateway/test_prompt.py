import pytest

from gateway.errors import InvalidRequest
from gateway.prompt import render_chat

LLAMA3 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
          "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def test_default_template_is_chatml_with_generation_prompt():
    out = render_chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}], None)
    assert out == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_model_template_without_double_bos():
    out = render_chat([{"role": "user", "content": "hi"}], LLAMA3)
    assert out.startswith("<|start_header_id|>user")  # Triton's preprocessing adds BOS itself
    assert out.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_template_errors_are_the_callers_400():
    strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}"
    with pytest.raises(InvalidRequest) as e:
        render_chat([{"role": "assistant", "content": "x"}], strict)
    assert "first message must be user" in e.value.message


def test_templates_are_sandboxed():
    with pytest.raises(Exception):
        render_chat([], "{{ ''.__class__.__mro__[1].__subclasses__() }}")
