"""Writing a model repository: copy each model's template directory, fill its config, check, then write.

Nothing is written unless every config filled, has no placeholder left, parses, and every ensemble's maps match
its steps' models: a failed build leaves ``out`` as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from .config import check_ensemble, parameters_block, parse
from .errors import RepoError
from .fill import fill, leftovers, placeholders


@dataclass(frozen=True)
class ModelFill:
    """One model of the repository: where its template is, and what goes into it."""

    name: str  # the model's directory in the repository (its Triton name)
    template: str  # the template directory, relative to the templates directory
    values: dict[str, object] = field(default_factory=dict)  # keys the template must have
    if_present: dict[str, object] = field(default_factory=dict)  # keys only some releases' templates have
    unset: tuple[str, ...] = ()  # optional keys left to the backend's default: filled with "" where present
    parameters: dict[str, str] = field(default_factory=dict)  # parameters we add (e.g. the chat template)
    edit: Callable[[mc.ModelConfig], None] | None = None  # for concrete (placeholder-free) configs: diffusion


def _fill_one(m: ModelFill, templates: Path) -> tuple[str, mc.ModelConfig]:
    src = templates / m.template / "config.pbtxt"
    where = str(src)
    try:
        text = src.read_text(encoding="utf-8")
    except OSError:
        raise RepoError(
            where,
            f"template missing: model '{m.name}' needs {m.template}/config.pbtxt in the "
            f"templates directory {templates} (a release's all_models)",
        ) from None
    keys = placeholders(text)
    values = dict(m.values)
    values.update({k: v for k, v in m.if_present.items() if k in keys})
    values.update({k: "" for k in m.unset if k in keys and k not in values})
    filled = fill(text, values, where)
    left = leftovers(filled)
    if left:
        names = ", ".join("${" + k + "}" for k in left)
        raise RepoError(
            where,
            f"placeholder {names} left unfilled: this release's template has a key the recipe "
            "does not set; add it to the recipe (infra/modelrepo/) before using this release",
        )
    if m.parameters:
        filled = filled.rstrip("\n") + "\n" + parameters_block(m.parameters)
    cfg = parse(filled, where)
    if m.edit is not None:
        m.edit(cfg)
        filled = _header(text) + text_format.MessageToString(cfg)
        cfg = parse(filled, where)
    if cfg.name and cfg.name != m.name:
        raise RepoError(where, f"config names model '{cfg.name}' but is written as model '{m.name}'")
    return filled, cfg


def _header(text: str) -> str:
    """The template's leading comment block (licence notice), kept when the config is rewritten."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines) + ("\n" if lines else "")


def build(models: list[ModelFill], templates: Path, out: Path) -> list[Path]:
    """Fill and check every model, then write ``out/<model>/`` (template files + filled config.pbtxt, and a
    version directory ``1/``). ``out`` must not exist or be empty. Returns the written config paths."""
    templates, out = Path(templates), Path(out)
    if not templates.is_dir():
        raise RepoError(
            str(templates),
            "templates directory not found (want a release's all_models, e.g. the "
            "Triton TensorRT-LLM image's /app/all_models)",
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RepoError(str(out), "output directory is not empty; choose a new or empty directory")
    texts: dict[str, str] = {}
    configs: dict[str, mc.ModelConfig] = {}
    for m in models:
        texts[m.name], configs[m.name] = _fill_one(m, templates)
    for m in models:
        cfg = configs[m.name]
        if cfg.platform == "ensemble" or cfg.HasField("ensemble_scheduling"):
            check_ensemble(m.name, cfg, configs, str(templates / m.template / "config.pbtxt"))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".modelrepo-", dir=out.parent))
    try:
        written = []
        for m in models:
            dst = staging / m.name
            shutil.copytree(templates / m.template, dst, symlinks=False)
            (dst / "1").mkdir(exist_ok=True)
            (dst / "config.pbtxt").write_text(texts[m.name], encoding="utf-8")
            written.append(out / m.name / "config.pbtxt")
        if out.exists():
            out.rmdir()  # empty (checked above)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def load(repo: Path) -> dict[str, mc.ModelConfig]:
    """Every model config of a written repository, by model name (its directory)."""
    out = {}
    for cfg_path in sorted(Path(repo).glob("*/config.pbtxt")):
        out[cfg_path.parent.name] = parse(cfg_path.read_text(encoding="utf-8"), str(cfg_path))
    return out
