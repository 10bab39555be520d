"""TritonInstance (the gateway's Triton client) against the stand-in engine: every point of the contract."""

import asyncio
import base64
import hashlib
import json
import socket
import struct
import time
import zlib

import numpy as np
import pytest
import pytest_asyncio
from tritonclient.grpc import service_pb2

from devtools.standin import complete, count_input_tokens, generate_image, generate_tokens
from devtools.standin.testing import StandInThread
from gateway.backends.base import Delta, GenRequest, GenResult, Guide, ImageRequest, Sampling
from gateway.backends.images import encode_png
from gateway.backends.triton import TritonInstance
from gateway.errors import BackendError, BackendTimeout, BackendUnavailable, InvalidRequest, UnsupportedParameter


def genreq(prompt, max_tokens, *, image_urls=(), messages=None, stop=(), **sampling):
    """A GenRequest the way the flow builds one (the sampling parameters validated into a Sampling)."""
    return GenRequest(prompt, Sampling(max_tokens, stop=tuple(stop), **sampling), list(image_urls), messages=messages)


@pytest.fixture(scope="module")
def chat(e2e):
    t = StandInThread("chat").start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def chat_nd(e2e):
    t = StandInThread("chat", decoupled=False).start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def legacy(e2e):
    t = StandInThread("chat", seed_name="random_seed", decoupled=False).start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def bare(e2e):  # no seed input, no sampling knobs, no token counts
    t = StandInThread(
        "chat",
        seed_name=None,
        omit_inputs=("temperature", "return_num_input_tokens", "return_num_output_tokens"),
    ).start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def vision(e2e):
    t = StandInThread("vision").start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def image(e2e):
    t = StandInThread("image", image_width=40, image_height=24).start()
    yield t
    t.stop()


@pytest_asyncio.fixture
async def make():
    made = []

    async def _make(server, model="ensemble", **kw):
        inst = TritonInstance(server.url, model, **kw)
        await inst.start()
        made.append(inst)
        return inst

    yield _make
    for inst in made:
        await inst.close()


async def collect(inst, req):
    deltas, results = [], []
    async for item in inst.stream(req):
        (deltas if isinstance(item, Delta) else results).append(item)
    assert len(results) == 1 and isinstance(results[0], GenResult)
    return [d.text for d in deltas], results[0]


