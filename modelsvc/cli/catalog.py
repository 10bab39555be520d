"""The catalog's commands: validate, schema, examples, keys new, new-id."""

from __future__ import annotations

import argparse
import sys

from infra import disk, stack
from infra.modelrepo import has_recipe
from infra.settings import Settings as InfraSettings
from modelsvc.catalog import Catalog, CatalogError, Problem, load
from modelsvc.catalog import keys as catalog_keys
from modelsvc.catalog.capacity import deployed_gpus
from modelsvc.catalog.examples import render_text
from modelsvc.catalog.model import Backend, Task
from modelsvc.catalog.schema import SCHEMA_PATH, render
from modelsvc.catalog.yamlpos import parse_yaml

from .common import DEFAULT_FILE, load_service, print_problems


def recipe_problems(c: Catalog) -> list[Problem]:
    """Triton-backed models no model-repository recipe can build: refused here rather than deployed to fail."""
    return _model_problems(
        c,
        lambda model: has_recipe(model),
        "change its task/source/triton_model, or serve it elsewhere with backend: openai",
    )


def _offline_source(model) -> str | None:
    if model.source and not model.source.startswith("s3://"):
        return (
            f"source {model.source!r} is not in the model store: engine builds run without internet access "
            "(no Hugging Face Hub)"
        )
    return None


def _vision_dtype(model) -> str | None:
    if model.task is Task.vision_chat and model.dtype not in ("float16", "bfloat16"):
        return (
            f"dtype {model.dtype}: the vision-chat recipe builds the language model in float16, as NVIDIA's Qwen2-VL "
            "recipe does (its visual engine and prompt table are fp16)"
        )
    return None


def build_problems(c: Catalog, build_disk: str = InfraSettings().build_disk) -> list[Problem]:
    """Builds that cannot work as deployed: a source outside the model store (builds are offline), a dtype the
    task's recipe does not build, an engine that does not fit the build Job's disk."""
    return (
        _model_problems(
            c,
            _offline_source,
            "copy the checkpoint to the model store (`aws s3 sync`) and set source: s3://bucket/path",
        )
        + _model_problems(c, _vision_dtype, "set dtype: bfloat16 (built as float16) or float16")
        + _model_problems(
            c,
            lambda model: disk.build_disk_problem(model, build_disk),
            "use dtype fp8 (half the engine), or raise modelsvc:buildDisk (a GPU node holds "
            f"{stack.EKS_BUILD_DISK_MAX})",
        )
    )


def _model_problems(c: Catalog, why_not, hint: str) -> list[Problem]:
    problems = []
    positions = None
    for name, model in c.models.items():
        if model.backend is not Backend.triton or (why := why_not(model)) is None:
            continue
        if positions is None:
            positions = parse_yaml(c.text, c.path)[1]
        line, col = positions.of(("models", name), key=True)
        problems.append(Problem(c.path, line, col, f"model '{name}' cannot be deployed: {why}", hint))
    return problems


def stack_problems(c: Catalog, path: str) -> list[Problem]:
    """The stack file's own problems for this catalog (placeholder or unpinned images, an unsupported Kubernetes
    minor, a build disk no node has, builds that do not fit it): what `pulumi preview` refuses, located in it."""
    try:
        f = stack.StackFile(path)
        settings = stack.settings_from(f, aws_region=f.aws_region, stack=f.stack)
    except (OSError, ValueError) as e:
        return [Problem(path, 1, 1, f"cannot read the stack config: {e}", "fix the file")]
    positions = parse_yaml(f.text, path)[1]
    out = []
    for key, message in stack.problems(c, settings):
        line, col = positions.of(("config", f"modelsvc:{key}"), key=True)
        out.append(Problem(path, line, col, message, "see docs/infra.md (Images; Build disk)"))
    return out


def cmd_validate(args) -> int:
    try:
        c = load(args.file)
        problems = recipe_problems(c) + build_problems(c)
        for path in args.stack or ():
            problems += stack_problems(c, path)
        if problems:
            raise CatalogError(problems)
    except CatalogError as e:
        print_problems(e, args.format)
        print(f"{args.file}: {len(e.problems)} problem(s)", file=sys.stderr)
        return 1
    instances = sum(s.instances for s in c.services)
    gpus = sum(deployed_gpus(c, s) for s in c.services)
    peak = sum(deployed_gpus(c, s, peak=True) for s in c.services)
    autoscaling = f"; up to {peak} GPUs with autoscaling" if peak != gpus else ""
    print(
        f"{args.file}: valid — {len(c.services)} services ({instances} instances, {gpus} GPUs) on "
        f"{len(c.pools)} pools, {len(c.models)} models, {len(c.keys)} keys{autoscaling}"
    )
    return 0


def cmd_keys_new(args) -> int:
    key = catalog_keys.new_key()
    key_id = args.id or f"k-{args.owner}-{catalog_keys.new_service_id()[3:9]}"
    print("New API key (shown once; store it in a secret manager, it cannot be recovered):", file=sys.stderr)
    print(key)
    print("\nAdd this entry under 'keys:' in services.yaml:", file=sys.stderr)
    print(catalog_keys.yaml_entry(key_id, args.owner, key), end="")
    return 0


def cmd_new_id(args) -> int:
    print(catalog_keys.new_service_id())
    return 0


def cmd_examples(args) -> int:
    found = load_service(args.file, args.access_name)
    if found is None:
        return 1
    print(render_text(*found))
    return 0


def cmd_schema(args) -> int:
    text = render()
    if args.write:
        SCHEMA_PATH.write_text(text)
        print(f"wrote {SCHEMA_PATH}")
        return 0
    if args.check:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is out of date: run `modelsvc schema --write`", file=sys.stderr)
            return 1
        return 0
    print(text, end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("validate", help="check services.yaml; exit 1 with every problem listed")
    v.add_argument("file", nargs="?", default=DEFAULT_FILE)
    v.add_argument(
        "--format", choices=["text", "github"], default="text", help="github: print problems as workflow annotations"
    )
    v.add_argument(
        "--stack",
        action="append",
        metavar="PULUMI_STACK_FILE",
        help="also check a stack's config (e.g. Pulumi.prod.yaml): images pinned by digest, builds that fit",
    )
    v.set_defaults(func=cmd_validate)

    k = sub.add_parser("keys", help="API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    kn = ksub.add_parser("new", help="make a key; print it once and its services.yaml entry")
    kn.add_argument("--owner", required=True)
    kn.add_argument("--id", help="key id (default: k-<owner>-<random>)")
    kn.set_defaults(func=cmd_keys_new)

    n = sub.add_parser("new-id", help="print a fresh service id")
    n.set_defaults(func=cmd_new_id)

    e = sub.add_parser("examples", help="curl, Python and Node examples for a service")
    e.add_argument("access_name")
    e.add_argument("--file", default=DEFAULT_FILE)
    e.set_defaults(func=cmd_examples)

    sc = sub.add_parser("schema", help="print the JSON Schema of services.yaml")
    sc.add_argument("--write", action="store_true", help="update schema/services.schema.json")
    sc.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    sc.set_defaults(func=cmd_schema)
