"""`modelsvc`: validate, review, edit and serve services.yaml."""

from __future__ import annotations

import argparse
import os
import sys

from .catalog import CatalogError, load

DEFAULT_FILE = "services.yaml"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _print_problems(err: CatalogError, fmt: str) -> None:
    for p in err.problems:
        if fmt == "github":
            # GitHub workflow command: an annotation on the line of the file in the PR's diff.
            # Escaped as the runner expects: a value can neither end the command nor start a new line.
            msg = _escape_data(f"{p.message} — {p.hint}")
            path = _escape_data(p.path).replace(":", "%3A").replace(",", "%2C")
            print(f"::error file={path},line={p.line},col={p.col},title=services.yaml::{msg}")
        else:
            print(p, file=sys.stderr)


def _recipe_problems(c) -> list:
    """Triton-backed models no model-repository recipe can build: refused here rather than deployed to fail."""
    from infra.modelrepo import has_recipe

    from .catalog.errors import Problem
    from .catalog.yamlpos import parse_yaml

    problems = []
    positions = None
    for name, model in c.models.items():
        if model.backend.value != "triton" or (why := has_recipe(model)) is None:
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
        problems = _recipe_problems(c)
        if problems:
            raise CatalogError(problems)
    except CatalogError as e:
        _print_problems(e, args.format)
        print(f"{args.file}: {len(e.problems)} problem(s)", file=sys.stderr)
        return 1
    instances = sum(s.instances for s in c.services)
    gpus = sum(s.instances * c.model_of(s).gpus for s in c.services if s.pool)
    peak = sum(s.peak_instances * c.model_of(s).gpus for s in c.services if s.pool)
    autoscaling = f"; up to {peak} GPUs with autoscaling" if peak != gpus else ""
    print(
        f"{args.file}: valid — {len(c.services)} services ({instances} instances, {gpus} GPUs) on "
        f"{len(c.pools)} pools, {len(c.models)} models, {len(c.keys)} keys{autoscaling}"
    )
    return 0


