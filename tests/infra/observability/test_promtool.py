"""Prometheus's own promtool (Debian package `prometheus`, installed by ./dev test) checks the rendered rule file and
runs unit tests of the rules on synthetic series: the recording rule computes NVIDIA's ratio, the alerts fire when
they should and stay quiet when they should not."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from infra.render import write_monitoring_files
from infra.settings import Settings

pytestmark = pytest.mark.e2e  # every test here runs promtool


SUPPORT = 'service_id="ms-a2547eda8901"'
HPA = 'namespace="modelsvc", horizontalpodautoscaler="u-8105f7322477--support-bot"'


def _rules_file(example, tmp_path):
    return write_monitoring_files(example, Settings(), tmp_path)[0]


def _promtool(*args) -> subprocess.CompletedProcess:
    # looked up here, not at import: the fast set collects this module on machines without promtool
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: apt-get install -y prometheus (./dev test does)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rendered_rules(example, tmp_path):
    proc = _promtool("check", "rules", str(_rules_file(example, tmp_path)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_refuses_a_broken_rule(example, tmp_path):
    path = _rules_file(example, tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["groups"][1]["rules"][0]["expr"] = "sum(rate(modelsvc_http_responses_total[5m])"
    path.write_text(yaml.safe_dump(doc))
    assert _promtool("check", "rules", str(path)).returncode != 0


def test_rules_behave_on_synthetic_series(example, tmp_path):
    rules = _rules_file(example, tmp_path)
    pod = 'namespace="modelsvc", pod="sb-1", service_id="ms-a2547eda8901"'
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {  # a pod without TensorRT-LLM (image generation): Triton's own ratio, queue 6000 µs/min over compute
                # 3000 µs/min = 2; the ensemble's time is left out
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'nv_inference_queue_duration_us{{{pod}, model="tensorrt_llm", version="1"}}',
                        "values": "0+6000x10",
                    },
                    {
                        "series": f'nv_inference_compute_infer_duration_us{{{pod}, model="tensorrt_llm", version="1"}}',
                        "values": "0+3000x10",
                    },
                    {
                        "series": f'nv_inference_compute_infer_duration_us{{{pod}, model="ensemble", version="1"}}',
                        "values": "0+3000x10",
                    },
                    {
                        "series": f'nv_inference_pending_request_count{{{pod}, model="tensorrt_llm", version="1"}}',
                        "values": "3x10",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": "modelsvc:triton_queue_compute:ratio",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": f"modelsvc:triton_queue_compute:ratio{{{pod}}}", "value": 2}],
                    },
                    {
                        "expr": "modelsvc:triton_pending_requests:sum",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": f"modelsvc:triton_pending_requests:sum{{{pod}}}", "value": 3}],
                    },
                ],
            },
            {  # TensorRT-LLM's executor queue: 6 waiting behind 3 in flight → 2 (Little's law: wait/serve time);
                # the pod holds 6 + 3 + 1 requests; Triton's own queue reads 0 there (the decoupled backend takes
                # every request at once and counts the wait as compute), so its ratio would say idle
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'nv_trt_llm_request_metrics{{{pod}, model="tensorrt_llm", request_type="waiting", '
                        'version="1"}',
                        "values": "6x10",
                    },
                    {
                        "series": f'nv_trt_llm_request_metrics{{{pod}, model="tensorrt_llm", request_type="active", '
                        'version="1"}',
                        "values": "3x10",
                    },
                    {
                        "series": f'nv_inference_queue_duration_us{{{pod}, model="tensorrt_llm", version="1"}}',
                        "values": "0x10",
                    },
                    {
                        "series": f'nv_inference_compute_infer_duration_us{{{pod}, model="tensorrt_llm", version="1"}}',
                        "values": "0+90000x10",
                    },
                    {
                        "series": f'nv_inference_pending_request_count{{{pod}, model="tensorrt_llm", version="1"}}',
                        "values": "1x10",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": "modelsvc:triton_queue_compute:ratio",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": f"modelsvc:triton_queue_compute:ratio{{{pod}}}", "value": 2}],
                    },
                    {
                        "expr": "modelsvc:triton_pending_requests:sum",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": f"modelsvc:triton_pending_requests:sum{{{pod}}}", "value": 10}],
                    },
                ],
            },
            {  # 10% 5xx fires after 5 minutes; nothing else does
                "interval": "1m",
                "input_series": [
                    {"series": 'modelsvc_http_responses_total{code="200", pod="gw-1"}', "values": "0+90x20"},
                    {"series": 'modelsvc_http_responses_total{code="502", pod="gw-1"}', "values": "0+10x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "ModelsvcGateway5xxRatio", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "ModelsvcGateway5xxRatio",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {
                                    "summary": "The gateway answers more than 5% of requests with a 5xx",
                                    "description": "10% of the gateway's answers are 5xx errors.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "15m", "alertname": "ModelsvcUsageLogWriteFailures", "exp_alerts": []},
                ],
            },
            {  # 1% 5xx stays quiet
                "interval": "1m",
                "input_series": [
                    {"series": 'modelsvc_http_responses_total{code="200"}', "values": "0+99x20"},
                    {"series": 'modelsvc_http_responses_total{code="500"}', "values": "0+1x20"},
                ],
                "alert_rule_test": [{"eval_time": "15m", "alertname": "ModelsvcGateway5xxRatio", "exp_alerts": []}],
            },
            {  # over target with the HPA at max: fires; the same load below max: quiet (the HPA is still adding)
                "interval": "1m",
                "input_series": [
                    {"series": f"modelsvc:triton_queue_compute:ratio{{{pod}}}", "values": "2x30"},
                    {"series": f"kube_horizontalpodautoscaler_status_current_replicas{{{HPA}}}", "values": "3x5 4x25"},
                    {"series": f"kube_horizontalpodautoscaler_spec_max_replicas{{{HPA}}}", "values": "4x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "ModelsvcLoadAboveTargetAtMax", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "ModelsvcLoadAboveTargetAtMax",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "service_id": "ms-a2547eda8901",
                                    "access_name": "u-8105f7322477/support-bot",
                                },
                                "exp_annotations": {
                                    "summary": "A service is over its load target with every instance it may have",
                                    "description": "u-8105f7322477/support-bot: queue_ratio 2 > target 1 at "
                                    "max_instances (4): raise autoscale.max_instances (and the pool's max_nodes).",
                                },
                            }
                        ],
                    },
                ],
            },
            {  # a usage record that failed to write pages at once; a failed build Job too
                "interval": "1m",
                "input_series": [
                    {"series": 'modelsvc_usage_write_errors_total{pod="gw-1", reason="ENOSPC"}', "values": "0 0 1 1 1"},
                    {"series": 'modelsvc_usage_refused_requests_total{pod="gw-1"}', "values": "0 0 0 0 0"},
                    {
                        "series": "kube_job_status_failed"
                        '{namespace="modelsvc", job_name="u-8105f7322477--test-build-bf4ede3b"}',
                        "values": "0 1 1",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "3m",
                        "alertname": "ModelsvcUsageLogWriteFailures",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "pod": "gw-1"},
                                "exp_annotations": {
                                    "summary": "Usage records cannot be written to the gateway's disk "
                                    "(held in memory, retried)",
                                    "description": "gw-1: 1 failed usage write(s) in 5 minutes (disk full?).",
                                },
                            }
                        ],
                    },
                    {"eval_time": "3m", "alertname": "ModelsvcUsageRefusingRequests", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "ModelsvcEngineBuildFailed",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "modelsvc",
                                    "job_name": "u-8105f7322477--test-build-bf4ede3b",
                                },
                                "exp_annotations": {
                                    "summary": "An engine build Job failed",
                                    "description": "modelsvc/u-8105f7322477--test-build-bf4ede3b failed: "
                                    "`kubectl logs job/u-8105f7322477--test-build-bf4ede3b`.",
                                },
                            }
                        ],
                    },
                ],
            },
        ],
    }
    path = tmp_path / "rules_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = _promtool("test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
