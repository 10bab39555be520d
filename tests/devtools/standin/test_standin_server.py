"""The stand-in engine against the real tritonclient (sync and aio), as the gateway would see Triton."""

import asyncio
import base64
import hashlib
import logging
import struct
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.grpc.aio as tga
from tritonclient.utils import InferenceServerException

from devtools.standin import StandInServer, complete, count_input_tokens, generate_image, generate_tokens
from devtools.standin.models import repo_spec
from devtools.standin.testing import StandInThread, running_standin
from infra.modelrepo import build_repository, templates
from infra.modelrepo import load as load_repo


def tensor(name, value, dtype):
    if dtype == "BYTES":
        arr = np.array([[v.encode() if isinstance(v, str) else v for v in value]], dtype=object)
    else:
        arr = np.array([value], dtype={"INT32": np.int32, "FP32": np.float32, "UINT64": np.uint64, "BOOL": bool}[dtype])
    t = tg.InferInput(name, list(arr.shape), dtype)
    t.set_data_from_numpy(arr)
    return t


def llm_inputs(prompt, max_tokens, *, exclude=None, counts=False, stream=None, stop=(), seed=None, images=()):
    ins = [tensor("text_input", [prompt], "BYTES"), tensor("max_tokens", [max_tokens], "INT32")]
    if exclude is not None:
        ins.append(tensor("exclude_input_in_output", [exclude], "BOOL"))
    if counts:
        ins += [tensor("return_num_input_tokens", [True], "BOOL"), tensor("return_num_output_tokens", [True], "BOOL")]
    if stream is not None:
        ins.append(tensor("stream", [stream], "BOOL"))
    if stop:
        ins.append(tensor("stop_words", list(stop), "BYTES"))
    if seed is not None:
        ins.append(tensor("seed", [seed], "UINT64"))
    if images:
        ins.append(tensor("image_url_input", list(images), "BYTES"))
    return ins


def text_of(result):
    return result.as_numpy("text_output").reshape(-1)[0].decode()


async def stream_all(url, model, inputs, **kw):
    client = tga.InferenceServerClient(url)
    try:

        async def reqs():
            yield {"model_name": model, "inputs": inputs, **kw}

        out = []
        async for result, error in client.stream_infer(reqs()):
            out.append((result, error))
        return out
    finally:
        await client.close()


# -- health, metadata, config ----------------------------------------------------------------------------------------
def test_health_and_metadata(chat):
    c = tg.InferenceServerClient(chat.url)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("ensemble") and c.is_model_ready("tensorrt_llm_bls")
    assert not c.is_model_ready("nope")
    assert "standin" in c.get_server_metadata().name
    md = c.get_model_metadata("ensemble", as_json=True)
    shapes = {i["name"]: (i["datatype"], i["shape"]) for i in md["inputs"]}
    assert shapes["text_input"] == ("BYTES", ["-1", "1"])
    assert shapes["stop_words"] == ("BYTES", ["-1", "-1"])
    assert shapes["seed"] == ("UINT64", ["-1", "1"])
    with pytest.raises(InferenceServerException) as ei:
        c.get_model_config("nope")
    assert "NOT_FOUND" in ei.value.status() and "unknown model" in ei.value.message()


def test_model_config_shapes(chat, chat_nd):
    c = tg.InferenceServerClient(chat.url)
    cfg = c.get_model_config("ensemble").config
    assert cfg.max_batch_size > 0 and cfg.model_transaction_policy.decoupled
    ins = {i.name: i for i in cfg.input}
    assert not ins["text_input"].optional and list(ins["text_input"].dims) == [1]
    assert ins["max_tokens"].data_type == tg.model_config_pb2.TYPE_INT32 and not ins["max_tokens"].optional
    assert ins["stop_words"].optional and list(ins["stop_words"].dims) == [-1]
    assert ins["seed"].data_type == tg.model_config_pb2.TYPE_UINT64
    assert ins["exclude_input_in_output"].data_type == tg.model_config_pb2.TYPE_BOOL
    assert {"text_output", "num_input_tokens", "num_output_tokens", "cum_log_probs", "output_log_probs"} <= {
        o.name for o in cfg.output
    }
    assert "image_url_input" not in ins
    bls = c.get_model_config("tensorrt_llm_bls").config
    assert bls.parameters["accumulate_tokens"].string_value.lower() == "true"
    nd = tg.InferenceServerClient(chat_nd.url).get_model_config("ensemble").config
    assert not nd.model_transaction_policy.decoupled


