"""base + head catalogs → the typed changes between them (changes.py), in the order the review lists them.

GPU counts come from `modelsvc.catalog.capacity`, the one place that says what is deployed; no Markdown here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from modelsvc.catalog import Catalog, Model, Pool, Problem, Service
from modelsvc.catalog.capacity import gpu_type, gpus_per_instance, pool_usage

from .changes import (
    CALLER_VISIBLE_MODEL_FIELDS,
    ENGINE_FIELDS,
    POOL_FIELDS,
    Change,
    Confirm,
    Diff,
    Kind,
    Section,
    Value,
    Values,
    field_changes,
    limits_text,
    shown,
)
from .lookalike import lookalikes
from .scaling import scaling_changes

# An access name's recent holders from the file's git history (newest first): (service id, commit, date).
History = Mapping[str, Sequence[tuple[str, str, str]]]
SOURCE_FIELDS = ("backend", "source", "upstream", "upstream_model")  # where a model's answers come from
HARDWARE_FIELDS = ("instance_type", "gpu_type")  # what the services of a pool run on


def diff(
    base: Catalog,
    head: Catalog,
    head_problems: Iterable[Problem] = (),
    *,
    history: History | None = None,
    catalog_files: tuple[str, str] | None = None,
) -> Diff:
    """history: the access names' recent holders (a name freed and given to another service id in two pull
    requests); catalog_files: (base, head) of the file the stack's modelsvc:catalog names."""
    changes = [
        *_services(base, head, history or {}),
        *lookalikes(base, head),
        *_models(base, head),
        *_gateway(base, head, catalog_files),
        *_capacity(base, head),
        *scaling_changes(base, head),
        *_keys(base, head),
    ]
    return Diff(
        changes=tuple(changes),
        same_deployment=base.canonical_json() == head.canonical_json(),
        autoscaled=any(s.autoscale for c in (base, head) for s in c.services),
        head_problems=tuple(head_problems),
    )


# --- services -----------------------------------------------------------------------------------------------------


def _services(base: Catalog, head: Catalog, history: History) -> list[Change]:
    base_by_id = {s.id: s for s in base.services}
    head_by_id = {s.id: s for s in head.services}
    out = _added(base, head, base_by_id, head_by_id)
    out += _recycled(base, head, history)
    out += [
        Change(
            Kind.service_removed,
            Section.services,
            s.access_name,
            (s.access_name,),
            Confirm.delete,
            before={"access_name": s.access_name, "id": s.id},
        )
        for s in base.services
        if s.id not in head_by_id
    ]
    out += _renamed(base_by_id, head_by_id, head)
    for sid, new in head_by_id.items():
        old = base_by_id.get(sid)
        if old is not None:
            out += _service_changes(base, head, old, new)
    return out


def _added(
    base: Catalog, head: Catalog, base_by_id: dict[str, Service], head_by_id: dict[str, Service]
) -> list[Change]:
    base_by_name = {s.access_name: s for s in base.services}
    out = []
    for s in head.services:
        if s.id in base_by_id:
            continue
        after: dict[str, Value] = {
            "access_name": s.access_name,
            "name": s.name,
            "id": s.id,
            "model": s.model,
            "instances": s.instances,
            "pool": s.pool,
            "gpus": s.instances * gpus_per_instance(head, s),
        }
        out.append(Change(Kind.service_added, Section.services, s.access_name, (s.access_name,), after=after))
        old = base_by_name.get(s.access_name)
        if old is not None and old.id not in head_by_id:
            out.append(
                Change(
                    Kind.name_reused,
                    Section.services,
                    s.access_name,
                    (s.access_name,),
                    Confirm.change,
                    before={"id": old.id},
                    after={"id": s.id},
                )
            )
    return out


def _recycled(base: Catalog, head: Catalog, history: History) -> list[Change]:
    """An access name new in this pull request that another service id held recently: a rename done in two pull
    requests (free the name, then give it to another id) reads as one change, not two unrelated ones."""
    base_names = {s.access_name for s in base.services}
    out = []
    for s in head.services:
        if s.access_name in base_names:
            continue  # held in base: the rename and reuse changes say what happens to it
        held = [h for h in history.get(s.access_name, ()) if h[0] != s.id]
        if held:
            old_id, commit, date = held[0]
            out.append(
                Change(
                    Kind.name_recycled,
                    Section.services,
                    s.access_name,
                    (s.access_name,),
                    Confirm.change,
                    before={"id": old_id, "commit": commit, "date": date},
                    after={"id": s.id},
                )
            )
    return out