async def wait_until(pred, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def decode_png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and ctype == 2 and b"IEND" in chunks
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(h, 1 + w * 3)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


# -- config ----------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_start_reads_config(make, chat, chat_nd, legacy, bare, image):
    d = await make(chat)
    assert d.decoupled and d.seed_input == "seed" and not d.cumulative and not d.vision and d.image_size is None
    assert "text_input" in d.inputs and d.inputs["stop_words"].dims == (-1,)
    assert (await make(chat, "tensorrt_llm_bls")).cumulative
    assert not (await make(chat_nd)).decoupled
    assert (await make(legacy)).seed_input == "random_seed"
    assert (await make(bare)).seed_input is None
    img = await make(image, "stable_diffusion")
    assert img.is_image_model and img.image_size == (40, 24)
    assert await d.ready()


@pytest.mark.asyncio
async def test_capabilities_come_from_the_model_config(make, chat, chat_nd, bare, vision, image):
    assert TritonInstance("127.0.0.1:1", "ensemble").capabilities is None  # not started: nothing known
    caps = (await make(chat)).capabilities
    assert caps.generates == "text" and caps.decoupled and not caps.vision and not caps.templates_itself
    assert caps.sampling == {"temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"}
    assert {"top_k", "min_tokens", "repetition_penalty", "ignore_eos", "bad_words"} <= caps.extensions
    assert caps.logprobs
    # TensorRT-LLM's ensemble declares the guided decoding inputs and num_return_sequences (the fixtures' configs)
    assert caps.guided_decoding and caps.n
    assert not (await make(chat_nd)).capabilities.logprobs  # one response per answer: no token boundaries
    lean = (await make(bare)).capabilities
    assert "seed" not in lean.sampling and "temperature" not in lean.sampling
    v = (await make(vision)).capabilities
    assert v.vision and v.max_images == 1
    img = (await make(image, "stable_diffusion")).capabilities
    assert img.generates == "images" and img.image_size == (40, 24) and img.negative_prompt


@pytest.fixture(scope="module")
def unguided(e2e):
    t = StandInThread("chat", omit_inputs=("guided_decoding_guide_type", "num_return_sequences")).start()
    yield t
    t.stop()


@pytest.mark.asyncio
async def test_guided_decoding_and_n_need_their_inputs(make, unguided):
    caps = (await make(unguided)).capabilities
    assert not caps.guided_decoding and not caps.n


@pytest.mark.asyncio
async def test_unreachable_start_and_ready():
    inst = TritonInstance(f"127.0.0.1:{free_port()}", "ensemble", connect_timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable) as ei:
        await inst.start()
    assert ei.value.status == 503 and time.monotonic() - t0 < 3
    assert await inst.ready() is False
    await inst.close()


@pytest.mark.asyncio
async def test_unknown_model_is_unavailable(chat):
    inst = TritonInstance(chat.url, "nope")
    with pytest.raises(BackendUnavailable, match="unknown model"):
        await inst.start()
    assert await inst.ready() is False
    await inst.close()


@pytest.mark.asyncio
async def test_an_endpoint_that_is_not_host_port_is_unavailable_not_a_crash():
    inst = TritonInstance("http://triton:8001/v2", "ensemble")
    with pytest.raises(BackendUnavailable, match="not a host:port gRPC target"):
        await inst.start()
    assert await inst.ready() is False
    await inst.close()


# -- generate / stream: text, counts, finish reasons -----------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "chat_nd"])
@pytest.mark.e2e
async def test_generate_text_counts_finish(make, server, request):
    inst = await make(request.getfixturevalue(server))
    prompt = "write a poem about rivers"
    full = generate_tokens(prompt)
    r = await inst.generate(genreq(prompt, 3))
    assert r.text == "".join(full[:3])  # no echo of the prompt: exclude_input_in_output was sent
    assert (r.prompt_tokens, r.completion_tokens, r.finish_reason) == (count_input_tokens(prompt), 3, "length")
    r = await inst.generate(genreq(prompt, 100))
    assert r.text == "".join(full) and r.completion_tokens == len(full) and r.finish_reason == "stop"
    r = await inst.generate(genreq(prompt, len(full)))  # natural end exactly at max_tokens counts as length
    assert r.finish_reason == "length"


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "chat_nd"])
@pytest.mark.e2e
async def test_stream_sums_chunk_counts(make, server, request):
    inst = await make(request.getfixturevalue(server))
    prompt = "count my tokens"
    toks = complete(prompt, 12)
    deltas, res = await collect(inst, genreq(prompt, 12))
    if inst.decoupled:
        assert deltas == toks  # one delta per streamed token
    else:
        assert deltas == ["".join(toks)]
    assert res.text == "".join(toks) == "".join(deltas)
    assert res.completion_tokens == 12 and res.prompt_tokens == 3 and res.finish_reason == "length"


@pytest.mark.asyncio
async def test_bls_cumulative_text_is_diffed(make, chat):
    inst = await make(chat, "tensorrt_llm_bls")
    toks = complete("bls please", 30)
    deltas, res = await collect(inst, genreq("bls please", 30))
    assert deltas == toks and res.text == "".join(toks)
    assert res.completion_tokens == len(toks)
    r = await inst.generate(genreq("bls please", 30))
    assert r.text == "".join(toks)
    # without the detection the cumulative text would be repeated: the override proves the detection matters
    raw = await make(chat, "tensorrt_llm_bls", cumulative=False)
    _, res = await collect(raw, genreq("bls please", 5))
    assert res.text != "".join(complete("bls please", 5))


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["legacy", "chat"])
@pytest.mark.e2e
async def test_seed_sent_under_declared_name(make, server, request):
    inst = await make(request.getfixturevalue(server))
    a = await inst.generate(genreq("seeded", 40, seed=7))
    b = await inst.generate(genreq("seeded", 40, seed=8))
    assert a.text == "".join(generate_tokens("seeded", 7)) and b.text == "".join(generate_tokens("seeded", 8))
    assert a.text != b.text


