"""In-place edits of services.yaml (create, scale, delete) that keep comments and layout, and never write an invalid
file. The CLI (`modelsvc create/scale/delete`) and the console's actions (gateway/gitops) both call these: one code
path, the same refusals."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from . import Catalog, CatalogError, Problem, loads
from .keys import new_service_id

Edited = tuple[str, Catalog]  # the new text and the catalog it loads to
Data = CommentedMap  # the round-trip document ruamel.yaml loads and dumps


class EditError(Exception):
    """A refused edit. `field`: the input it is about (name, model, instances, max_instances, pool, access_name,
    confirm), when one is; `problems`: the located problems of `text`, the file the edit would have written (never
    written anywhere)."""

    def __init__(
        self, message: str, *, field: str | None = None, problems: list[Problem] | None = None, text: str = ""
    ):
        super().__init__(message)
        self.field = field
        self.problems = list(problems or [])
        self.text = text


def _yaml() -> YAML:
    y = YAML()  # round-trip mode: comments, order, quoting and flow style survive
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


def _detect_indent(text: str) -> tuple[int, int]:
    """(sequence indent, offset) as the file writes `- ` items under `services:`."""
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if stripped.startswith("- "):
            offset = len(line) - len(stripped)
            return offset + 2, offset
    return 4, 2


def _edit(text: str, path: str, change: Callable[[Data], None]) -> Edited:
    y = _yaml()
    seq, off = _detect_indent(text)
    y.indent(mapping=2, sequence=seq, offset=off)
    data = y.load(text)
    change(data)
    out = io.StringIO()
    y.dump(data, out)
    new_text = out.getvalue()
    try:
        return new_text, loads(new_text, path)
    except CatalogError as e:
        raise EditError(
            "refusing the change, it would make the file invalid:\n" + str(e), problems=e.problems, text=new_text
        ) from e


def _find(data: Data, access_name: str) -> int:
    for i, s in enumerate(data.get("services") or []):
        if s.get("access_name") == access_name:
            return i
    raise EditError(f"no service with access name '{access_name}'", field="access_name")


def scale(
    text: str,
    path: str,
    access_name: str,
    *,
    to: int | None = None,
    add: int | None = None,
    max_instances: int | None = None,
) -> Edited:
    """Set the instance count (`to`) or change it by `add` (negative removes); for an autoscaled service that count is
    the minimum, and `max_instances` sets the most the autoscaler may run."""
    if to is None and add is None and max_instances is None:
        raise EditError("say how to scale: --to N, --add N or --max N", field="instances")

    def change(data: Data) -> None:
        svc = data["services"][_find(data, access_name)]
        current = svc.get("instances", 1)
        target = current if to is None and add is None else to if to is not None else current + add
        if target < 0:
            raise EditError(f"'{access_name}' has {current} instance(s); cannot go to {target}", field="instances")
        svc["instances"] = target
        if max_instances is not None:
            auto = svc.get("autoscale")
            if not isinstance(auto, dict):
                raise EditError(
                    f"'{access_name}' is not autoscaled: it runs a fixed count; set --to N instead",
                    field="max_instances",
                )
            if max_instances < target:
                raise EditError(
                    f"the most instances ({max_instances}) cannot be below the minimum ({target})",
                    field="max_instances",
                )
            auto["max_instances"] = max_instances

    return _edit(text, path, change)


def delete(text: str, path: str, access_name: str, confirm: str) -> Edited:
    if confirm != access_name:
        raise EditError(f"to delete, confirm with the exact access name: --confirm {access_name}", field="confirm")

    def change(data: Data) -> None:
        del data["services"][_find(data, access_name)]

    return _edit(text, path, change)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "service"


def default_access_name(owner: str, name: str) -> str:
    """`<owner>/<the display name as a slug>`: what `create` uses when no access name is given."""
    return f"{owner}/{_slug(name)}"


def create(
    text: str,
    path: str,
    *,
    name: str,
    owner: str,
    model: str,
    instances: int = 1,
    pool: str | None = None,
    access_name: str | None = None,
    max_instances: int | None = None,
) -> Edited:
    """Append a new service with a fresh id. The access name defaults to `<owner>/<name as a slug>`; the pool, for a
    model deployed on GPUs, to the only pool when there is one; `max_instances` makes it autoscaled between
    `instances` and that. Refused (nothing written) if the file would be invalid: over capacity, an owner without a
    key, a duplicate access name, a bad name."""
    access_name = access_name or default_access_name(owner, name)
    if access_name.split("/", 1)[0] != owner:
        raise EditError(f"the access name must start with the owner: {owner}/…", field="access_name")
    if instances < 0:
        raise EditError("--instances must be 0 or more", field="instances")
    if max_instances is not None and max_instances < max(instances, 1):
        raise EditError(
            f"the most instances ({max_instances}) cannot be below the minimum ({instances})", field="max_instances"
        )

    def change(data: Data) -> None:
        models, pools = data.get("models") or {}, data.get("pools") or {}
        spec = models.get(model)
        on_gpus = isinstance(spec, dict) and spec.get("backend", "triton") == "triton"
        chosen = pool
        if chosen is None and on_gpus:
            if len(pools) != 1:
                raise EditError(
                    f"model '{model}' runs on GPUs: choose --pool from: {', '.join(pools) or '(none)'}", field="pool"
                )
            chosen = next(iter(pools))
        used = {s.get("id") for s in data.get("services") or []}
        sid = new_service_id()
        while sid in used:
            sid = new_service_id()
        entry = CommentedMap(
            [("name", name), ("access_name", access_name), ("id", sid), ("model", model), ("instances", instances)]
        )
        if chosen is not None:
            entry["pool"] = chosen
        if max_instances is not None:
            entry["autoscale"] = CommentedMap([("max_instances", max_instances)])
        if data.get("services") is None:
            data["services"] = CommentedSeq()
        data["services"].append(entry)

    return _edit(text, path, change)