def _renamed(base_by_id: dict[str, Service], head_by_id: dict[str, Service], head: Catalog) -> list[Change]:
    renamed = {
        sid: (base_by_id[sid], new)
        for sid, new in head_by_id.items()
        if sid in base_by_id and base_by_id[sid].access_name != new.access_name
    }
    new_names = {new.access_name: sid for sid, (_, new) in renamed.items()}
    head_names = {s.access_name: s for s in head.services}
    out = []
    for sid, (old, new) in renamed.items():
        after: dict[str, Value] = {"access_name": new.access_name, "owner": new.owner, "id": sid}
        other = new_names.get(old.access_name)
        if other is not None and renamed[other][0].access_name == new.access_name:
            after["swapped_with"] = other  # the two services traded names
        elif old.access_name in head_names:
            after["old_name_reaches"] = head_names[old.access_name].id
        out.append(
            Change(
                Kind.renamed,
                Section.services,
                old.access_name,
                (new.access_name, old.access_name),
                Confirm.change,
                before={"access_name": old.access_name, "owner": old.owner},
                after=after,
            )
        )
    return out


def _service_changes(base: Catalog, head: Catalog, old: Service, new: Service) -> list[Change]:
    """Changes of one service that keeps its id; the subject is the access name callers use today."""
    names = (new.access_name,) if new.access_name == old.access_name else (new.access_name, old.access_name)

    def change(kind: Kind, before: Values, after: Values, confirm: Confirm | None = None) -> Change:
        return Change(kind, Section.services, old.access_name, names, confirm, before, after)

    out = _model_changes(base, head, old, new, change)
    out += _instance_changes(base, head, old, new, change)
    if old.pool != new.pool:
        out.append(
            change(
                Kind.pool_moved,
                {"pool": old.pool, "gpu_type": _gpu_type(base, old.pool)},
                {"pool": new.pool, "gpu_type": _gpu_type(head, new.pool)},
            )
        )
    if old.name != new.name:
        out.append(change(Kind.display_name, {"name": old.name}, {"name": new.name}))
    if old.description != new.description:
        out.append(change(Kind.description, {"description": old.description}, {"description": new.description}))
    if old.limits != new.limits:
        out.append(
            change(Kind.service_limits, {"limits": limits_text(old.limits)}, {"limits": limits_text(new.limits)})
        )
    return out


class _Make(Protocol):
    """The signature of the `change` helper _service_changes passes to its parts."""

    def __call__(self, kind: Kind, before: Values, after: Values, confirm: Confirm | None = None) -> Change: ...


def _model_changes(base: Catalog, head: Catalog, old: Service, new: Service, change: _Make) -> list[Change]:
    if old.model != new.model:
        return [change(Kind.model_swapped, {"model": old.model}, {"model": new.model}, Confirm.change)]
    if old.model not in base.models or new.model not in head.models:
        return []
    bm, hm = base.models[old.model], head.models[new.model]
    out = []
    before, after = field_changes(bm, hm, CALLER_VISIBLE_MODEL_FIELDS)
    if after:
        out.append(
            change(Kind.model_visible, {"model": old.model, **before}, {"model": new.model, **after}, Confirm.change)
        )
    if field_changes(bm, hm, ENGINE_FIELDS)[1]:
        out.append(change(Kind.engine_changed, {"model": old.model}, {"model": new.model}))
    return out


def _instance_changes(base: Catalog, head: Catalog, old: Service, new: Service, change: _Make) -> list[Change]:
    old_per, new_per = gpus_per_instance(base, old), gpus_per_instance(head, new)
    old_gpus, new_gpus = old.instances * old_per, new.instances * new_per
    if old.instances != new.instances:
        out = [
            change(
                Kind.instances,
                {"instances": old.instances, "gpus": old_gpus},
                {"instances": new.instances, "gpus": new_gpus},
            )
        ]
        if new.instances == 0:
            out.append(change(Kind.stopped, {"instances": old.instances}, {"instances": 0}, Confirm.change))
        return out
    if old_gpus != new_gpus:
        return [
            change(Kind.gpus, {"gpus": old_gpus, "per_instance": old_per}, {"gpus": new_gpus, "per_instance": new_per})
        ]
    return []


