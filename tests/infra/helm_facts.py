"""What the tests know of the pinned Helm charts: tests/infra/data/helm-chart-facts.json, data read from each chart's
own files at its upstream tag by devtools/chart_facts.py (the charts are other projects' code and stay out of the
repository; docs/decisions/0006-helm-chart-facts.md). Value paths are dotted (`rules.default`); a condition is
{"all_of" | "any_of" | "none_of": [value paths]}, evaluated here as Helm would: our values over the chart's defaults.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from infra.charts import Chart

FILE = Path(__file__).parent / "data" / "helm-chart-facts.json"
REGENERATE = "regenerate it from the charts' sources with `python -m devtools.chart_facts` (see its docstring)"
_MISSING = object()


@functools.cache
def charts() -> dict[str, dict[str, dict]]:
    return json.loads(FILE.read_text())["charts"]


def facts(chart: Chart | tuple[str, str]) -> dict:
    name, version = (chart.name, chart.version) if isinstance(chart, Chart) else chart
    try:
        return charts()[name][version]
    except KeyError:
        raise LookupError(f"{FILE.name} has no facts for the Helm chart {name} {version}: {REGENERATE}") from None


def lookup(tree: dict, path: str, default: Any = None) -> Any:
    node: Any = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def exists(tree: dict, path: str) -> bool:
    return lookup(tree, path, _MISSING) is not _MISSING


def value(chart_facts: dict, values: dict, path: str) -> Any:
    """A value as the chart's templates see it: ours where we set it, else the chart's default. A path the facts
    did not look up is an error, not a silent None (regenerate the facts with it)."""
    if path not in chart_facts["value_paths"]:
        raise LookupError(f"{chart_facts['name']} {chart_facts['version']}: {path} not in the facts; {REGENERATE}")
    ours = lookup(values, path, _MISSING)
    return ours if ours is not _MISSING else lookup(chart_facts["values"], path)


def holds(when: dict, chart_facts: dict, values: dict) -> bool:
    ((op, paths),) = when.items()
    truth = [bool(value(chart_facts, values, p)) for p in paths]
    return {"all_of": all(truth), "any_of": any(truth), "none_of": not any(truth)}[op]