def cmd_review(args) -> int:
    from .review import SourceError, review_sources

    try:
        r = review_sources(args.base, args.head, set(args.confirm_delete or []), set(args.confirm_change or []))
    except SourceError as e:
        print(f"modelsvc review: {e}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(r.markdown)
    if not args.quiet:
        print(r.markdown, end="")
    return 0 if r.ok else 1


def cmd_keys_new(args) -> int:
    from . import keys

    key = keys.new_key()
    key_id = args.id or f"k-{args.owner}-{keys.new_service_id()[3:9]}"
    print("New API key (shown once; store it in a secret manager, it cannot be recovered):", file=sys.stderr)
    print(key)
    print("\nAdd this entry under 'keys:' in services.yaml:", file=sys.stderr)
    print(keys.yaml_entry(key_id, args.owner, key), end="")
    return 0


def cmd_new_id(args) -> int:
    from .keys import new_service_id

    print(new_service_id())
    return 0


def _write_edit(args, do, *, show_review: bool = False) -> int:
    from .edit import EditError

    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    try:
        new_text, new = do(text)
    except EditError as e:
        print(f"modelsvc: {e}", file=sys.stderr)
        return 1
    tmp = args.file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(new_text)
    os.replace(tmp, args.file)  # atomic: a crash never leaves half a file
    if show_review:  # what the pull request's review will show for this edit
        from .catalog import loads
        from .review import review

        print(review(loads(text, args.file), new).markdown, end="")
    return 0


def cmd_create(args) -> int:
    from .edit import create

    rc = _write_edit(
        args,
        lambda t: create(
            t,
            args.file,
            name=args.name,
            owner=args.owner,
            model=args.model,
            instances=args.instances,
            pool=args.pool,
            access_name=args.access_name,
        ),
        show_review=True,
    )
    if rc == 0:
        print(f"\nadded to {args.file}; commit it and open a pull request", file=sys.stderr)
    return rc


def cmd_scale(args) -> int:
    from .edit import scale

    rc = _write_edit(args, lambda t: scale(t, args.file, args.access_name, to=args.to, add=args.add))
    if rc == 0:
        print(f"{args.access_name}: instances updated in {args.file}")
    return rc


def cmd_delete(args) -> int:
    from .edit import delete

    rc = _write_edit(args, lambda t: delete(t, args.file, args.access_name, args.confirm))
    if rc == 0:
        print(f"{args.access_name}: removed from {args.file}; its review needs Confirm-Delete: {args.access_name}")
    return rc


def _service(path: str, access_name: str):
    """(catalog, service), or None after printing why not."""
    try:
        c = load(path)
    except CatalogError as e:
        _print_problems(e, "text")
        return None
    svc = c.service(access_name)
    if svc is None:
        print(f"modelsvc: no service with access name '{access_name}' in {path}", file=sys.stderr)
        return None
    return c, svc


def cmd_examples(args) -> int:
    from .examples import render_text

    found = _service(args.file, args.access_name)
    if found is None:
        return 1
    print(render_text(*found))
    return 0


def cmd_model_repo(args) -> int:
    from pathlib import Path

    from infra.modelrepo import RepoError, build_repository, has_recipe, spec_for

    found = _service(args.config, args.access_name)
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


def cmd_schema(args) -> int:
    from .catalog.schema import SCHEMA_PATH, render

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelsvc", description="GitOps for self-hosted LLM model services.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check services.yaml; exit 1 with every problem listed")
    v.add_argument("file", nargs="?", default=DEFAULT_FILE)
    v.add_argument(
        "--format", choices=["text", "github"], default="text", help="github: print problems as workflow annotations"
    )
    v.set_defaults(func=cmd_validate)

    r = sub.add_parser("review", help="Markdown review of a services.yaml change (paths or git REV:PATH)")
    r.add_argument("base")
    r.add_argument("head")
    r.add_argument(
        "--confirm-delete",
        action="append",
        metavar="ACCESS_NAME",
        help="confirm the removal of this service (repeatable)",
    )
    r.add_argument(
        "--confirm-change",
        action="append",
        metavar="ACCESS_NAME_OR_KEY_ID",
        help="confirm the changes callers will notice on this access name or key (repeatable)",
    )
    r.add_argument("--output", help="also write the Markdown to this file")
    r.add_argument("--quiet", action="store_true", help="write only --output, print nothing (CI logs)")
    r.set_defaults(func=cmd_review)

    k = sub.add_parser("keys", help="API keys")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    kn = ksub.add_parser("new", help="make a key; print it once and its services.yaml entry")
    kn.add_argument("--owner", required=True)
    kn.add_argument("--id", help="key id (default: k-<owner>-<random>)")
    kn.set_defaults(func=cmd_keys_new)

    n = sub.add_parser("new-id", help="print a fresh service id")
    n.set_defaults(func=cmd_new_id)

    cr = sub.add_parser("create", help="append a new service (fresh id) in place; print what the review will show")
    cr.add_argument("--name", required=True, help="display name")
    cr.add_argument("--owner", required=True, help="owner (needs a key under keys:)")
    cr.add_argument("--model", required=True)
    cr.add_argument("--instances", type=int, default=1, metavar="K")
    cr.add_argument("--pool", metavar="P", help="GPU pool (default: the only pool, if there is one)")
    cr.add_argument("--access-name", metavar="OWNER/NAME", help="default: <owner>/<name as a slug>")
    cr.add_argument("--file", default=DEFAULT_FILE)
    cr.set_defaults(func=cmd_create)

    s = sub.add_parser("scale", help="change a service's instance count in place")
    s.add_argument("access_name")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--to", type=int, metavar="N")
    g.add_argument("--add", type=int, metavar="N", help="negative to remove instances")
    s.add_argument("--file", default=DEFAULT_FILE)
    s.set_defaults(func=cmd_scale)

    d = sub.add_parser("delete", help="remove a service in place (type its access name to confirm)")
    d.add_argument("access_name")
    d.add_argument("--confirm", required=True, metavar="ACCESS_NAME")
    d.add_argument("--file", default=DEFAULT_FILE)
    d.set_defaults(func=cmd_delete)

    e = sub.add_parser("examples", help="curl, Python and Node examples for a service")
    e.add_argument("access_name")
    e.add_argument("--file", default=DEFAULT_FILE)
    e.set_defaults(func=cmd_examples)

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

    sc = sub.add_parser("schema", help="print the JSON Schema of services.yaml")
    sc.add_argument("--write", action="store_true", help="update schema/services.schema.json")
    sc.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    sc.set_defaults(func=cmd_schema)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return p


def _register_run(sub):
    from .commands_run import register

    register(sub)


def _register_usage(sub):
    from .commands_usage import register

    register(sub)


_EXTRA_COMMANDS: list = [_register_run, _register_usage]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["standin"]:  # everything after it belongs to the stand-in's own parser
        from .standin.__main__ import main as standin_main

        return standin_main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
