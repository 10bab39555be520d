"""The Grafana dashboard: Grafana's own model (grafana-foundation-sdk) loads it without dropping or changing
anything we wrote, and it covers what operators look at."""

from __future__ import annotations

import json

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from infra.manifests.monitoring import dashboard_configmap
from infra.observability.dashboard import dashboard
from infra.settings import Settings


def _lost(ours, theirs, path="") -> list[str]:
    """Keys or values of ours that the SDK's round trip dropped or changed (defaults it adds are fine)."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [path]
        return [
            p
            for k, v in ours.items()
            for p in (_lost(v, theirs[k], f"{path}/{k}") if k in theirs else [f"{path}/{k} dropped"])
        ]
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(ours) != len(theirs):
            return [path]
        return [p for i, (a, b) in enumerate(zip(ours, theirs)) for p in _lost(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} → {theirs!r}"]


def test_grafana_model_round_trip_keeps_everything():
    ours = dashboard()
    theirs = json.loads(json.dumps(Dashboard.from_json(ours), cls=JSONEncoder))
    assert _lost(ours, theirs) == []


def test_a_misspelt_field_would_be_caught():
    bad = dashboard()
    bad["panels"][0]["gridPoss"] = bad["panels"][0].pop("gridPos")
    theirs = json.loads(json.dumps(Dashboard.from_json(bad), cls=JSONEncoder))
    assert "/panels[0]/gridPoss dropped" in _lost(bad, theirs)


def test_panels_cover_the_service_view():
    d = dashboard()
    titles = " | ".join(p["title"] for p in d["panels"])
    for what in ("Requests", "Errors", "Tokens", "latency", "overhead", "queue / compute", "GPU utilisation"):
        assert what in titles
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    grid = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in d["panels"]]
    assert len(grid) == len(set(grid))  # no two panels on the same spot
    assert any(v["name"] == "service_id" for v in d["templating"]["list"])


def test_dashboard_ships_as_a_sidecar_configmap():
    cm = dashboard_configmap(Settings())
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert json.loads(cm["data"]["modelsvc.json"]) == dashboard()
