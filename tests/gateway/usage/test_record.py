"""Metrics.observe: each record goes to its own series (service, access name, status), however many came before."""

from gateway.usage.record import Metrics, UsageRecord


def record(service_id, access_name, status, prompt, completion, latency_ms):
    return UsageRecord(
        request_id=f"r-{service_id}-{status}-{prompt}",
        service_id=service_id,
        access_name=access_name,
        key_id="k1",
        endpoint="chat.completions",
        stream=False,
        status=status,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms=latency_ms,
        overhead_ms=latency_ms / 10,
    )


def test_records_count_in_their_own_series():
    m = Metrics()
    for rec in [
        record("ms-a", "u-1/a", "ok", 3, 5, 100.0),
        record("ms-a", "u-1/a", "ok", 4, 6, 300.0),
        record("ms-a", "u-1/a", "error", 7, 0, 50.0),
        record("ms-b", "u-2/b", "ok", 1, 1, 10.0),
    ]:
        m.observe(rec)
    get = m.registry.get_sample_value
    a, b = {"service_id": "ms-a", "access_name": "u-1/a"}, {"service_id": "ms-b", "access_name": "u-2/b"}
    assert get("modelsvc_requests_total", {**a, "status": "ok"}) == 2
    assert get("modelsvc_requests_total", {**a, "status": "error"}) == 1
    assert get("modelsvc_requests_total", {**b, "status": "ok"}) == 1
    assert get("modelsvc_requests_total", {**b, "status": "error"}) is None
    assert get("modelsvc_prompt_tokens_total", a) == 14 and get("modelsvc_completion_tokens_total", a) == 11
    assert get("modelsvc_prompt_tokens_total", b) == 1
    assert get("modelsvc_request_latency_seconds_count", a) == 3
    assert abs(get("modelsvc_request_latency_seconds_sum", a) - 0.45) < 1e-9
    assert get("modelsvc_gateway_overhead_seconds_count", {"access_name": "u-1/a"}) == 3