# -- stop strings ----------------------------------------------------------------------------------------------------
def _stop_case(prompt):
    toks = generate_tokens(prompt)
    full = "".join(toks)
    stop = toks[3][-3:] + toks[4][:3]  # spans a token boundary, e.g. "bor" + " de"
    assert stop in full
    return full, stop


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "chat_nd"])
@pytest.mark.e2e
async def test_stop_string_stripped(make, server, request):
    inst = await make(request.getfixturevalue(server))
    full, stop = _stop_case("stop here please")
    r = await inst.generate(genreq("stop here please", 100, stop=["zzz-never", stop]))
    assert r.text == full[: full.index(stop)] and stop not in r.text and r.finish_reason == "stop"
    deltas, res = await collect(inst, genreq("stop here please", 100, stop=[stop]))
    assert "".join(deltas) == res.text == full[: full.index(stop)]
    assert res.finish_reason == "stop"


@pytest.mark.asyncio
async def test_stream_holds_back_possible_stop_prefix(make, chat):
    inst = await make(chat)
    prompt = "hold back"
    toks = generate_tokens(prompt)
    full = "".join(toks)
    # a stop string whose start is the next token but which never matches: held back, then released
    fake_stop = toks[2] + "#"
    deltas, res = await collect(inst, genreq(prompt, 100, stop=[fake_stop]))
    assert "".join(deltas) == res.text == full and res.finish_reason == "stop"
    assert toks[2] not in deltas  # the token was held back and released later together with what followed
    # a real stop spanning tokens: no delta ever shows any part of it
    _, stop = _stop_case(prompt)
    deltas, res = await collect(inst, genreq(prompt, 100, stop=[stop]))
    emitted = "".join(deltas)
    assert emitted == full[: full.index(stop)]  # deltas are never retracted: no part of the stop was ever sent
    assert res.finish_reason == "stop"


@pytest.mark.asyncio
async def test_stop_with_max_tokens_reached_is_stop(make, chat_nd):
    inst = await make(chat_nd)
    toks = generate_tokens("edge")
    r = await inst.generate(genreq("edge", 4, stop=[toks[3].strip()]))
    assert r.text == "".join(toks[:3]) + " " and r.finish_reason == "stop"


# -- parameters the model cannot honour ------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_unsupported_parameters_are_400(make, bare, chat):
    inst = await make(bare)
    for req, param in [
        (genreq("x", 5, seed=1), "seed"),
        (genreq("x", 5, temperature=0.5), "temperature"),
        (genreq("x", 5, image_urls=["https://example.com/a.png"]), "messages"),
    ]:
        with pytest.raises(UnsupportedParameter) as ei:
            inst.check(req)
        assert ei.value.status == 400 and ei.value.param == param
        with pytest.raises(UnsupportedParameter):
            await inst.generate(req)
    inst.check(genreq("x", 5, top_p=0.9, stop=["a"]))  # declared / handled client-side: fine
    # token counts not declared: the gateway's estimate (max of words and characters / 4: 3 words, 13 characters)
    r = await inst.generate(genreq("one two three", 5))
    assert r.prompt_tokens == 4 and r.completion_tokens == 5 and r.finish_reason == "length"
    with pytest.raises(InvalidRequest):
        (await make(chat)).check(genreq("x", 0))


# -- vision and images -----------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_vision_image_reaches_engine(make, vision):
    inst = await make(vision)
    assert inst.vision
    pix = b"not really a png"
    url = "data:image/png;base64," + base64.b64encode(pix).decode()
    r = await inst.generate(genreq("<image> describe", 40, image_urls=[url]))
    assert r.text.startswith("image-" + hashlib.sha256(pix).hexdigest()[:8])
    with pytest.raises(InvalidRequest):
        inst.check(genreq("<image>", 5, image_urls=["ftp://x/y.png"]))
    with pytest.raises(BackendError, match="placeholder") as ei:  # engine-side error, no output yet
        await inst.generate(genreq("no placeholder", 5, image_urls=[url]))
    assert ei.value.partial is False


