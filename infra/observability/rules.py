"""Prometheus rules: the recording rules the autoscaler reads, and the alerts, as Prometheus Operator rule groups.

The autoscaling signal must see TensorRT-LLM's own executor queue. Triton's core metrics cannot: the decoupled
TensorRT-LLM backend takes a request from Triton's queue at once and counts it as compute from then on, waiting in
the executor included, so NVIDIA's guide's queue/compute ratio (triton-inference-server/tutorials,
Deployment/Kubernetes/TensorRT-LLM_Autoscaling_and_Load_Balancing) *falls* as the GPU saturates. The backend exports
the executor's state per pod instead (tensorrtllm_backend r25.10 README.md, "Triton Metrics"):
`nv_trt_llm_request_metrics{request_type="waiting"}` (queued in the executor) and `{request_type="active"}` (in
flight). So, per pod:

* queue_ratio = waiting / max(active, 1): by Little's law (L = λW, one arrival rate for both) the number waiting over
  the number being served is the time waiting over the time being served, the ratio the catalog's target means
  (1: requests wait as long as they run). Pods without TensorRT-LLM (image generation) keep Triton's own
  queue/compute ratio, which does see their queue; the wrapper models (ensemble, BLS) are left out of it, their
  compute time being the sum of their steps'.
* pending_requests = the requests a pod holds: in flight and waiting in the executor, plus any pending in Triton's
  core. Proportional to the pod's load below saturation (so the HPA's ceil(pods × metric / target) sizes well) and
  growing with the queue above it. queue_ratio, by contrast, stays near 0 until in-flight batching is full and then
  climbs steeply: it scales up fast on a burst but can hunt between two pod counts under a steady load that sits
  between them (devtools/hpa_sim.py; docs/infra.md "Autoscaling").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelsvc.catalog.capacity import deployed_services
from modelsvc.catalog.model import ScaleMetric
from modelsvc.catalog.names import k8s_name, namespace_of

from .metrics import PENDING, QUEUE_RATIO

if TYPE_CHECKING:
    from modelsvc.catalog import Catalog

    from ..settings import Settings

POD = "namespace, pod, service_id"
ENGINE_MODELS = 'model!~"ensemble|tensorrt_llm_bls"'
ERROR_RATIO = 0.05  # 5% of answers failing for 5 minutes pages someone
ADDED_LATENCY_P99_S = 0.025  # the gateway's own p99 overhead; benchmarks show well under 1 ms at load


WAITING = f'sum by ({POD}) (nv_trt_llm_request_metrics{{request_type="waiting"}})'
ACTIVE = f'sum by ({POD}) (nv_trt_llm_request_metrics{{request_type="active"}})'
CORE_PENDING = f"sum by ({POD}) (nv_inference_pending_request_count{{{ENGINE_MODELS}}})"
CORE_RATIO = (
    f"sum by ({POD}) (rate(nv_inference_queue_duration_us{{{ENGINE_MODELS}}}[1m]))\n"
    f"  / clamp_min(sum by ({POD}) (rate(nv_inference_compute_infer_duration_us{{{ENGINE_MODELS}}}[1m])), 1)"
)


def recording_rules() -> dict:
    return {
        "name": "modelsvc-autoscaling",
        "interval": "15s",
        "rules": [
            {"record": QUEUE_RATIO, "expr": f"{WAITING}\n  / clamp_min({ACTIVE}, 1)\nor\n{CORE_RATIO}"},
            {"record": PENDING, "expr": f"{WAITING} + {ACTIVE} + {CORE_PENDING}\nor\n{CORE_PENDING}"},
        ],
    }


def _regex(values: list[str]) -> str:
    return "|".join(values) or "^$"  # k8s names are [a-z0-9-]: nothing to escape


def alert_rules(catalog: Catalog, settings: Settings) -> dict:
    deployed = deployed_services(catalog)
    namespaces = _regex(sorted({namespace_of(s, settings) for s in deployed}))
    deployments = _regex([k8s_name(s.access_name) for s in deployed])
    rules = [
        _alert(
            "ModelsvcGateway5xxRatio",
            "critical",
            "5m",
            f'sum(rate(modelsvc_http_responses_total{{code=~"5.."}}[5m]))\n'
            f"  / clamp_min(sum(rate(modelsvc_http_responses_total[5m])), 1e-9) > {ERROR_RATIO}",
            "The gateway answers more than 5% of requests with a 5xx",
            "{{ $value | humanizePercentage }} of the gateway's answers are 5xx errors.",
        ),
        _alert(
            "ModelsvcServiceErrorRatio",
            "warning",
            "5m",
            'sum by (service_id, access_name) (rate(modelsvc_requests_total{status="error"}[5m]))\n'
            "  / clamp_min(sum by (service_id, access_name) (rate(modelsvc_requests_total[5m])), 1e-9)"
            f" > {ERROR_RATIO}",
            "A model service fails more than 5% of its requests",
            "{{ $labels.access_name }} ({{ $labels.service_id }}): {{ $value | humanizePercentage }} errors.",
        ),
        _alert(
            "ModelsvcAddedLatencyHigh",
            "warning",
            "10m",
            "histogram_quantile(0.99, sum by (le, access_name) "
            f"(rate(modelsvc_gateway_overhead_seconds_bucket[5m]))) > {ADDED_LATENCY_P99_S}",
            "The gateway adds more than 25 ms at p99",
            "{{ $labels.access_name }}: p99 added latency {{ $value | humanizeDuration }}.",
        ),
        _alert(
            "ModelsvcInstanceNotReady",
            "warning",
            "5m",
            'max by (service_id, access_name) (modelsvc_instances{state="discovered"})\n'
            '  - max by (service_id, access_name) (modelsvc_instances{state="ready"}) > 0',
            "An instance the gateway sees fails its health checks",
            "{{ $labels.access_name }}: {{ $value }} instance(s) out of rotation.",
        ),
        _alert(
            "ModelsvcPodsUnavailable",
            "warning",
            "15m",
            f'kube_deployment_status_replicas_unavailable{{namespace=~"{namespaces}", '
            f'deployment=~"{deployments}"}} > 0',
            "Triton pods of a service are not ready (never joined the gateway's view)",
            "{{ $labels.namespace }}/{{ $labels.deployment }}: {{ $value }} pod(s) unavailable: pending for a "
            "GPU node, engine load, or crash looping.",
        ),
        _alert(
            "ModelsvcUsageLogWriteFailures",
            "critical",
            "0m",
            "sum by (pod) (increase(modelsvc_usage_write_errors_total[5m])) > 0",
            "Usage records cannot be written to the gateway's disk (held in memory, retried)",
            "{{ $labels.pod }}: {{ $value }} failed usage write(s) in 5 minutes (disk full?).",
        ),
        _alert(
            "ModelsvcUsageRefusingRequests",
            "critical",
            "0m",
            "sum by (pod) (increase(modelsvc_usage_refused_requests_total[5m])) > 0",
            "The gateway refuses requests because it cannot record their usage",
            "{{ $labels.pod }}: {{ $value }} request(s) refused with 503 in 5 minutes: free the usage disk.",
        ),
        _alert(
            "ModelsvcEngineBuildFailed",
            "critical",
            "0m",
            f'kube_job_status_failed{{namespace=~"{namespaces}", job_name=~".+-build-[0-9a-f]+"}} > 0',
            "An engine build Job failed",
            "{{ $labels.namespace }}/{{ $labels.job_name }} failed: `kubectl logs job/{{ $labels.job_name }}`.",
        ),
    ]
    for s in deployed:
        if s.autoscale is None:
            continue
        metric = QUEUE_RATIO if s.autoscale.metric is ScaleMetric.queue_ratio else PENDING
        hpa = f'namespace="{namespace_of(s, settings)}", horizontalpodautoscaler="{k8s_name(s.access_name)}"'
        rules.append(
            _alert(
                "ModelsvcLoadAboveTargetAtMax",
                "warning",
                "10m",
                f'avg({metric}{{service_id="{s.id}"}}) > {s.autoscale.target:g}\n'
                f"  and on() (kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}\n"
                f"    >= kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}})",
                "A service is over its load target with every instance it may have",
                f"{s.access_name}: {s.autoscale.metric.value} {{{{ $value }}}} > target {s.autoscale.target:g} at "
                f"max_instances ({s.autoscale.max_instances}): raise autoscale.max_instances "
                "(and the pool's max_nodes).",
                {"service_id": s.id, "access_name": s.access_name},
            )
        )
    return {"name": "modelsvc-alerts", "rules": rules}


def _alert(
    name: str, severity: str, for_: str, expr: str, summary: str, description: str, labels: dict | None = None
) -> dict:
    rule: dict[str, object] = {"alert": name, "expr": expr}
    if for_ != "0m":
        rule["for"] = for_
    rule["labels"] = {"severity": severity, **(labels or {})}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def rule_groups(catalog: Catalog, settings: Settings) -> list[dict]:
    return [recording_rules(), alert_rules(catalog, settings)]
