"""Every metric name the rules and the dashboard use, with where it comes from.

Tests check each against its source: the gateway's names against a live gateway's /metrics, Triton's against
the names documented in Triton's metrics guide (server/docs/user_guide/metrics.md), the others by their project's
documentation. A rule that names anything not listed here fails its test.
"""

from __future__ import annotations

# The gateway (gateway/usage.py, gateway/instance_metrics.py): series as prometheus_client exposes them.
GATEWAY = {
    "modelsvc_requests_total",  # labels service_id, access_name, status (ok | error | cancelled)
    "modelsvc_prompt_tokens_total",
    "modelsvc_completion_tokens_total",
    "modelsvc_request_latency_seconds_bucket",
    "modelsvc_gateway_overhead_seconds_bucket",  # added latency: total minus waiting on the backend
    "modelsvc_http_responses_total",  # label code
    "modelsvc_usage_write_errors_total",  # label reason (gateway/usage/record.py)
    "modelsvc_usage_refused_requests_total",
    "modelsvc_instances",  # labels service_id, access_name, state (ready | discovered)
}

# Triton Inference Server, per model and version (Triton docs: "Metrics", inference request and latency metrics).
TRITON = {
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_pending_request_count",
    "nv_inference_request_success",
    "nv_inference_request_failure",
}

# The TensorRT-LLM backend's executor statistics (tensorrtllm_backend r25.10 README.md, "Triton Metrics"): label
# request_type waiting | active | scheduled | context | max. What the autoscaling signal reads.
TRTLLM = {"nv_trt_llm_request_metrics"}

# kube-state-metrics (part of kube-prometheus-stack): Job, Deployment and HPA status.
KUBE_STATE = {
    "kube_job_status_failed",
    "kube_deployment_status_replicas_unavailable",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
}

# NVIDIA DCGM exporter, when installed (GPU utilisation per GPU, with the pod when run with --kubernetes=true).
DCGM = {"DCGM_FI_DEV_GPU_UTIL"}

# Our own recording rules (infra/observability/rules.py): what the HPA reads through prometheus-adapter.
QUEUE_RATIO = "modelsvc:triton_queue_compute:ratio"
PENDING = "modelsvc:triton_pending_requests:sum"
RECORDED = {QUEUE_RATIO, PENDING}

KNOWN = GATEWAY | TRITON | TRTLLM | KUBE_STATE | DCGM | RECORDED