@pytest.mark.asyncio
async def test_vision_takes_one_image_per_request_in_this_release(make, vision):
    inst = await make(vision)
    assert inst.max_images == 1  # the pinned multimodal ensemble: image_url_input dims [1]
    two = genreq("<image><image>", 5, image_urls=["https://e.x/a.png", "https://e.x/b.png"])
    with pytest.raises(InvalidRequest, match="at most 1 image") as ei:
        inst.check(two)
    assert ei.value.param == "messages"
    # no exclude_input_in_output / token-count inputs in the multimodal ensemble: the gateway sends none of them
    request = service_pb2.ModelInferRequest.FromString(
        inst._llm_request(genreq("<image> hi", 5, image_urls=["https://e.x/a.png"]), stream=True)
    )
    assert {t.name for t in request.inputs} == {"text_input", "max_tokens", "stream", "image_url_input"}
    assert [o.name for o in request.outputs] == ["text_output"]
    r = await inst.generate(genreq("<image> hi", 5, image_urls=["https://e.x/a.png"]))
    assert r.completion_tokens == 5 and r.prompt_tokens == 3  # estimated here (10 chars / 4): the model cannot tell


@pytest.mark.asyncio
async def test_asks_only_for_the_outputs_it_reads(make, chat):
    inst = await make(chat)
    request = service_pb2.ModelInferRequest.FromString(inst._llm_request(genreq("x", 3), stream=True))
    assert [o.name for o in request.outputs] == ["text_output", "num_input_tokens", "num_output_tokens"]
    assert len(inst.outputs) > 10  # the real ensemble declares log probs, logits, timings, kv-cache stats...
    r = await inst.generate(genreq("only what we read", 4))
    assert r.text == "".join(complete("only what we read", 4)) and r.completion_tokens == 4


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_ensemble_decoupled_through_its_steps(make):
    """A server that reports the ensemble's own config unchanged (no transaction policy): the gateway reads the
    steps' configs and streams, since the decoupled tensorrt_llm step makes the ensemble decoupled."""
    t = StandInThread("chat").start()
    try:
        t.server.models["ensemble"].cfg.model_transaction_policy.decoupled = False
        inst = await make(t)
        assert inst.decoupled
        pieces, result = await collect(inst, genreq("steps", 6))
        assert pieces == complete("steps", 6) and result.completion_tokens == 6
    finally:
        t.stop()


@pytest.mark.asyncio
async def test_generate_images_png(make, image, chat):
    inst = await make(image, "stable_diffusion")
    pngs = await inst.generate_images(ImageRequest("a lighthouse", 3))
    assert len(pngs) == 3 and pngs[0] == pngs[1] == pngs[2]
    px = decode_png(pngs[0])
    assert px.shape == (24, 40, 3)  # (height, width) from image_size (40, 24)
    assert np.array_equal(px, generate_image("a lighthouse", "", 40, 24))
    neg = await inst.generate_images(ImageRequest("a lighthouse", 1, negative_prompt="fog"))
    assert neg[0] != pngs[0]
    with pytest.raises(InvalidRequest):
        await (await make(chat)).generate_images(ImageRequest("x", 1))
    assert decode_png(encode_png(np.zeros((2, 3, 3), np.uint8))).shape == (2, 3, 3)


