"""`modelsvc model-repo`: the Triton model repository the engine-build Job writes, for people and CI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.modelrepo import RepoError, build_repository, has_recipe, spec_for

from .common import DEFAULT_FILE, load_service


def cmd_model_repo(args) -> int:
    found = load_service(args.config, args.access_name)
    if found is None:
        return 1
    c, svc = found
    model = c.model_of(svc)
    why = has_recipe(model)
    if why is not None:
        print(f"modelsvc: {args.config}: model '{svc.model}': {why}", file=sys.stderr)
        return 1
    try:
        written = build_repository(
            spec_for(model),
            Path(args.templates),
            Path(args.out),
            tokenizer_config=Path(args.tokenizer_config) if args.tokenizer_config else None,
        )
    except RepoError as e:
        print(f"modelsvc: model repository not built: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    mr = sub.add_parser(
        "model-repo",
        help="write the Triton model repository the engine-build Job writes for a "
        "service (from a TensorRT-LLM release's all_models templates)",
    )
    mr.add_argument("access_name")
    mr.add_argument(
        "--templates",
        required=True,
        help="a release's all_models (the Triton image's /app/all_models); for image-generation the "
        "Triton tutorials' StableDiffusion/diffusion-models",
    )
    mr.add_argument("--out", required=True, help="new or empty directory to write the repository into")
    mr.add_argument("--config", default=DEFAULT_FILE, help="services.yaml (default: %(default)s)")
    mr.add_argument("--tokenizer-config", help="the checkpoint's tokenizer_config.json (its chat template)")
    mr.set_defaults(func=cmd_model_repo)
