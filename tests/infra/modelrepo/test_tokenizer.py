"""The checkpoint's own special tokens, read from tokenizer files shaped like five families' published ones
(tokenizers/README.md), carried into the served model's config for the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.modelrepo import build_repository, load
from infra.modelrepo.tokenizer import read

from .test_build import spec

FAMILIES = Path(__file__).parent / "tokenizers"


def tokens(family: str) -> set[str]:
    found = read(FAMILIES / family / "tokenizer_config.json")
    return set(found.special_tokens(found.template))


@pytest.mark.parametrize(
    "family,present,absent",
    [
        (
            "llama-3.1-8b-instruct",
            {
                "<|begin_of_text|>",
                "<|start_header_id|>",
                "<|eot_id|>",
                "<|python_tag|>",
                "<|reserved_special_token_247|>",
            },
            set(),
        ),
        (
            "qwen2.5-7b-instruct",
            {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<tool_call>", "</tool_call>"},
            {"<|fim_prefix|>", "<|repo_name|>"},  # added, not special, and not written by the template
        ),
        (
            "deepseek-r1",  # none in tokenizer_config.json: tokenizer.json's added_tokens
            {
                "<｜begin▁of▁sentence｜>",
                "<｜end▁of▁sentence｜>",
                "<｜User｜>",
                "<｜Assistant｜>",
                "<｜tool▁outputs▁begin｜>",
                "<think>",
                "</think>",
                "<｜place▁holder▁no▁798｜>",
                "<|EOT|>",
            },
            {"<｜fim▁hole｜>", "<｜tool▁sep｜>"},
        ),
        (
            "glm-4-9b-chat",
            {
                "[gMASK]",
                "<sop>",
                "<eop>",
                "[MASK]",
                "<|user|>",
                "<|assistant|>",
                "<|observation|>",
                "<|begin_of_image|>",
            },
            set(),
        ),
        (
            "gemma-3-4b-it",
            {
                "<bos>",
                "<eos>",
                "<start_of_turn>",
                "<end_of_turn>",
                "<start_of_image>",
                "<end_of_image>",
                "<image_soft_token>",
            },
            {"<table>", "<td>", "<h1>", "<unused0>", "[multimodal]"},  # added tokens of ordinary text
        ),
    ],
)
def test_each_familys_own_tokens_are_found(family, present, absent):
    got = tokens(family)
    assert present <= got, present - got
    assert not absent & got, absent & got
    if family.startswith("llama"):
        assert len(got) == 256  # every one of added_tokens_decoder


def test_the_tokens_reach_the_served_models_config(tpl, tmp_path):
    build_repository(
        spec("chat"), tpl("chat"), tmp_path / "r", tokenizer_config=FAMILIES / "deepseek-r1" / "tokenizer_config.json"
    )
    for served in ("ensemble", "tensorrt_llm_bls"):
        params = load(tmp_path / "r")[served].parameters
        listed = json.loads(params["special_tokens"].string_value)
        assert "<｜User｜>" in listed and listed == sorted(listed)
        assert params["bos_token"].string_value == "<｜begin▁of▁sentence｜>"


def test_an_override_template_decides_which_added_tokens_count(tpl, tmp_path):
    """services.yaml's chat_template replaces the checkpoint's: added (not special) tokens count where it writes
    them."""
    cfg = FAMILIES / "qwen2.5-7b-instruct" / "tokenizer_config.json"
    build_repository(
        spec("chat", chat_template="{{ '<|fim_prefix|>' }}"), tpl("chat"), tmp_path / "r", tokenizer_config=cfg
    )
    listed = json.loads(load(tmp_path / "r")["ensemble"].parameters["special_tokens"].string_value)
    assert "<|fim_prefix|>" in listed and "<tool_call>" not in listed
