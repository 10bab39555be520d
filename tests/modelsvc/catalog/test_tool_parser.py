"""tool_parser: validated per model, a default from the model family, refused by validate where it cannot work."""

import pytest

from modelsvc.catalog import CatalogError, loads
from modelsvc.catalog.families import END_TOKENS, default_tool_parser, family, tool_parser
from modelsvc.catalog.model import Model, ToolParser

from .samples import VALID, replace

TOOLS_TEMPLATE = '"{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}{{ tools | tojson }}{% endif %}"'
PLAIN_TEMPLATE = '"{% for m in messages %}{{ m.content }}{% endfor %}"'


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


@pytest.mark.parametrize(
    "name,source,want",
    [
        ("llama-3.1-8b-instruct", "s3://m/llama-3.1-8b-instruct", ToolParser.llama3_json),
        ("chat", "s3://m/Meta-Llama-3.3-70B-Instruct", ToolParser.llama3_json),
        ("qwen", "s3://m/Qwen2.5-7B-Instruct", ToolParser.hermes),
        ("qwen3-8b", "s3://m/qwen3-8b", ToolParser.hermes),
        ("qwq", "s3://m/QwQ-32B", ToolParser.hermes),
        ("mistral-7b-instruct-v0.3", "s3://m/x", ToolParser.mistral),
        ("qwen2-vl-7b-instruct", "s3://m/qwen2-vl", ToolParser.none),  # its template takes no tools
        ("qwen2.5-vl-7b", "s3://m/Qwen2.5-VL-7B-Instruct", ToolParser.none),
        ("gemma", "s3://m/gemma-2-9b-it", ToolParser.none),
    ],
)
def test_defaults_follow_the_family(name, source, want):
    assert default_tool_parser(name, Model(source=source)) is want


def test_an_explicit_setting_wins_and_openai_upstreams_parse_their_own():
    assert tool_parser("my-finetune", Model(source="s3://m/x", tool_parser=ToolParser.hermes)) is ToolParser.hermes
    upstream = Model(backend="openai", upstream="http://vllm:8000/v1", upstream_model="meta-llama/Llama-3.1-8B")
    assert family("x", upstream) == "llama3" and default_tool_parser("x", upstream) is ToolParser.none


def test_end_tokens_are_the_checkpoints():
    assert END_TOKENS[ToolParser.llama3_json] == ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")
    assert END_TOKENS[ToolParser.hermes] == ("<|im_end|>", "<|endoftext|>")


def test_valid_settings_load():
    text = replace(
        VALID, "    gpus: 1\n", f"    gpus: 1\n    tool_parser: hermes\n    chat_template: {TOOLS_TEMPLATE}\n"
    )
    assert loads(text).models["chat-8b"].tool_parser is ToolParser.hermes


def test_unknown_values_are_refused_with_the_choices():
    text = replace(VALID, "    gpus: 1\n", "    gpus: 1\n    tool_parser: pythonic\n")
    (p,) = problems(text)
    assert p.startswith("services.yaml:15:") and "tool_parser" in p and "hermes" in p


def test_a_template_that_renders_no_tools_is_refused_where_the_parser_is_set():
    text = replace(
        VALID, "    gpus: 1\n", f"    gpus: 1\n    tool_parser: llama3_json\n    chat_template: {PLAIN_TEMPLATE}\n"
    )
    (p,) = problems(text)
    assert p.startswith("services.yaml:15:") and "never renders `tools`" in p and "tool_parser: none" in p


def test_none_with_such_a_template_is_fine():
    text = replace(VALID, "    gpus: 1\n", f"    gpus: 1\n    tool_parser: none\n    chat_template: {PLAIN_TEMPLATE}\n")
    assert loads(text).models["chat-8b"].tool_parser is ToolParser.none


def test_a_broken_template_is_reported_where_it_is():
    text = replace(VALID, "    gpus: 1\n", '    gpus: 1\n    chat_template: "{% for m in messages %}"\n')
    (p,) = problems(text)
    assert p.startswith("services.yaml:15:") and "not valid Jinja2" in p


def test_openai_backend_and_images_refuse_it():
    text = replace(
        VALID,
        "  chat-70b:\n    source: s3://models/chat-70b\n    gpus: 4\n",
        "  chat-70b:\n    source: s3://models/chat-70b\n    gpus: 4\n"
        "  remote:\n    backend: openai\n    upstream: http://vllm:8000/v1\n    tool_parser: hermes\n"
        "  pictures:\n    task: image-generation\n    source: s3://models/sd-1.5\n    tool_parser: hermes\n",
    )
    found = problems(text)
    assert any("with backend openai the upstream renders and reads its own tool calls" in p for p in found)
    assert any("generates images: it takes no tools" in p for p in found)
    assert len(found) == 2