def _gpu_type(catalog: Catalog, pool: str | None) -> str | None:
    return gpu_type(catalog, pool) if pool in catalog.pools else pool


# --- models, gateway, capacity ------------------------------------------------------------------------------------


def _on_model(catalog: Catalog, model: str) -> list[str]:
    return [s.access_name for s in catalog.services if s.model == model]


def _on_pool(catalog: Catalog, pool: str) -> list[str]:
    return [s.access_name for s in catalog.services if s.pool == pool]


def _models(base: Catalog, head: Catalog) -> list[Change]:
    out = [
        Change(Kind.model_added, Section.models, m, after={"task": shown(model, "task"), "gpus": model.gpus})
        for m, model in head.models.items()
        if m not in base.models
    ]
    out += [Change(Kind.model_removed, Section.models, m) for m in base.models if m not in head.models]
    for m, model in head.models.items():
        old: Model | None = base.models.get(m)
        if old is not None and old != model:
            before, after = field_changes(old, model, CALLER_VISIBLE_MODEL_FIELDS + ENGINE_FIELDS)
            out.append(Change(Kind.model_changed, Section.models, m, before=before, after=after))
            before, after = field_changes(old, model, SOURCE_FIELDS)
            services = tuple(dict.fromkeys(_on_model(head, m) + _on_model(base, m)))
            if after and services:  # other weights or another server under the same model name
                out.append(Change(Kind.model_source, Section.models, m, services, Confirm.change, before, after))
    return out


def _gateway(base: Catalog, head: Catalog, catalog_files: tuple[str, str] | None) -> list[Change]:
    bg, hg = base.gateway, head.gateway
    out = []
    if catalog_files is not None and catalog_files[0] != catalog_files[1]:
        out.append(
            Change(
                Kind.catalog_file,
                Section.gateway,
                "modelsvc-catalog",
                tuple(s.access_name for s in head.services),
                Confirm.change,
                before={"file": catalog_files[0]},
                after={"file": catalog_files[1]},
            )
        )
    for kind, name in (
        (Kind.public_url, "public_url"),
        (Kind.replicas, "replicas"),
        (Kind.max_body_bytes, "max_body_bytes"),
    ):
        if getattr(bg, name) != getattr(hg, name):
            out.append(
                Change(kind, Section.gateway, name, before={name: shown(bg, name)}, after={name: shown(hg, name)})
            )
    return out


def _capacity(base: Catalog, head: Catalog) -> list[Change]:
    out = []
    for p, hp in head.pools.items():
        bp: Pool | None = base.pools.get(p)
        if bp is None:
            after = {f: shown(hp, f) for f in ("instance_type", "gpus_per_node", "max_nodes")}
            out.append(Change(Kind.pool_added, Section.capacity, p, after=after))
        elif bp != hp:
            before, after = field_changes(bp, hp, POOL_FIELDS)
            out.append(Change(Kind.pool_changed, Section.capacity, p, before=before, after=after))
            out += _hardware(base, head, p)
    out += [Change(Kind.pool_removed, Section.capacity, p) for p in base.pools if p not in head.pools]

    bu, hu = pool_usage(base), pool_usage(head)
    for pool in sorted(set(bu) | set(hu) | set(base.pools) | set(head.pools)):
        b, h = bu.get(pool), hu.get(pool)
        before = {"instances": b.instances if b else 0, "gpus": b.gpus if b else 0, "nodes": b.nodes if b else 0}
        after = {"instances": h.instances if h else 0, "gpus": h.gpus if h else 0, "nodes": h.nodes if h else 0}
        if before == after and pool in base.pools and pool in head.pools and base.pools[pool] == head.pools[pool]:
            continue
        after["max_nodes"] = head.pools[pool].max_nodes if pool in head.pools else None
        out.append(Change(Kind.pool_usage, Section.capacity, pool, before=before, after=after))
    return out


