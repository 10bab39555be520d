"""A model's family, from its name and checkpoint (what services.yaml says about it), and what follows from it: the
tool-call format its chat template teaches (``tool_parser``, overridable per model in services.yaml) and the tokens
that end its turn.

The end-of-turn tokens are the checkpoints' own (generation_config.json ``eos_token_id``): TensorRT-LLM stops at one
``end_id`` (the tokenizer's eos), so the gateway sends the others as stop words.
"""

from __future__ import annotations

import functools
import re

from .model import Backend, Model, Task, ToolParser

# (pattern on "<name> <source>", family); first match wins
_FAMILIES = (
    (re.compile(r"llama[-_ .]?3", re.I), "llama3"),
    (re.compile(r"qwen[-_ .]?(?:2\.5|2_5|25|3)(?![-_.]?vl)|qwq|hermes", re.I), "qwen"),
    (re.compile(r"mistral|mixtral|ministral|codestral|devstral|magistral", re.I), "mistral"),
)
PARSERS = {"llama3": ToolParser.llama3_json, "qwen": ToolParser.hermes, "mistral": ToolParser.mistral}
# Llama 3.1: <|end_of_text|>, <|eom_id|>, <|eot_id|> (128001, 128008, 128009); Qwen2.5 / Qwen3: <|im_end|>,
# <|endoftext|> (151645, 151643); Mistral: </s>.
END_TOKENS = {
    ToolParser.llama3_json: ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
    ToolParser.hermes: ("<|im_end|>", "<|endoftext|>"),
    ToolParser.mistral: ("</s>",),
    ToolParser.none: (),
}


def family(name: str, model: Model) -> str | None:
    """The family ("llama3", "qwen", "mistral") in the model's name and its source (or upstream model), or None."""
    return _family(" ".join(x for x in (name, model.source, model.upstream_model) if x))


@functools.lru_cache(maxsize=256)
def _family(text: str) -> str | None:
    return next((fam for pattern, fam in _FAMILIES if pattern.search(text)), None)


def default_tool_parser(name: str, model: Model) -> ToolParser:
    if model.backend is not Backend.triton or model.task is Task.image_generation:
        return ToolParser.none
    fam = family(name, model)
    return PARSERS.get(fam, ToolParser.none) if fam else ToolParser.none


def tool_parser(name: str, model: Model) -> ToolParser:
    """The model's tool-call format: services.yaml's tool_parser, else its family's."""
    return model.tool_parser if model.tool_parser is not None else default_tool_parser(name, model)
