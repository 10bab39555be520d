"""`modelsvc render`: the deployment plan (infra/plan.py) as YAML files, one per object, numbered in apply order."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .observability.dashboard import dashboard
from .observability.rules import rule_groups
from .plan import plan
from .settings import TARGETS, Settings

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog


def render(catalog: Catalog, target: str = "kubeconfig", settings: Settings | None = None) -> list[dict]:
    """All Kubernetes objects for the catalog, in apply order (namespaces first): the plan's objects.

    target "eks" adds the NVIDIA device plugin (EKS GPU AMIs lack it); "kubeconfig" assumes the cluster has one
    (GPU operator), unless settings.device_plugin is set. AWS resources are not Kubernetes objects: only the Pulumi
    program creates them.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return plan(catalog, dataclasses.replace(settings or Settings(), target=target)).objects


def _file_name(index: int, obj: dict) -> str:
    md = obj["metadata"]
    parts = [f"{index:03d}", obj["kind"].lower(), md.get("namespace", ""), md["name"]]
    return re.sub(r"[^a-z0-9.-]+", "-", "-".join(p for p in parts if p)) + ".yaml"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the scripts a Job carries) as literal blocks, so a rendered manifest reads like the file."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def write_yaml(objs: list[dict], outdir: str | os.PathLike) -> list[Path]:
    """One file per object, numbered in apply order (`kubectl apply -f OUTDIR` keeps it). Returns the paths.
    Files of an earlier render (`NNN-*.yaml`) are removed first: a service deleted since must not be applied again."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9][0-9][0-9]-*.yaml"):
        old.unlink()
    paths = []
    for i, obj in enumerate(objs):
        p = out / _file_name(i, obj)
        p.write_text(yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=120), encoding="utf-8")
        paths.append(p)
    return paths


def write_monitoring_files(catalog: Catalog, settings: Settings, outdir: str | os.PathLike) -> list[Path]:
    """The rules as a Prometheus rule file (for a Prometheus without the operator, and `promtool check rules`) and
    the dashboard JSON (Grafana import), under OUTDIR/monitoring/ (kubectl apply -f OUTDIR does not recurse)."""
    out = Path(outdir) / "monitoring"
    out.mkdir(parents=True, exist_ok=True)
    rules = out / "modelsvc-rules.yaml"
    rules.write_text(
        yaml.safe_dump({"groups": rule_groups(catalog, settings)}, sort_keys=False, width=120), encoding="utf-8"
    )
    board = out / "modelsvc-dashboard.json"
    board.write_text(json.dumps(dashboard(), indent=2) + "\n", encoding="utf-8")
    return [rules, board]