def _hardware(base: Catalog, head: Catalog, pool: str) -> list[Change]:
    """Another instance type or GPU type under a pool: every service on it runs on other GPUs (and rebuilds)."""
    before, after = field_changes(base.pools[pool], head.pools[pool], HARDWARE_FIELDS)
    services = tuple(dict.fromkeys(_on_pool(head, pool) + _on_pool(base, pool)))
    if not after or not services:
        return []
    base_by_name = {s.access_name: s for s in base.services}
    head_by_name = {s.access_name: s for s in head.services}
    for name in services:
        b, h = base_by_name.get(name), head_by_name.get(name)
        before[f"gpus:{name}"] = b.instances * gpus_per_instance(base, b) if b and b.pool == pool else 0
        after[f"gpus:{name}"] = h.instances * gpus_per_instance(head, h) if h and h.pool == pool else 0
    return [Change(Kind.pool_hardware, Section.capacity, pool, services, Confirm.change, before, after)]


# --- keys ---------------------------------------------------------------------------------------------------------


def _reaches(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """owner → the services a key of that owner can call (a key authorises its owner's services, `<owner>/*`)."""
    out: dict[str, list[str]] = {}
    for s in catalog.services:
        out.setdefault(s.owner, []).append(s.access_name)
    return {owner: tuple(names) for owner, names in out.items()}


def _keys(base: Catalog, head: Catalog) -> list[Change]:
    bk, hk = {k.id: k for k in base.keys}, {k.id: k for k in head.keys}
    base_reach, head_reach = _reaches(base), _reaches(head)

    def _reach(catalog: Catalog, owner: str) -> tuple[str, ...]:
        return (base_reach if catalog is base else head_reach).get(owner, ())

    base_digest = {k.sha256: k for k in base.keys}
    moved = {
        k.id: base_digest[k.sha256] for k in head.keys if k.sha256 in base_digest and base_digest[k.sha256].id != k.id
    }
    moved_from = {old.id for old in moved.values()}
    out = []
    for k, new in hk.items():
        if k in moved:  # the same secret under another key id: not a new key, not a revocation
            old = moved[k]
            out.append(
                Change(
                    Kind.key_moved,
                    Section.keys,
                    old.id,
                    tuple(dict.fromkeys(_reach(head, new.owner) + _reach(base, old.owner))),
                    Confirm.change,
                    before={"id": old.id, "owner": old.owner, "reach": len(_reach(base, old.owner))},
                    after={"id": k, "owner": new.owner, "reach": len(_reach(head, new.owner))},
                )
            )
        elif k not in bk:
            reach = _reach(head, new.owner)
            out.append(
                Change(
                    Kind.key_added,
                    Section.keys,
                    k,
                    reach,
                    Confirm.change,
                    after={"owner": new.owner, "reach": len(reach)},
                )
            )
    for k, old in bk.items():
        kept = hk.get(k)
        if kept is None:
            if k not in moved_from:
                out.append(
                    Change(
                        Kind.key_revoked,
                        Section.keys,
                        k,
                        _reach(base, old.owner),
                        Confirm.change,
                        before={"owner": old.owner},
                    )
                )
            continue
        if old.owner != kept.owner:
            out.append(
                Change(
                    Kind.key_owner,
                    Section.keys,
                    k,
                    tuple(dict.fromkeys(_reach(head, kept.owner) + _reach(base, old.owner))),
                    Confirm.change,
                    before={"owner": old.owner, "reach": len(_reach(base, old.owner))},
                    after={"owner": kept.owner, "reach": len(_reach(head, kept.owner))},
                )
            )
        if old.sha256 != kept.sha256 and k not in moved_from:
            out.append(Change(Kind.key_rotated, Section.keys, k, _reach(base, old.owner), Confirm.change))
        if old.limits != kept.limits:
            out.append(
                Change(
                    Kind.key_limits,
                    Section.keys,
                    k,
                    before={"limits": limits_text(old.limits)},
                    after={"limits": limits_text(kept.limits)},
                )
            )
        if old.description != kept.description:
            out.append(
                Change(
                    Kind.key_description,
                    Section.keys,
                    k,
                    before={"description": old.description},
                    after={"description": kept.description},
                )
            )
    return out