@pytest.mark.parametrize("profile", ["chat", "vision", "image"])
@pytest.mark.e2e
def test_configs_are_the_builders_output(tmp_path, profile):
    """What the stand-in serves is what infra.modelrepo writes for the pinned release (NVIDIA's templates), except
    that a loaded ensemble with a decoupled step reports itself decoupled, as Triton does."""
    spec = repo_spec(profile)
    build_repository(spec, templates.for_task(spec.task), tmp_path / "repo")
    built = load_repo(tmp_path / "repo")
    with StandInThread(profile) as t:
        c = tg.InferenceServerClient(t.url)
        assert set(t.server.models) == set(built)
        for name, cfg in built.items():
            served = c.get_model_config(name).config
            if cfg.platform == "ensemble":
                assert served.model_transaction_policy.decoupled and not cfg.model_transaction_policy.decoupled
                cfg.model_transaction_policy.decoupled = True
            assert served == cfg, name


def test_composing_models_serve_config_but_not_inference(chat):
    c = tg.InferenceServerClient(chat.url)
    assert c.get_model_config("tensorrt_llm").config.backend == "tensorrtllm"
    assert c.is_model_ready("preprocessing")
    with pytest.raises(InferenceServerException) as ei:
        c.infer("preprocessing", [tensor("QUERY", ["x"], "BYTES")])
    assert "composing model" in ei.value.message()


@pytest.mark.e2e
def test_serves_a_built_repository(tmp_path):
    spec = repo_spec("chat", decoupled=False)
    build_repository(spec, templates.for_task("chat"), tmp_path / "repo")
    with StandInThread("chat", model_repo=str(tmp_path / "repo")) as t:
        c = tg.InferenceServerClient(t.url)
        assert not c.get_model_config("ensemble").config.model_transaction_policy.decoupled
        assert text_of(c.infer("ensemble", llm_inputs("from disk", 3))) == "".join(complete("from disk", 3))


@pytest.mark.e2e
def test_legacy_seed_name():
    with StandInThread("chat", seed_name="random_seed") as t:
        names = {i.name for i in tg.InferenceServerClient(t.url).get_model_config("ensemble").config.input}
    assert "random_seed" in names and "seed" not in names


# -- unary -----------------------------------------------------------------------------------------------------------
def test_unary_refused_on_decoupled(chat):
    c = tg.InferenceServerClient(chat.url)
    with pytest.raises(InferenceServerException) as ei:
        c.infer("ensemble", llm_inputs("hi", 4))
    assert "UNIMPLEMENTED" in ei.value.status() and "decoupled" in ei.value.message()


