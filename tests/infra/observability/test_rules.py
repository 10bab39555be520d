"""The Prometheus rules: every expression parses with a real PromQL parser, names only known metrics, and every
gateway metric it names is served by a live gateway's /metrics."""

from __future__ import annotations

import re

import httpx
import promql_parser
import pytest

from devtools.standin.testing import StandInThread
from infra.observability import metrics
from infra.observability.dashboard import expressions as dashboard_expressions
from infra.observability.rules import alert_rules, recording_rules, rule_groups
from infra.settings import Settings
from tests.gateway.harness import Gateway


def metric_names(expr: str) -> set[str]:
    """Every series name an expression selects, from the parser's syntax tree."""
    return set(label_uses(expr))


def label_uses(expr: str) -> dict[str, set[str]]:
    """metric name → label names the expression needs on it: its matchers, and the `by (…)` labels of every
    aggregation around it."""
    uses: dict[str, set[str]] = {}

    def walk(node, grouping=frozenset()):
        if isinstance(node, promql_parser.VectorSelector):
            labels = {m.name for m in node.matchers.matchers if m.name != "__name__"}
            uses.setdefault(node.name, set()).update(labels | grouping)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector, grouping)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs, grouping), walk(node.rhs, grouping)
        elif isinstance(node, promql_parser.AggregateExpr):
            by = node.modifier is not None and str(node.modifier.type).lower().endswith("by")
            walk(node.expr, grouping | set(node.modifier.labels) if by else grouping)
            if node.param is not None:
                walk(node.param, grouping)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg, grouping)
        elif isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            walk(node.expr, grouping)

    walk(promql_parser.parse(expr))
    return uses


def all_rules(catalog):
    return [r for g in rule_groups(catalog, Settings()) for r in g["rules"]]


def test_label_uses():
    assert label_uses('histogram_quantile(0.99, sum by (le, access_name) (rate(x_bucket{code="5"}[5m]))) > 1') == {
        "x_bucket": {"le", "access_name", "code"}
    }
    assert label_uses("sum(rate(a[5m])) / count(b)") == {"a": set(), "b": set()}


def test_the_parser_is_real():
    assert metric_names('sum(rate(a_total{x="1"}[5m])) / clamp_min(b, 1) and on() c >= d') == {"a_total", "b", "c", "d"}
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(a_total[5m])")


def test_every_expression_parses_and_names_known_metrics(example):
    exprs = [r["expr"] for r in all_rules(example)] + dashboard_expressions()
    used = set()
    for expr in exprs:
        names = metric_names(expr)  # raises on a syntax error
        assert names, expr
        used |= names
    assert used <= metrics.KNOWN, used - metrics.KNOWN
    # and the lists are not padded: every known metric is used somewhere
    assert metrics.KNOWN - used <= {"nv_inference_request_success", "nv_inference_request_failure"}


def test_rule_structure(example):
    names = [r.get("alert") or r.get("record") for r in all_rules(example)]
    for r in all_rules(example):
        assert ("alert" in r) != ("record" in r)
        if "alert" in r:
            assert r["labels"]["severity"] in ("warning", "critical")
            assert r["annotations"]["summary"] and r["annotations"]["description"]
    assert {
        "ModelsvcGateway5xxRatio",
        "ModelsvcAddedLatencyHigh",
        "ModelsvcInstanceNotReady",
        "ModelsvcLoadAboveTargetAtMax",
        "ModelsvcUsageLogWriteFailures",
        "ModelsvcEngineBuildFailed",
    } <= set(names)
    assert set(recording_rules()["rules"][i]["record"] for i in (0, 1)) == metrics.RECORDED


def test_at_max_alert_per_autoscaled_service(example):
    at_max = [r for r in alert_rules(example, Settings())["rules"] if r["alert"] == "ModelsvcLoadAboveTargetAtMax"]
    assert [r["labels"]["access_name"] for r in at_max] == ["u-8105f7322477/support-bot"]
    expr = at_max[0]["expr"]
    assert 'service_id="ms-a2547eda8901"' in expr and "> 1\n" in expr
    assert 'horizontalpodautoscaler="u-8105f7322477--support-bot"' in expr


# Triton's documented metrics (server/docs/user_guide/metrics.md, "Inference Request Metrics" and latencies).
TRITON_DOCUMENTED = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_pending_request_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
}


def test_triton_metrics_are_documented_ones():
    assert metrics.TRITON <= TRITON_DOCUMENTED


# The TensorRT-LLM backend's metrics (tensorrtllm_backend r25.10 README.md, "Triton Metrics"), with the label values
# the rules select.
TRTLLM_DOCUMENTED = {"nv_trt_llm_request_metrics": {"waiting", "context", "scheduled", "max", "active"}}


def test_trtllm_metrics_are_documented_ones():
    assert metrics.TRTLLM <= set(TRTLLM_DOCUMENTED)
    for rule in recording_rules()["rules"]:
        for value in re.findall(r'request_type="(\w+)"', rule["expr"]):
            assert value in TRTLLM_DOCUMENTED["nv_trt_llm_request_metrics"]


TARGET_LABELS = {"namespace", "pod", "instance", "job", "container"}


def gw_catalog():
    from modelsvc.catalog import loads
    from tests.gateway.harness import example_catalog

    return loads(example_catalog())


@pytest.fixture(scope="module")
def live_gateway(e2e, tmp_path_factory):
    engine = StandInThread("chat").start()
    ep = f"127.0.0.1:{engine.server.port}"
    gw = Gateway(
        tmp_path_factory.mktemp("gw-metrics"), {"u-8105f7322477/test": [ep], "u-8105f7322477/support-bot": [ep]}
    ).start()
    yield gw
    gw.stop()
    engine.stop()


def test_gateway_metric_names_exist_in_a_live_gateway(live_gateway):
    gw = live_gateway
    r = gw.post(
        "/v1/chat/completions", {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "metrics"}]}
    )
    assert r.status_code == 200
    assert gw.post("/v1/chat/completions", {"model": "nobody/nothing", "messages": []}).status_code in (400, 404)
    base = gw.internal_url  # the internal port (--metrics-port): the one the PodMonitor scrapes
    text = httpx.get(base + "/metrics", timeout=10).text
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    # a labelled counter nobody incremented yet has no sample, only its declaration
    served |= {
        line.split()[2].removesuffix("_total") + "_total"
        for line in text.splitlines()
        if line.startswith("# TYPE ") and line.split()[3] == "counter"
    }
    assert metrics.GATEWAY <= served, metrics.GATEWAY - served
    # and every label a rule or panel selects or groups by on a gateway metric is on the served series
    from prometheus_client.parser import text_string_to_metric_families

    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    exprs = [r["expr"] for g in rule_groups(gw_catalog(), Settings()) for r in g["rules"]] + dashboard_expressions()
    checked = 0
    for expr in exprs:
        for name, needed in label_uses(expr).items():
            if name in metrics.GATEWAY and name in labels:
                needed = needed - TARGET_LABELS  # added by Prometheus at scrape time, not by the gateway
                assert needed <= labels[name], (expr, name, needed - labels[name])
                checked += 1
    assert checked >= 15
    assert (
        'modelsvc_instances{access_name="u-8105f7322477/test",service_id="ms-1d033c426254",state="ready"} 1.0' in text
    )
    assert 'modelsvc_http_responses_total{code="200"}' in text