# -- failures --------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "chat_nd"])
@pytest.mark.e2e
async def test_hang_times_out_within_deadline(make, server, request):
    srv = request.getfixturevalue(server)
    inst = await make(srv, deadline_s=0.4)
    cancelled = srv.server.requests_cancelled
    for call in (inst.generate, lambda r: collect(inst, r)):
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout) as ei:
            await call(genreq("[standin:hang]", 1))  # non-streamed on decoupled: deadline + 1 token at 5/s
        assert 0.35 < time.monotonic() - t0 < 1.5
        assert ei.value.status == 504 and ei.value.partial is False
    assert await wait_until(lambda: srv.server.requests_cancelled >= cancelled + 2)  # the engine was told


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_silent_stream_idle_timeout_is_partial():
    # first response may take deadline_s (0.3 s arrives fine), every later one only idle_timeout_s (0.1 s: too slow)
    t = StandInThread("chat", token_delay=0.3).start()
    try:
        inst = TritonInstance(t.url, "ensemble", deadline_s=2, idle_timeout_s=0.1)
        await inst.start()
        got = []
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout) as ei:
            async for item in inst.stream(genreq("slow", 20)):
                got.append(item)
        assert time.monotonic() - t0 < 1.0
        assert len(got) == 1 and isinstance(got[0], Delta) and ei.value.partial is True
        assert await wait_until(lambda: t.server.requests_cancelled == 1)
        await inst.close()
    finally:
        t.kill()


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "chat_nd"])
@pytest.mark.e2e
async def test_refuse_is_unavailable(make, server, request):
    srv = request.getfixturevalue(server)
    inst = await make(srv)
    with pytest.raises(BackendUnavailable) as ei:
        await inst.generate(genreq("[standin:refuse] hi", 5))
    assert ei.value.status == 503 and ei.value.partial is False
    with pytest.raises(BackendUnavailable):
        await collect(inst, genreq("[standin:refuse] hi", 5))
    srv.server.mode = "refuse"
    try:
        with pytest.raises(BackendUnavailable):
            await inst.generate(genreq("fine prompt", 5))
    finally:
        srv.server.mode = None
    assert (await inst.generate(genreq("fine prompt", 5))).completion_tokens == 5


@pytest.mark.asyncio
async def test_die_mid_stream_is_partial_backend_error(make, chat):
    inst = await make(chat)
    got = []
    with pytest.raises(BackendError) as ei:
        async for item in inst.stream(genreq("x [standin:die:3]", 30)):
            got.append(item.text)
    assert type(ei.value) is BackendError and ei.value.partial is True and ei.value.status == 502
    assert "".join(got) == "".join(complete("x [standin:die:3]", 3))
    with pytest.raises(BackendError) as ei:  # dies before any output: an error, not partial
        await inst.generate(genreq("x [standin:die:0]", 30))
    assert ei.value.partial is False and not isinstance(ei.value, BackendUnavailable)


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_server_gone_is_unavailable():
    t = StandInThread("chat").start()
    inst = TritonInstance(t.url, "ensemble", connect_timeout_s=0.5)
    await inst.start()
    t.kill()
    with pytest.raises(BackendUnavailable):
        await inst.generate(genreq("x", 5))
    assert await inst.ready() is False
    await inst.close()


# -- the caller goes away --------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.e2e
async def test_early_close_cancels_engine(make):
    t = StandInThread("chat", token_delay=0.02).start()
    try:
        inst = TritonInstance(t.url, "ensemble")
        await inst.start()
        gen = inst.stream(genreq("a long answer please", 40))
        first = await gen.__anext__()
        assert isinstance(first, Delta)
        await gen.aclose()
        assert await wait_until(lambda: t.server.requests_cancelled == 1)
        assert t.server.requests_completed == 0 and inst.outstanding == 0

        async def consume():
            async for _ in inst.stream(genreq("another long answer", 40)):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(lambda: t.server.requests_cancelled == 2)
        assert t.server.requests_completed == 0
        await inst.close()
    finally:
        t.kill()


@pytest.mark.asyncio
async def test_concurrent_streams_share_one_channel(make, chat):
    inst = await make(chat)
    prompts = [f"prompt number {i}" for i in range(8)]
    results = await asyncio.gather(*(inst.generate(genreq(p, 10)) for p in prompts))
    assert [r.text for r in results] == ["".join(complete(p, 10)) for p in prompts]
    assert inst.outstanding == 0


@pytest.mark.asyncio
async def test_request_build_failure_is_backend_error_not_cancellation(make, chat):
    # the request is built (and validated) before the stream opens: a value the model's type cannot hold is a 400
    inst = await make(chat)
    with pytest.raises(InvalidRequest, match="cannot encode"):
        await inst.generate(genreq("x", 2**40))  # max_tokens is INT32
    with pytest.raises(InvalidRequest, match="cannot encode"):
        async for _ in inst.stream(genreq("x", 2**40)):
            pass
    assert inst.outstanding == 0


# -- a call lost by the transport, not refused by the engine -----------------------------------------------------------
def _lose_transport(inst: TritonInstance, peer) -> None:
    """From now on inst's calls go to a peer that resets every HTTP/2 stream (the model config was read first)."""
    from gateway.backends import h2c

    inst._channel = h2c.Channel(peer.url)