def test_unary_echo_and_token_counts(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    prompt = "tell me a story"
    expected = "".join(complete(prompt, 100))
    echoed = c.infer("ensemble", llm_inputs(prompt, 100, exclude=False))
    assert text_of(echoed) == prompt + " " + expected
    # without the input, tensorrt_llm's exclude_input_in_output parameter decides (the recipe fills it True)
    assert text_of(c.infer("ensemble", llm_inputs(prompt, 100))) == expected
    assert echoed.as_numpy("num_output_tokens") is None and echoed.as_numpy("num_input_tokens") is None
    r = c.infer("ensemble", llm_inputs(prompt, 100, exclude=True, counts=True))
    assert text_of(r) == expected
    assert r.as_numpy("num_input_tokens").tolist() == [[count_input_tokens(prompt)]] == [[4]]
    assert r.as_numpy("num_output_tokens").tolist() == [[len(complete(prompt, 100))]]
    assert r.as_numpy("text_output").shape == (1, 1)


def test_generation_deterministic_and_seeded(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    a = text_of(c.infer("ensemble", llm_inputs("p q", 50, exclude=True, seed=1)))
    b = text_of(c.infer("ensemble", llm_inputs("p q", 50, exclude=True, seed=1)))
    d = text_of(c.infer("ensemble", llm_inputs("p q", 50, exclude=True, seed=2)))
    assert a == b == "".join(generate_tokens("p q", 1))
    assert a != d
    assert 8 <= len(generate_tokens("p q", 1)) <= 40


def test_stop_string_kept_and_max_tokens(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    prompt = "stop test"
    toks = generate_tokens(prompt)
    k = 3
    word = toks[k].strip()
    first = next(i for i, t in enumerate(toks) if word in t)
    r = c.infer("ensemble", llm_inputs(prompt, 100, exclude=True, stop=[word, "never-there"], counts=True))
    assert text_of(r) == "".join(toks[: first + 1])  # the stop string stays, nothing after it
    assert text_of(r).endswith(word)
    assert r.as_numpy("num_output_tokens")[0, 0] == first + 1
    r = c.infer("ensemble", llm_inputs(prompt, 2, exclude=True, counts=True))
    assert text_of(r) == "".join(toks[:2]) and r.as_numpy("num_output_tokens")[0, 0] == 2


def test_min_tokens_end_id_and_log_probs(chat_nd):
    """TensorRT-LLM's extension inputs: min_tokens postpones the end token, end_id -1 never ends before max_tokens,
    return_log_probs adds output_log_probs [batch, beam, tokens] and cum_log_probs [batch, beam]."""
    c = tg.InferenceServerClient(chat_nd.url)
    prompt = "extensions"
    natural = len(generate_tokens(prompt))
    base = llm_inputs(prompt, 100, exclude=True, counts=True)
    r = c.infer("ensemble", base + [tensor("min_tokens", [natural + 5], "INT32")])
    assert r.as_numpy("num_output_tokens")[0, 0] == natural + 5
    assert text_of(r).startswith("".join(generate_tokens(prompt)))  # the same words, continued
    r = c.infer("ensemble", base + [tensor("end_id", [-1], "INT32")])
    assert r.as_numpy("num_output_tokens")[0, 0] == 100
    r = c.infer("ensemble", base + [tensor("return_log_probs", [True], "BOOL")])
    lps = r.as_numpy("output_log_probs")
    assert lps.shape == (1, 1, natural) and (lps < 0).all()
    assert r.as_numpy("cum_log_probs").shape == (1, 1)
    assert abs(float(r.as_numpy("cum_log_probs")[0, 0]) - float(lps.sum())) < 1e-3
    unasked = c.infer("ensemble", base).as_numpy("output_log_probs")  # every declared output comes back: a placeholder
    assert unasked is None or not unasked.any()


def test_raw_output_contents_wire_format(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    wanted = [tg.InferRequestedOutput(n) for n in ("text_output", "num_input_tokens", "num_output_tokens")]
    r = c.infer("ensemble", llm_inputs("wire", 5, exclude=True, counts=True), outputs=wanted)
    resp = r.get_response()
    assert len(resp.raw_output_contents) == len(resp.outputs) == 3
    for out, raw in zip(resp.outputs, resp.raw_output_contents):
        assert not out.contents.bytes_contents and not out.contents.int_contents
        assert list(out.shape) == [1, 1]
        if out.name == "text_output":
            (n,) = struct.unpack_from("<I", raw)
            assert raw[4:] == "".join(complete("wire", 5)).encode() and n == len(raw) - 4
        else:
            assert len(raw) == 4


def test_no_requested_outputs_returns_every_declared_output(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    r = c.infer("ensemble", llm_inputs("all", 3))
    declared = {o.name for o in c.get_model_config("ensemble").config.output}
    got = {o.name for o in r.get_response().outputs}
    assert got == declared - {"num_input_tokens", "num_output_tokens"}  # counts only when asked for
    assert r.as_numpy("cum_log_probs").shape == (1, 1) and r.as_numpy("generation_logits").shape == (1, 1, 1, 1)


def test_request_errors(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    with pytest.raises(InferenceServerException) as ei:
        c.infer("ensemble", [tensor("text_input", ["x"], "BYTES")])
    assert "INVALID_ARGUMENT" in ei.value.status()
    assert "missing required input(s) ['max_tokens']" in ei.value.message()
    with pytest.raises(InferenceServerException) as ei:
        c.infer("ensemble", llm_inputs("x", 3) + [tensor("bogus", [1], "INT32")])
    assert "INVALID_ARGUMENT" in ei.value.status() and "unexpected inference input 'bogus'" in ei.value.message()
    with pytest.raises(InferenceServerException) as ei:
        c.infer("ensemble", [tensor("text_input", ["x"], "BYTES"), tensor("max_tokens", [1.0], "FP32")])
    assert "data-type is 'FP32'" in ei.value.message()
    with pytest.raises(InferenceServerException) as ei:
        c.infer("nope", llm_inputs("x", 3))
    assert "NOT_FOUND" in ei.value.status()


# -- streaming -------------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_stream_decoupled_token_by_token(chat):
    prompt = "stream me"
    toks = complete(prompt, 100)
    out = await stream_all(chat.url, "ensemble", llm_inputs(prompt, 100, exclude=True, counts=True, stream=True))
    assert all(e is None for _, e in out)
    assert len(out) == len(toks)
    assert [text_of(r) for r, _ in out] == toks
    finals = [r.get_response().parameters["triton_final_response"].bool_param for r, _ in out]
    assert finals == [False] * (len(toks) - 1) + [True]
    assert all(r.as_numpy("num_output_tokens")[0, 0] == 1 for r, _ in out)


@pytest.mark.asyncio
async def test_stream_bls_is_cumulative(chat):
    toks = complete("bls", 6)
    out = await stream_all(chat.url, "tensorrt_llm_bls", llm_inputs("bls", 6, exclude=True, stream=True))
    assert [text_of(r) for r, _ in out] == ["".join(toks[: i + 1]) for i in range(len(toks))]


@pytest.mark.asyncio
async def test_stream_on_non_decoupled(chat_nd):
    out = await stream_all(chat_nd.url, "ensemble", llm_inputs("nd", 7, exclude=True, stream=False))
    assert len(out) == 1 and out[0][0].get_response().parameters["triton_final_response"].bool_param
    assert text_of(out[0][0]) == "".join(complete("nd", 7))
    out = await stream_all(chat_nd.url, "ensemble", llm_inputs("nd", 7, stream=True))
    assert len(out) == 1 and out[0][0] is None and "decoupled" in out[0][1].message()


@pytest.mark.asyncio
async def test_stream_errors_arrive_in_stream(chat):
    out = await stream_all(chat.url, "ensemble", [tensor("text_input", ["x"], "BYTES")])
    assert len(out) == 1 and out[0][0] is None and "missing required input" in out[0][1].message()


# -- vision and images -----------------------------------------------------------------------------------------------
def test_vision_output_depends_on_image(vision):
    c = tg.InferenceServerClient(vision.url)
    assert "image_url_input" in {i.name for i in c.get_model_config("ensemble").config.input}
    pix = b"\x89PNG fake image bytes"
    url = "data:image/png;base64," + base64.b64encode(pix).decode()
    other = "https://example.com/cat.png"
    prompt = "<image> what is this?"
    ins = {i.name: i for i in c.get_model_config("ensemble").config.input}
    assert list(ins["image_url_input"].dims) == [1]  # one image per request in this release
    assert "exclude_input_in_output" not in ins and "return_num_input_tokens" not in ins
    vision_in = lambda u: llm_inputs(prompt, 50, images=[u])  # noqa: E731
    with pytest.raises(InferenceServerException):  # the vision ensemble is decoupled too: streams only
        c.infer("ensemble", vision_in(url))
    out1 = asyncio.run(stream_all(vision.url, "ensemble", vision_in(url)))
    out2 = asyncio.run(stream_all(vision.url, "ensemble", vision_in(other)))
    t1, t2 = text_of(out1[0][0]), text_of(out2[0][0])
    assert t1.startswith("image-" + hashlib.sha256(pix).hexdigest()[:8])
    assert t2.startswith("image-" + hashlib.sha256(other.encode()).hexdigest()[:8])
    bad = asyncio.run(stream_all(vision.url, "ensemble", llm_inputs("no placeholder", 5, images=[other])))
    assert bad[0][0] is None and "placeholder" in bad[0][1].message()
    two = asyncio.run(stream_all(vision.url, "ensemble", llm_inputs("<image><image>", 5, images=[other, url])))
    assert two[0][0] is None and "unexpected shape for input 'image_url_input'" in two[0][1].message()


def test_image_model(image):
    c = tg.InferenceServerClient(image.url)
    cfg = c.get_model_config("stable_diffusion").config
    assert cfg.parameters["image_width"].string_value == "48" and cfg.parameters["image_height"].string_value == "32"
    assert {o.name: list(o.dims) for o in cfg.output} == {"generated_image": [-1, -1, -1]}
    assert cfg.backend == "diffusion" and cfg.parameters["version"].string_value == "1.5"  # the tutorial's config
    r = c.infer("stable_diffusion", [tensor("prompt", ["a red fox"], "BYTES")])
    img = r.as_numpy("generated_image")
    assert img.dtype == np.uint8 and img.shape == (1, 32, 48, 3)
    assert np.array_equal(img[0], generate_image("a red fox", "", 48, 32))
    r2 = c.infer(
        "stable_diffusion", [tensor("prompt", ["a red fox"], "BYTES"), tensor("negative_prompt", ["blur"], "BYTES")]
    )
    assert not np.array_equal(r2.as_numpy("generated_image"), img)


# -- failure injection, cancellation ---------------------------------------------------------------------------------
def test_refuse_and_not_ready(chat_nd):
    c = tg.InferenceServerClient(chat_nd.url)
    chat_nd.server.mode = "refuse"
    try:
        with pytest.raises(InferenceServerException) as ei:
            c.infer("ensemble", llm_inputs("x", 3))
        assert "UNAVAILABLE" in ei.value.status()
    finally:
        chat_nd.server.mode = None
    with pytest.raises(InferenceServerException) as ei:
        c.infer("ensemble", llm_inputs("please [standin:refuse]", 3))
    assert "UNAVAILABLE" in ei.value.status()
    chat_nd.server.mode = "not_ready"
    try:
        assert c.is_server_live() and not c.is_server_ready() and not c.is_model_ready("ensemble")
    finally:
        chat_nd.server.mode = None
    assert c.is_server_ready() and text_of(c.infer("ensemble", llm_inputs("x", 3, exclude=True)))


@pytest.mark.asyncio
async def test_die_after_k_chunks(chat):
    failed = chat.server.requests_failed
    client = tga.InferenceServerClient(chat.url)

    async def reqs():
        yield {"model_name": "ensemble", "inputs": llm_inputs("x [standin:die:3]", 30, exclude=True, stream=True)}

    got = []
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        async for r, _e in client.stream_infer(reqs()):
            got.append(text_of(r))
    await client.close()
    assert len(got) == 3 and ei.value.code() == grpc.StatusCode.INTERNAL
    assert chat.server.requests_failed == failed + 1


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_cancellation_counted_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="devtools.standin")
    async with running_standin("chat", token_delay=0.02) as server:
        client = tga.InferenceServerClient(f"127.0.0.1:{server.port}")

        async def reqs():
            yield {"model_name": "ensemble", "inputs": llm_inputs("cancel me", 40, stream=True)}

        it = client.stream_infer(reqs())
        n = 0
        async for _r, _e in it:
            n += 1
            if n == 2:
                it.cancel()
                break
        for _ in range(100):
            if server.requests_cancelled:
                break
            await asyncio.sleep(0.01)
        assert server.requests_cancelled == 1 and server.requests_completed == 0
        # generation stopped: no more work happens afterwards
        await asyncio.sleep(0.1)
        assert server.requests_completed == 0
        await client.close()
    assert any("cancelled" in rec.getMessage() for rec in caplog.records)


@pytest.mark.asyncio
@pytest.mark.e2e
async def test_hang_until_client_deadline():
    async with running_standin("chat", mode="hang") as server:
        client = tga.InferenceServerClient(f"127.0.0.1:{server.port}")

        async def reqs():
            yield {"model_name": "ensemble", "inputs": llm_inputs("x", 5, stream=True)}

        t0 = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            async for _ in client.stream_infer(reqs(), stream_timeout=0.3):
                pass
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t0 < 2
        for _ in range(100):
            if server.requests_cancelled:
                break
            await asyncio.sleep(0.01)
        assert server.requests_cancelled == 1
        await client.close()


def test_runtime_mode_validation():
    with pytest.raises(ValueError):
        StandInServer("chat", mode="explode")
    with pytest.raises(ValueError):
        StandInServer("nope")


@pytest.mark.e2e
def test_cli_prints_ready_line():
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.standin", "--port", "0", "--profile", "image", "--no-decoupled"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "stand-in" in line and "stable_diffusion" in line
        port = int(line.split("grpc=127.0.0.1:")[1].split()[0])
        assert tg.InferenceServerClient(f"127.0.0.1:{port}").is_model_ready("stable_diffusion")
    finally:
        proc.terminate()
        proc.wait(10)
