"""The `openai` backend kind against the stand-in OpenAI-compatible upstream."""

import pytest

from devtools.standin.testing_openai import OpenAIUpstreamThread
from gateway.backends.base import Delta, GenRequest, GenResult, Sampling
from gateway.backends.openai import OpenAIUpstream
from gateway.errors import BackendError, BackendUnavailable


def genreq(prompt, max_tokens, *, image_urls=(), messages=None, stop=(), **sampling):
    """A GenRequest the way the flow builds one (the sampling parameters validated into a Sampling)."""
    return GenRequest(prompt, Sampling(max_tokens, stop=tuple(stop), **sampling), list(image_urls), messages=messages)


@pytest.fixture(scope="module")
def upstream(e2e):
    t = OpenAIUpstreamThread().start()
    yield t
    t.stop()


async def test_generate_and_stream_agree(upstream):
    b = OpenAIUpstream(upstream.url, "mistral")
    await b.start()
    assert await b.ready()
    req = genreq("", 6, messages=[{"role": "user", "content": "hello"}])
    full = await b.generate(req)
    assert full.completion_tokens == 6 and full.finish_reason == "length"
    items = [x async for x in b.stream(req)]
    assert all(isinstance(x, Delta) for x in items[:-1]) and isinstance(items[-1], GenResult)
    assert "".join(x.text for x in items[:-1]) == full.text == items[-1].text
    assert items[-1].completion_tokens == 6
    await b.close()


async def test_stop_strings_and_completions(upstream):
    b = OpenAIUpstream(upstream.url, None)
    whole = await b.generate(genreq("abc", 10))
    stop = whole.text.split(" ")[3]
    cut = await b.generate(genreq("abc", 10, stop=[" " + stop]))
    assert cut.finish_reason == "stop" and cut.text == " ".join(whole.text.split(" ")[:3])
    await b.close()


async def test_unreachable_upstream_is_unavailable_not_partial():
    b = OpenAIUpstream("http://127.0.0.1:9/v1", None, connect_timeout_s=1)
    assert not await b.ready()
    with pytest.raises(BackendUnavailable):
        await b.start()
    with pytest.raises(BackendUnavailable) as e:
        await b.generate(genreq("x", 2))
    assert e.value.partial is False
    with pytest.raises(BackendError):
        async for _ in b.stream(genreq("x", 2)):
            pass
    await b.close()
