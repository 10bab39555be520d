"""Both backends implement the whole engine contract (gateway/backends/base.py)."""

import inspect

from gateway.backends import base
from gateway.backends.openai import OpenAIUpstream
from gateway.backends.triton import TritonInstance

CONTRACT = [n for n in dir(base.Backend) if not n.startswith("_")]


def test_the_contract_lists_what_the_flow_and_the_balancer_use():
    assert set(CONTRACT) == {
        "capabilities",
        "check",
        "close",
        "generate",
        "generate_images",
        "ready",
        "start",
        "stream",
    }
    assert "outstanding" in base.Backend.__annotations__


def test_every_backend_has_every_method_of_the_contract_with_its_kind():
    for cls in (TritonInstance, OpenAIUpstream):
        for name in CONTRACT:
            ours, theirs = getattr(base.Backend, name), getattr(cls, name)
            if isinstance(ours, property):
                assert isinstance(theirs, property), (cls, name)
                continue
            assert inspect.iscoroutinefunction(theirs) == inspect.iscoroutinefunction(ours), (cls, name)
            if name == "stream":
                assert inspect.isasyncgenfunction(theirs), cls
            params = list(inspect.signature(theirs).parameters)
            assert params == list(inspect.signature(ours).parameters), (cls, name)


def test_an_openai_upstream_templates_itself_and_forwards_extensions():
    caps = OpenAIUpstream("http://127.0.0.1:9/v1", None).capabilities
    assert caps.templates_itself and caps.vision and caps.extensions is None
    assert caps.sampling == set(base.SAMPLING_PARAMS) and not caps.logprobs
    assert OpenAIUpstream("http://127.0.0.1:9/v1", None, generates="images").capabilities.generates == "images"
