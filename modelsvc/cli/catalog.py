"""The catalog's commands: validate, schema, examples, keys new, new-id."""

from __future__ import annotations

import argparse
import sys

from infra.modelrepo import has_recipe
from modelsvc.catalog import Catalog, CatalogError, Problem, load
from modelsvc.catalog import keys as catalog_keys
from modelsvc.catalog.capacity import deployed_gpus
from modelsvc.catalog.examples import render_text
from modelsvc.catalog.model import Backend
from modelsvc.catalog.schema import SCHEMA_PATH, render
from modelsvc.catalog.yamlpos import parse_yaml

from .common import DEFAULT_FILE, load_service, print_problems


def recipe_problems(c: Catalog) -> list[Problem]:
    """Triton-backed models no model-repository recipe can build: refused here rather than deployed to fail."""
    problems = []
    positions = None
    for name, model in c.models.items():
        if model.backend is not Backend.triton or (why := has_recipe(model)) is None:
            continue
        if positions is None:
            positions = parse_yaml(c.text, c.path)[1]
        line, col = positions.of(("models", name), key=True)
        problems.append(
            Problem(
                c.path,
                line,
                col,
                f"model '{name}' cannot be deployed: {why}",
                "change its task/source/triton_model, or serve it elsewhere with backend: openai",
            )
        )
    return problems


def cmd_validate(args) -> int:
    try:
        c = load(args.file)
        problems = recipe_problems(c)
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
