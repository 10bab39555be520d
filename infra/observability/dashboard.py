"""The Grafana dashboard (JSON model, schemaVersion 39): gateway traffic per service id, Triton load, GPU use.

Provisioned through kube-prometheus-stack's Grafana sidecar (a ConfigMap labelled grafana_dashboard=1); the same JSON
can be imported by hand. A `service_id` variable filters every gateway panel.
"""

from __future__ import annotations

from .metrics import PENDING, QUEUE_RATIO

UID = "modelsvc-overview"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SVC = 'service_id=~"$service_id"'

# (title, unit, [(expr, legend)]) per panel; rows of two panels.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Requests per second by service",
        "reqps",
        [
            (
                f"sum by (service_id, access_name) (rate(modelsvc_requests_total{{{SVC}}}[5m]))",
                "{{access_name}} ({{service_id}})",
            )
        ],
    ),
    (
        "Errors per second by service",
        "reqps",
        [
            (
                f'sum by (service_id, access_name) (rate(modelsvc_requests_total{{{SVC}, status="error"}}[5m]))',
                "{{access_name}} ({{service_id}})",
            ),
            ('sum by (code) (rate(modelsvc_http_responses_total{code=~"5.."}[5m]))', "gateway {{code}}"),
        ],
    ),
    (
        "Tokens per second by service",
        "short",
        [
            (f"sum by (service_id) (rate(modelsvc_prompt_tokens_total{{{SVC}}}[5m]))", "prompt {{service_id}}"),
            (f"sum by (service_id) (rate(modelsvc_completion_tokens_total{{{SVC}}}[5m]))", "completion {{service_id}}"),
        ],
    ),
    (
        "Request latency p50 / p99",
        "s",
        [
            (
                f"histogram_quantile(0.5, sum by (le, service_id) "
                f"(rate(modelsvc_request_latency_seconds_bucket{{{SVC}}}[5m])))",
                "p50 {{service_id}}",
            ),
            (
                f"histogram_quantile(0.99, sum by (le, service_id) "
                f"(rate(modelsvc_request_latency_seconds_bucket{{{SVC}}}[5m])))",
                "p99 {{service_id}}",
            ),
        ],
    ),
    (
        "Gateway added latency (overhead) p99",
        "s",
        [
            (
                "histogram_quantile(0.99, sum by (le, access_name) "
                "(rate(modelsvc_gateway_overhead_seconds_bucket[5m])))",
                "{{access_name}}",
            )
        ],
    ),
    (
        "Instances ready / seen by the gateway",
        "short",
        [
            (f'sum by (access_name) (modelsvc_instances{{{SVC}, state="ready"}})', "ready {{access_name}}"),
            (f'sum by (access_name) (modelsvc_instances{{{SVC}, state="discovered"}})', "seen {{access_name}}"),
        ],
    ),
    ("Triton queue / compute ratio per pod (autoscaling signal)", "short", [(f"{QUEUE_RATIO}{{{SVC}}}", "{{pod}}")]),
    ("Triton pending requests per pod", "short", [(f"{PENDING}{{{SVC}}}", "{{pod}}")]),
    (
        "GPU utilisation (DCGM exporter, when installed)",
        "percent",
        [('avg by (pod) (DCGM_FI_DEV_GPU_UTIL{pod!=""})', "{{pod}}")],
    ),
]


def _panel(i: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict:
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + j)}
            for j, (expr, legend) in enumerate(queries)
        ],
    }


def dashboard() -> dict:
    return {
        "uid": UID,
        "title": "modelsvc: model services",
        "tags": ["modelsvc", "triton"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "label": "Data source",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "service_id",
                    "type": "query",
                    "label": "Service id",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(modelsvc_requests_total, service_id)", "refId": "service_id"},
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "refresh": 2,
                    "hide": 0,
                },
            ]
        },
        "panels": [_panel(i, *p) for i, p in enumerate(PANELS)],
    }


def expressions() -> list[str]:
    return [expr for _, _, queries in PANELS for expr, _ in queries]
