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


@pytest.mark.e2e
@pytest.mark.parametrize("head_first", [False, True], ids=["with-the-head", "after-the-head"])
async def test_a_bad_event_in_the_last_read_of_a_collected_answer_is_reported_as_such(head_first):
    """The body's end arrived in the same read as the bad event (with the head, or on its own once the answer is
    being collected): the answer still fails as a bad event (not as a stream without an end), is not partial, and
    its connection is not reused."""
    import asyncio

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(data), data)

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    good = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}\n\n'
    body = chunk(good) + chunk(b"data: {not json\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    accepted = []

    async def handle(reader, writer):
        accepted.append(1)
        try:
            while True:
                request = (await reader.readuntil(b"\r\n\r\n")).lower()
                await reader.readexactly(int(request.split(b"content-length:")[1].split(b"\r\n")[0]))
                if head_first:  # the client reads the head and starts collecting before the body comes
                    writer.write(head)
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(body)
                else:
                    writer.write(head + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    b = OpenAIUpstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", "m")
    try:
        for _ in range(2):
            with pytest.raises(BackendError) as e:
                await b.generate(genreq("", 4, messages=[{"role": "user", "content": "hi"}]))
            assert "invalid stream event" in e.value.message and e.value.partial is False
        assert len(accepted) == 2
    finally:
        await b.close()
        server.close()


@pytest.mark.e2e
async def test_a_streams_pieces_that_came_in_one_read_are_marked_to_be_written_together():
    """Delta.more: set on every piece of one read but its last, so the gateway writes a read's events in one write
    and never waits for a piece that has not come. The upstream sends three events, waits until the third has been
    handed on, then sends two more and the end."""
    import asyncio

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(data), data)

    def event(text: str, finish: str | None = None) -> bytes:
        finish_json = "null" if finish is None else f'"{finish}"'
        delta = f'{{"content": "{text}"}}' if text else "{}"
        return chunk(
            f'data: {{"choices": [{{"index": 0, "delta": {delta}, "finish_reason": {finish_json}}}]}}\n\n'.encode()
        )

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    second = asyncio.Event()

    async def handle(reader, writer):
        request = (await reader.readuntil(b"\r\n\r\n")).lower()
        await reader.readexactly(int(request.split(b"content-length:")[1].split(b"\r\n")[0]))
        writer.write(head + event("a") + event("b") + event("c"))  # one write: one read on the gateway's side
        await second.wait()
        writer.write(event("d") + event("e") + event("", "length") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    b = OpenAIUpstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", "m")
    try:
        seen: list[tuple[str, bool]] = []
        async for item in b.stream(genreq("", 5, messages=[{"role": "user", "content": "hi"}])):
            if isinstance(item, Delta):
                seen.append((item.text, item.more))
                if item.text == "c":
                    assert not item.more  # the last of its read: written now, before the next read
                    second.set()
            else:
                assert item.text == "abcde" and item.finish_reason == "length"
        assert seen == [("a", True), ("b", True), ("c", False), ("d", True), ("e", False)]
    finally:
        await b.close()
        server.close()
