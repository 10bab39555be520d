"""schemathesis against the served OpenAPI document: no 5xx, every error body OpenAI-shaped."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from devtools.standin.testing import StandInThread

from .harness import DEMO_KEY, Gateway

OPERATIONS = [
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/images/generations",
    "POST /v1/responses",
    "GET /v1/responses/{response_id}",
    "DELETE /v1/responses/{response_id}",
    "GET /v1/responses/{response_id}/input_items",
    "GET /v1/models",
    "GET /v1/models/{model}",
    "GET /v1/organization/usage/completions",
    "GET /v1/organization/usage/images",
    "GET /healthz",
    "GET /readyz",
]


@pytest.fixture(scope="module")
def api_schema(e2e, tmp_path_factory):
    engines = [StandInThread("chat").start(), StandInThread("image").start()]
    g = Gateway(
        tmp_path_factory.mktemp("fuzz"),
        {
            "u-8105f7322477/test": [f"127.0.0.1:{engines[0].server.port}"],
            "u-8105f7322477/support-bot": [f"127.0.0.1:{engines[0].server.port}"],
        },
    ).start()
    yield schemathesis.openapi.from_url(g.url + "/openapi.json")
    g.stop()
    for e in engines:
        e.stop()


def openai_error_shape(ctx, response, case):
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# schemathesis's own pytest plugin does not run under pytest 9, so the operations are driven through its Python API.
@pytest.mark.parametrize("operation", OPERATIONS)
def test_api_never_5xx_and_errors_are_openai_shaped(api_schema, operation):
    ops = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in api_schema.get_all_operations())}
    assert set(ops) == set(OPERATIONS)
    calls = []
    known = st.sampled_from(["u-8105f7322477/test", "u-8105f7322477/support-bot", "u-3f9a2c7e51d0/receipts"])

    def with_known_model(case, model):
        # Generated model names are almost never real access names: point most cases at real services so that
        # the fuzzing reaches parameter validation and the engines, not only the 404.
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = model
        return case

    strategy = st.builds(with_known_model, ops[operation].as_strategy(), known)

    @given(st.one_of(strategy, strategy, ops[operation].as_strategy()))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {DEMO_KEY}"}, checks=[not_a_server_error, openai_error_shape], timeout=20
        )
        calls.append(response.status_code)

    fuzz()
    assert calls, "no request was generated"
    if operation.startswith("POST"):
        assert len(set(calls)) >= 2, calls  # reached past the first refusal


def test_document_is_served_and_lists_the_api():
    from gateway.openapi import document

    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/models/{model}",
        "/v1/images/generations",
    } <= set(doc["paths"])
