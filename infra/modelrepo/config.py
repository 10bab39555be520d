"""Parse filled configs with Triton's own protobufs, and check ensembles the way Triton does at load time."""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from .errors import RepoError


def parse(text: str, where: str) -> mc.ModelConfig:
    """The config as Triton reads it (protobuf text format into ``ModelConfig``); RepoError naming the line."""
    try:
        return text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as e:
        raise RepoError(where, f"not a valid Triton model config: {e}") from None


def parameters_block(params: dict[str, str]) -> str:
    """Text-format ``parameters`` entries to append to a config (escaped by protobuf itself)."""
    cfg = mc.ModelConfig()
    for k, v in params.items():
        cfg.parameters[k].string_value = v
    return text_format.MessageToString(cfg)


def check_ensemble(name: str, cfg: mc.ModelConfig, models: dict[str, mc.ModelConfig], where: str) -> None:
    """Every step names a model of the repository; every input_map key is an input of that step's model and every
    output_map key one of its outputs; every tensor a step reads is an ensemble input or written by a step; every
    ensemble output is written by a step."""
    ens_inputs = {t.name for t in cfg.input}
    produced: set[str] = set()
    for step in cfg.ensemble_scheduling.step:
        model = models.get(step.model_name)
        if model is None:
            raise RepoError(where, f"ensemble '{name}' step '{step.model_name}' is not a model in the repository")
        ins = {t.name for t in model.input}
        outs = {t.name for t in model.output}
        for key in step.input_map:
            if key not in ins:
                raise RepoError(
                    where,
                    f"ensemble '{name}' step '{step.model_name}': input_map key '{key}' is not an "
                    f"input of model '{step.model_name}'",
                )
        for key, value in step.output_map.items():
            if key not in outs:
                raise RepoError(
                    where,
                    f"ensemble '{name}' step '{step.model_name}': output_map key '{key}' is not "
                    f"an output of model '{step.model_name}'",
                )
            produced.add(value)
    for step in cfg.ensemble_scheduling.step:
        for key, value in step.input_map.items():
            if value not in ens_inputs and value not in produced:
                raise RepoError(
                    where,
                    f"ensemble '{name}' step '{step.model_name}': input_map value '{value}' (for "
                    f"'{key}') is neither an ensemble input nor written by any step",
                )
    for t in cfg.output:
        if t.name not in produced:
            raise RepoError(where, f"ensemble '{name}' output '{t.name}' is not written by any step's output_map")