@pytest.mark.e2e
@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "chat_nd"])
async def test_a_stream_reset_by_the_transport_is_unavailability(make, server, request):
    """A reset HTTP/2 stream (INTERNAL_ERROR) is INTERNAL 'Received RST_STREAM with error code 2' by the gRPC spec's
    table (the soak's flake, once grpc's 'Internal error from Core'): the transport lost the call and the engine said
    nothing, so before any output it is BackendUnavailable (retried on another instance), never the engine's 502."""
    from .h2reset import ResettingPeer

    inst = await make(request.getfixturevalue(server))
    peer = ResettingPeer()
    try:
        _lose_transport(inst, peer)
        with pytest.raises(BackendUnavailable) as ei:
            await inst.generate(genreq("hi", 5))
        assert ei.value.partial is False
        assert "Received RST_STREAM with error code 2" in ei.value.message
        with pytest.raises(BackendUnavailable):
            await collect(inst, genreq("hi", 5))
        assert peer.resets == 2
    finally:
        peer.close()


def test_internal_from_a_reset_stream_is_unavailability_and_the_engines_own_is_not():
    import grpc

    inst = TritonInstance("127.0.0.1:1", "ensemble")
    lost = inst._from_status(grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2", partial=False)
    assert isinstance(lost, BackendUnavailable) and lost.status == 503
    late = inst._from_status(grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2", partial=True)
    assert type(late) is BackendError and late.partial  # output reached the caller: an error event, no retry
    engine = inst._from_status(grpc.StatusCode.INTERNAL, "[TensorRT-LLM][ERROR] Assertion failed", partial=False)
    assert type(engine) is BackendError


@pytest.mark.asyncio
async def test_a_unary_request_whose_transport_is_lost_is_retried_on_another_instance(chat):
    """The CI flake end to end at the balancer: a non-streamed request (the decoupled model's stream path) on an
    instance whose transport fails is answered by the other instance, every time."""
    from gateway.balancer import InstancePool, StaticEndpoints
    from gateway.flow import _retryable_unary

    from .h2reset import ResettingPeer

    other = StandInThread("chat").start()
    peer = ResettingPeer()
    pool = InstancePool("svc", StaticEndpoints([chat.url, other.url]), lambda ep: TritonInstance(ep, "ensemble"))
    try:
        await pool.start()
        broken = next(i for i in pool.instances if i.endpoint == chat.url)
        _lose_transport(broken.backend, peer)
        served = []
        for _ in range(4):
            result = await pool.run(lambda i: i.backend.generate(genreq("hi", 3)), retryable=_retryable_unary)
            served.append(result.completion_tokens)
        assert served == [3, 3, 3, 3] and peer.resets >= 1  # the broken one was tried, and the request survived
    finally:
        await pool.close()
        for i in pool.instances:
            await i.backend.close()
        peer.close()
        other.stop()


@pytest.mark.asyncio
async def test_a_collected_stream_and_one_whole_answer_agree(make, chat):
    """--non-streamed stream (the default: the token stream collected, so a cancelled request has its counts) and
    whole (one answer at the end) give the same answer; a stop string is cut either way."""
    collected, whole = await make(chat), await make(chat, collect=False)
    for req in (lambda: genreq("tell me", 12), lambda: genreq("tell me", 30, stop=[" the"])):
        a, b = await collected.generate(req()), await whole.generate(req())
        assert (a.text, a.completion_tokens, a.prompt_tokens, a.finish_reason) == (
            b.text,
            b.completion_tokens,
            b.prompt_tokens,
            b.finish_reason,
        )
    started = chat.server.tokens_generated
    r = genreq("tell me", 12)
    await collected.generate(r)
    assert r.work.completion_tokens == chat.server.tokens_generated - started  # every token counted as it came


# -- guided decoding, n > 1, end tokens (issue 19) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def no_decoder(e2e):
    t = StandInThread("chat", guided=False).start()  # the inputs are declared, the engine has no guided decoder
    yield t
    t.stop()


@pytest.mark.asyncio
async def test_guided_decoding_needs_the_engines_guided_decoder(make, chat, no_decoder):
    assert (await make(chat)).guided and (await make(chat, "tensorrt_llm_bls")).capabilities.guided_decoding
    inst = await make(no_decoder)
    assert "guided_decoding_guide_type" in inst.inputs and not inst.capabilities.guided_decoding
    req = genreq("hi", 20, guide=Guide("json_schema", '{"type":"object"}'))
    with pytest.raises(UnsupportedParameter) as e:
        await inst.generate(req)
    assert e.value.param == "response_format" and "guided decoding" in e.value.message
    assert no_decoder.server.requests_started == 0  # refused before the engine


def test_the_guided_decoder_rule_is_the_backends():
    from tritonclient.grpc import model_config_pb2 as mc

    from gateway.backends.triton import has_guided_decoder

    def cfg(backend, **params):
        c = mc.ModelConfig(backend=backend)
        for k, v in params.items():
            c.parameters[k].string_value = v
        return c

    assert has_guided_decoder(
        cfg("tensorrtllm", guided_decoding_backend="xgrammar", xgrammar_tokenizer_info_path="/t.json")
    )
    assert not has_guided_decoder(cfg("tensorrtllm", guided_decoding_backend="xgrammar"))  # C++ needs the info file
    assert not has_guided_decoder(
        cfg(
            "tensorrtllm",
            guided_decoding_backend="xgrammar",
            xgrammar_tokenizer_info_path="${xgrammar_tokenizer_info_path}",
        )
    )
    assert has_guided_decoder(cfg("python", guided_decoding_backend="xgrammar", tokenizer_dir="/tok"))
    assert not has_guided_decoder(cfg("python", guided_decoding_backend="outlines", tokenizer_dir="/tok"))


@pytest.mark.asyncio
async def test_the_guide_goes_as_the_two_tensors(make, chat):
    inst = await make(chat)
    schema = '{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}'
    r = await inst.generate(genreq("hi", 50, guide=Guide("json_schema", schema)))
    got = chat.server.received[-1]
    assert got["guided_decoding_guide_type"] == ["json_schema"] and got["guided_decoding_guide"] == [schema]
    assert isinstance(json.loads(r.text)["a"], int)


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["chat", "bls"])
async def test_n_sequences_are_told_apart_by_sequence_index(make, chat, server):
    inst = await make(chat, "ensemble" if server == "chat" else "tensorrt_llm_bls")
    req = genreq("Count", 5, n=3)
    whole = await inst.generate(req)
    assert len(whole.choices()) == 3 and len({c.text for c in whole.choices()}) == 3
    assert whole.completion_tokens == sum(c.completion_tokens for c in whole.choices()) == 15
    assert whole.text == "".join(complete("Count", 5))  # sequence 0 is the n = 1 answer
    assert chat.server.received[-1]["num_return_sequences"] == [3]
    stream_req = genreq("Count", 5, n=3)
    texts: dict[int, str] = {}
    result = None
    async for item in inst.stream(stream_req):
        if isinstance(item, Delta):
            texts[item.index] = texts.get(item.index, "") + item.text
        else:
            result = item
    assert texts == {i: c.text for i, c in enumerate(whole.choices())}
    assert result is not None and result.completion_tokens == 15 and stream_req.work.completion_tokens == 15


@pytest.mark.asyncio
async def test_n_needs_num_return_sequences_and_a_stream(make, chat_nd, unguided):
    for server in (chat_nd, unguided):
        with pytest.raises(UnsupportedParameter) as e:
            (await make(server)).check(genreq("x", 5, n=2))
        assert e.value.param == "n"


@pytest.mark.asyncio
async def test_n_beyond_beam_width_is_refused_before_the_engine(make, chat):
    """TensorRT-LLM's executor takes at most beam_width sequences with beam search (SamplingConfig::
    checkNumReturnSequences); the engine would fail the stream with an error message (a 502), so it is a 400 first.
    Without beams any n goes (the stand-in checks the same rule)."""
    inst = await make(chat)
    with pytest.raises(InvalidRequest) as e:
        inst.check(genreq("x", 5, n=5, extensions={"beam_width": 4}))
    assert e.value.param == "n" and "beam_width (4)" in e.value.message
    inst.check(genreq("x", 5, n=4, extensions={"beam_width": 4}))
    whole = await inst.generate(genreq("Count", 3, n=70))
    assert len(whole.choices()) == 70


@pytest.mark.asyncio
async def test_end_tokens_go_as_stop_words_and_never_reach_the_caller(make, chat):
    inst = await make(chat)
    words = "".join(complete("Count", 12)).split(" ")
    end = " " + words[3]  # the stand-in emits what the model would: its end token stays in the text, as stop words do
    req = genreq("Count", 12)
    req.end_tokens = ("<|eot_id|>", end)
    r = await inst.generate(req)
    assert chat.server.received[-1]["stop_words"] == ["<|eot_id|>", end]
    assert r.text == " ".join(words[:3]) and r.finish_reason == "stop"
    req = genreq("Count", 12, stop=["zzz"])
    req.end_tokens = (end,)
    texts, r = await collect(inst, req)
    assert "".join(texts) == " ".join(words[:3]) and chat.server.received[-1]["stop_words"] == ["zzz", end]


async def test_responses_that_came_in_one_read_are_marked_to_be_written_together(make, chat):
    """The channel's socket is not read (transport paused) until three responses or more wait in it, so one read
    brings them: their deltas come out marked Delta.more but the last of the read, for the gateway to write them in
    one write, and the text is the whole answer."""
    import fcntl
    import termios

    inst = await make(chat)
    await inst.generate(genreq("warm", 1))  # the channel's connection is open and idle
    transport = inst._channel._conn.transport
    fd = transport.get_extra_info("socket").fileno()
    prompt = "several in one read"
    toks = complete(prompt, 12)
    transport.pause_reading()
    stream = inst.stream(genreq(prompt, 12))
    first = asyncio.ensure_future(stream.__anext__())  # sends the request; its answer waits in the socket
    buf = bytearray(4)
    assert await wait_until(
        lambda: fcntl.ioctl(fd, termios.FIONREAD, buf) == 0 and int.from_bytes(buf, "little") > 600, 10
    )
    transport.resume_reading()  # one read: three responses or more (~170 bytes each)
    items = [await first] + [item async for item in stream]
    *deltas, result = items
    assert isinstance(result, GenResult) and result.text == "".join(toks) and result.completion_tokens == 12
    marks = [d.more for d in deltas]
    assert [d.text for d in deltas] == toks  # nothing lost or reordered
    assert marks[:2] == [True, True]  # the first read's deltas: marked but its last
    assert marks[-1] is False  # the last delta of a read (here of the answer) is not


async def test_an_engine_error_in_the_same_read_comes_after_the_deltas_before_it(make, chat, monkeypatch):
    """Responses taken from one read, the last of them the engine's error: every delta before it reaches the caller
    (the last unmarked), then the error, partial. The call is the real h2c.Call, its queue filled as the
    connection fills it from one read (nothing is sent)."""
    from tritonclient.grpc import service_pb2

    def message(text: bytes = b"", error: str = "") -> service_pb2.ModelStreamInferResponse:
        m = service_pb2.ModelStreamInferResponse(error_message=error)
        if not error:
            m.infer_response.outputs.add(name="text_output", datatype="BYTES", shape=[1, 1])
            m.infer_response.raw_output_contents.append(struct.pack("<I", len(text)) + text)
        return m

    inst = await make(chat)
    opened = inst._open_stream

    def fed(request, sink=None, **kw):
        call = opened(request, sink, **kw)
        call._started = True  # nothing is sent: the messages below are what one read brought
        for m in (message(b"a"), message(b"b"), message(b"c"), message(error="out of blocks")):
            call._messages.append(m)
        return call

    monkeypatch.setattr(inst, "_open_stream", fed)
    got = []
    with pytest.raises(BackendError) as ei:
        async for item in inst.stream(genreq("x", 8)):
            got.append((item.text, item.more))
    assert got == [("a", True), ("b", True), ("c", False)]
    assert "out of blocks" in ei.value.message and ei.value.partial is True
