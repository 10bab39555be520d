import pytest

from devtools.standin.testing import StandInThread
from devtools.standin.testing_openai import OpenAIUpstreamThread

from .harness import Gateway


@pytest.fixture(scope="module")
def engines(e2e):
    threads = {
        "chat": StandInThread("chat").start(),
        "chat2": StandInThread("chat").start(),
        "vision": StandInThread("vision").start(),
        "image": StandInThread("image").start(),
        "upstream": OpenAIUpstreamThread().start(),
    }
    yield threads
    for t in threads.values():
        t.stop()


@pytest.fixture(scope="module")
def gw(e2e, engines, tmp_path_factory):
    """The example catalog served over stand-ins (the search team's openai-backed service over the stand-in
    OpenAI-compatible upstream)."""
    e = {k: f"127.0.0.1:{t.server.port}" for k, t in engines.items() if k != "upstream"}
    g = Gateway(
        tmp_path_factory.mktemp("gw"),
        {
            "u-8105f7322477/test": [e["chat"]],
            "u-8105f7322477/support-bot": [e["chat"], e["chat2"]],
            "u-3f9a2c7e51d0/receipts": [e["vision"]],
            "u-3f9a2c7e51d0/product-images": [e["image"]],
            "team-search/query-rewriter": [engines["upstream"].url],
        },
        args=("--deadline", "2"),
    ).start()
    yield g
    g.stop()
