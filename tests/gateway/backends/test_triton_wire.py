"""triton_wire: the bytes are tritonclient's own (InferInput / _get_inference_request / InferResult), and the
per-stream read deadline behaves like asyncio.timeout around each read."""

import asyncio
import math
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import InferInput, InferRequestedOutput, InferResult, service_pb2
from tritonclient.grpc._utils import _get_inference_request
from tritonclient.utils import serialize_byte_tensor, triton_to_np_dtype

from gateway.backends import triton_wire as wire
from gateway.backends.base import GenRequest, Sampling
from gateway.backends.deadline import ReadDeadline
from gateway.backends.triton import TritonInstance, _Declared
from gateway.errors import BackendTimeout, InvalidRequest


def reference_input(name, datatype, values):
    """What the gateway sent before: numpy + tritonclient's InferInput."""
    np_dtype = np.object_ if datatype == "BYTES" else triton_to_np_dtype(datatype)
    arr = np.array([values], dtype=np_dtype)
    t = InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr)
    return t


CASES = [
    ("BYTES", [b"hello"]),
    ("BYTES", [b""]),
    ("BYTES", ["héllo wörld ✓".encode()]),
    ("BYTES", [b"stop one", b"", b"\x00\xff" * 300]),
    ("BYTES", [b"x" * 70_000]),
    ("BOOL", [True]),
    ("BOOL", [False]),
    ("BOOL", [True, False, True]),
    ("INT32", [24]),
    ("INT32", [0]),
    ("INT32", [-(2**31)]),
    ("INT32", [2**31 - 1]),
    ("INT32", [1, 2, 3]),
    ("INT64", [2**40]),
    ("UINT64", [2**64 - 1]),
    ("UINT64", [(-7) % 2**64]),
    ("UINT32", [7]),
    ("INT8", [-5]),
    ("UINT8", [200]),
    ("INT16", [-300]),
    ("UINT16", [60000]),
    ("FP32", [0.7]),
    ("FP32", [0.1]),
    ("FP32", [1]),
    ("FP32", [1e-50]),
    ("FP32", [3.4028235e38]),
    ("FP32", [-0.0]),
    ("FP32", [math.inf]),
    ("FP32", [1e300]),  # out of FP32 range: numpy makes it inf, and so does the fast path (via numpy)
    ("FP64", [0.1]),
    ("FP16", [0.5]),  # no fast path: numpy
    ("INT32", [True]),  # a bool where an int is declared: numpy decides
    ("INT32", [3.7]),  # a float where an int is declared: numpy decides (truncates)
    ("FP32", [np.float32(0.25)]),
]


@pytest.mark.parametrize("datatype,values", CASES)
def test_encode_input_is_tritonclients(datatype, values):
    with np.errstate(over="ignore"):
        ref = reference_input("x", datatype, values)
        tensor, raw = wire.encode_input("x", datatype, values)
    request = service_pb2.ModelInferRequest.FromString(tensor)  # the `inputs` field it is
    assert [t.SerializeToString(deterministic=True) for t in request.inputs] == [
        ref._get_tensor().SerializeToString(deterministic=True)
    ]
    assert raw == ref._get_content()
    assert list(request.inputs[0].shape) == [1, len(values)]


@pytest.mark.parametrize(
    "datatype,value", [("INT32", 2**31), ("INT32", -(2**31) - 1), ("UINT64", -1), ("UINT64", 2**64), ("INT8", 128)]
)
def test_encode_input_out_of_range_raises_like_numpy(datatype, value):
    with pytest.raises(Exception) as ref:
        reference_input("x", datatype, [value])
    with pytest.raises(type(ref.value)):
        wire.encode_input("x", datatype, [value])


def test_bytes_encoding_is_length_prefixed():
    _, raw = wire.encode_input("s", "BYTES", [b"ab", b"cde"])
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 3) + b"cde"
    assert raw == serialize_byte_tensor(np.array([b"ab", b"cde"], dtype=np.object_)).item()


def reference_request(model: str, inputs: list, request_id: str, outputs: tuple[str, ...]) -> bytes:
    """The request tritonclient's own InferenceServerClient builds, as protobuf serializes it."""
    ref = _get_inference_request(
        model_name=model,
        inputs=inputs,
        model_version="",
        request_id=request_id,
        outputs=[InferRequestedOutput(n) for n in outputs] or None,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters=None,
    )
    return ref.SerializeToString(deterministic=True)


@pytest.mark.parametrize("request_id", ["", "req-1"])
@pytest.mark.parametrize("outputs", [(), ("text_output", "num_input_tokens", "num_output_tokens")])
def test_infer_request_is_tritonclients(request_id, outputs):
    values = [
        ("text_input", "BYTES", [b"prompt"]),
        ("max_tokens", "INT32", [24]),
        ("stream", "BOOL", [True]),
        ("temperature", "FP32", [0.5]),
        ("stop_words", "BYTES", [b"a", b"bc"]),
    ]
    ours = wire.infer_request("ensemble", request_id, [wire.encode_input(*v) for v in values], outputs)
    again = wire.infer_request("ensemble", request_id, [wire.encode_input(*v) for v in values], outputs)  # cached
    ref = reference_request("ensemble", [reference_input(*v) for v in values], request_id, outputs)
    assert ours == again == ref  # byte for byte what protobuf writes


def test_a_request_with_long_values_is_protobufs():
    """Lengths of two and three varint bytes (a 20 KB prompt, a 300-byte request id), and a numpy-encoded input."""
    values = [("text_input", "BYTES", ["é".encode() * 10_000]), ("max_tokens", "INT32", [7]), ("h", "FP16", [0.5])]
    ours = wire.infer_request("m" * 200, "r" * 300, [wire.encode_input(*v) for v in values], ("text_output",))
    ref = reference_request("m" * 200, [reference_input(*v) for v in values], "r" * 300, ("text_output",))
    assert ours == ref


def _instance(declared: dict[str, tuple[str, tuple[int, ...]]]) -> TritonInstance:
    inst = TritonInstance("127.0.0.1:1", "ensemble")
    inst.inputs = {k: _Declared(t, dims, False) for k, (t, dims) in declared.items()}
    inst.outputs = {"text_output", "num_input_tokens", "num_output_tokens"}
    inst.seed_input = "seed" if "seed" in declared else None
    inst.vision = "image_url_input" in declared
    inst._started = True
    return inst


ENSEMBLE = {
    "text_input": ("BYTES", (1,)),
    "max_tokens": ("INT32", (1,)),
    "exclude_input_in_output": ("BOOL", (1,)),
    "return_num_input_tokens": ("BOOL", (1,)),
    "return_num_output_tokens": ("BOOL", (1,)),
    "stream": ("BOOL", (1,)),
    "temperature": ("FP32", (1,)),
    "top_p": ("FP32", (1,)),
    "presence_penalty": ("FP32", (1,)),
    "frequency_penalty": ("FP32", (1,)),
    "seed": ("UINT64", (1,)),
    "stop_words": ("BYTES", (-1,)),
    "image_url_input": ("BYTES", (-1,)),
    "bad_words": ("BYTES", (-1,)),
}


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    "req",
    [
        GenRequest("hello", Sampling(24)),
        GenRequest(
            "héllo <image>",
            Sampling(
                7,
                temperature=0.3,
                top_p=0.95,
                presence_penalty=-0.5,
                frequency_penalty=1.25,
                seed=-3,
                stop=("\n\n", "", "END"),
            ),
            image_urls=["data:image/png;base64,AAAA"],
            request_id="r-9",
        ),
        GenRequest("x", Sampling(1, seed=2**70)),
    ],
)
def test_llm_request_is_what_tritonclient_sent(req, stream):
    """The whole request equals the one the gateway built with InferInput + numpy before (same order too)."""
    inst = _instance(ENSEMBLE)
    ours = inst._llm_request(req, stream=stream)
    values = {
        "text_input": [req.prompt.encode()],
        "max_tokens": [req.sampling.max_tokens],
        "exclude_input_in_output": [True],
        "return_num_input_tokens": [True],
        "return_num_output_tokens": [True],
        "stream": [stream],
    }
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if getattr(req.sampling, name) is not None:
            values[name] = [getattr(req.sampling, name)]
    if req.sampling.seed is not None:
        values["seed"] = [req.sampling.seed % 2**64]
    if [s for s in req.sampling.stop if s]:
        values["stop_words"] = [s.encode() for s in req.sampling.stop if s]
    if req.image_urls:
        values["image_url_input"] = [u.encode() for u in req.image_urls]
    inputs = [reference_input(k, ENSEMBLE[k][0], v) for k, v in values.items()]
    ref = reference_request("ensemble", inputs, req.request_id, ())
    assert ours == ref


def test_llm_request_sends_only_declared_inputs_and_refuses_unencodable():
    inst = _instance({k: ENSEMBLE[k] for k in ("text_input", "max_tokens", "stream")})
    built = inst._llm_request(GenRequest("p", Sampling(3, stop=("s",))), stream=False)
    r = service_pb2.ModelInferRequest.FromString(built)
    assert [t.name for t in r.inputs] == ["text_input", "max_tokens", "stream"] and len(r.raw_input_contents) == 3
    with pytest.raises(InvalidRequest, match="cannot encode"):
        inst._llm_request(GenRequest("p", Sampling(2**31)), stream=False)


# -- responses -------------------------------------------------------------------------------------------------------
def response(*outputs, raw=None, **kw):
    """outputs: (name, datatype, shape, raw bytes or None for no raw entry)."""
    r = service_pb2.ModelInferResponse(model_name="ensemble", **kw)
    for name, dt, shape, data in outputs:
        r.outputs.add(name=name, datatype=dt, shape=shape)
        if data is not None:
            r.raw_output_contents.append(data)
    return r


def text(s: bytes) -> bytes:
    return struct.pack("<I", len(s)) + s


def i32(v):
    return struct.pack("<i", v)


def reference_decode(r):
    """What the gateway read before: InferResult.as_numpy."""
    res = InferResult(r)
    out = res.as_numpy("text_output")
    t = None
    if out is not None:
        flat = out.reshape(-1)
        t = flat[0] if flat.size else b""
    ni, no = res.as_numpy("num_input_tokens"), res.as_numpy("num_output_tokens")
    return (
        t,
        int(ni.reshape(-1)[0]) if ni is not None and ni.size else None,
        int(no.reshape(-1)[0]) if no is not None and no.size else None,
    )


FAST = [
    response(
        ("text_output", "BYTES", [1, 1], text(b" river")),
        ("num_input_tokens", "INT32", [1, 1], i32(5)),
        ("num_output_tokens", "INT32", [1, 1], i32(1)),
    ),
    response(("text_output", "BYTES", [1, 1], text(b""))),
    response(("text_output", "BYTES", [1, 1], text("é ✓".encode())), ("num_output_tokens", "INT32", [1, 1], i32(-2))),
    response(
        ("num_output_tokens", "INT64", [1, 1], struct.pack("<q", 2**40)), ("text_output", "BYTES", [1], text(b"x"))
    ),
    response(("other", "FP32", [1, 3], b"\0" * 12), ("text_output", "BYTES", [1, 1], text(b"after another"))),
    response(("text_output", "BYTES", [1, 1], text(b"first")), ("text_output", "BYTES", [1, 1], text(b"second"))),
    response(
        ("num_input_tokens", "UINT32", [1, 1], struct.pack("<I", 9)), ("text_output", "BYTES", [1, 1], text(b"t"))
    ),
    response(("text_output", "BYTES", [], text(b"scalar"))),  # a scalar is a one-element tensor too
    response(),  # no text_output at all
]
SLOW = [  # out of the ordinary: decode_llm declines, tritonclient decides
    response(("text_output", "BYTES", [1, 2], text(b"a") + text(b"b"))),
    response(("text_output", "BYTES", [1, 0], b"")),
    response(("text_output", "BYTES", [1, 1], None)),  # no raw entry: contents (empty) are used
    response(("num_output_tokens", "INT32", [1, 1], i32(3)), ("text_output", "BYTES", [1, 1], None)),
    response(("text_output", "BYTES", [1, 1], text(b"t")), ("num_output_tokens", "INT8", [1, 1], b"\x03")),
    response(("text_output", "BYTES", [1, 1], text(b"t")), ("num_output_tokens", "FP32", [1, 1], struct.pack("<f", 4))),
    response(("text_output", "BYTES", [1, 1], text(b"t")), ("num_output_tokens", "INT32", [1, 2], i32(1) + i32(2))),
]


@pytest.mark.parametrize("r", FAST)
def test_decode_llm_is_infer_results(r):
    assert wire.decode_llm(r) is not None
    assert wire.decode_llm(r) == reference_decode(r) == wire.decode_llm_numpy(r)


@pytest.mark.parametrize("r", SLOW)
def test_decode_llm_declines_the_unusual_and_numpy_agrees(r):
    assert wire.decode_llm(r) is None
    try:
        ref = reference_decode(r)
    except Exception as e:
        with pytest.raises(type(e)):
            wire.decode_llm_numpy(r)
    else:
        assert wire.decode_llm_numpy(r) == ref


def test_a_learnt_layout_reads_every_response_as_the_field_by_field_read_does():
    """Each response read after every other one (the layout learnt from the first, then used or replaced): always
    the answer of the field-by-field read, fast or declined."""
    bad_prefix = response(
        ("text_output", "BYTES", [1, 1], struct.pack("<I", 9) + b"short"),
        ("num_input_tokens", "INT32", [1, 1], i32(5)),
        ("num_output_tokens", "INT32", [1, 1], i32(1)),
    )
    short_int = response(
        ("text_output", "BYTES", [1, 1], text(b" river")),
        ("num_input_tokens", "INT32", [1, 1], i32(5)),
        ("num_output_tokens", "INT32", [1, 1], b"\x01"),
    )
    everything = [*FAST, *SLOW, bad_prefix, short_int]
    for first in everything:
        for second in everything:
            layout = wire.Layout()
            assert wire.decode_llm(first, layout) == wire.decode_llm(first)
            assert wire.decode_llm(second, layout) == wire.decode_llm(second), (first, second)
    layout = wire.Layout()
    wire.decode_llm(FAST[0], layout)
    assert layout.outputs is not None and wire.decode_llm(bad_prefix, layout) is None  # same outputs, bad contents
    assert wire.decode_llm(short_int, layout) is None


# -- StreamTemplate: stream responses read from their bytes ------------------------------------------------------------
FROM_STRING = service_pb2.ModelStreamInferResponse.FromString


def streamed(r, error: str = "") -> bytes:
    """A ModelInferResponse as a stream message's bytes."""
    m = service_pb2.ModelStreamInferResponse(error_message=error)
    m.infer_response.CopyFrom(r)
    return m.SerializeToString()


def reference_read(data: bytes):
    """What the template must give for `data` when it gives anything: protobuf's parse, then decode_llm."""
    m = FROM_STRING(data)
    return None if m.error_message else wire.decode_llm(m.infer_response)


def llm(t: bytes, n_in: int = 5, n_out: int = 1, **kw):
    return response(
        ("text_output", "BYTES", [1, 1], text(t)),
        ("num_input_tokens", "INT32", [1, 1], i32(n_in)),
        ("num_output_tokens", "INT32", [1, 1], i32(n_out)),
        **kw,
    )


class Counting:
    """FromString, counting the responses protobuf parsed (the others were read from their bytes)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, data: bytes):
        self.calls += 1
        return FROM_STRING(data)


def parsed_alike(got, data: bytes) -> bool:
    """The template's answer for `data` is protobuf's: (text, counts), or the message where decode_llm has none."""
    return got == reference_read(data) if isinstance(got, tuple) else reference_read(data) is None


def test_a_template_reads_later_responses_of_the_layout_from_their_bytes():
    protobuf = Counting()
    tpl = wire.StreamTemplate(protobuf, wire.Layout())
    assert tpl.parse(streamed(llm(b" river"))) == (b" river", 5, 1)  # parsed (decoded as decode_llm does)
    long = "ü".encode() * 300  # a raw entry whose length takes two varint bytes
    for t, n_out in [(b" delta", 2), (b"", 3), (long, 4)]:
        data = streamed(llm(t, n_out=n_out))
        assert tpl.parse(data) == (t, 5, n_out) == reference_read(data)
    assert protobuf.calls == 1  # the first parsed; from the second on, read from their bytes
    # another id, other parameters (the final response), another layout: parsed and decoded alike; the first miss
    # after responses that fit is not learnt from (the final response is the last), a second in a row is
    final = {"triton_final_response": service_pb2.InferParameter(bool_param=True)}
    for r in [
        llm(b"x", id="req-2"),
        llm(b"y", parameters=final),
        response(("text_output", "BYTES", [1, 1], text(b"z"))),
    ]:
        data, before = streamed(r), protobuf.calls
        for parses in (1, 2, 2, 2):  # parsed, parsed and learnt from, then read from its bytes
            assert tpl.parse(data) == reference_read(data) and protobuf.calls == before + parses, r
    for data in [streamed(llm(b"x"), error="boom"), streamed(response(("text_output", "BYTES", [1, 2], b"")))]:
        assert not isinstance(tpl.parse(data), tuple)  # an error, a response decode_llm declines: parsed


def test_an_answer_of_one_response_is_parsed_once_and_nothing_learnt():
    tpl = wire.StreamTemplate(FROM_STRING, wire.Layout())
    assert tpl.parse(streamed(llm(b"{}"))) == (b"{}", 5, 1) and tpl.prefix is None


def test_contents_that_are_not_the_last_bytes_are_not_learnt_from():
    """Protobuf takes fields in any order: a response whose raw_output_contents come before its other fields (no
    server seen does that) parses alike but is never read from its bytes."""

    def contents_first(t: bytes) -> bytes:
        full = llm(t)
        rest = service_pb2.ModelInferResponse()
        rest.CopyFrom(full)
        del rest.raw_output_contents[:]
        raws = b"".join(b"\x32" + bytes([len(r)]) + r for r in full.raw_output_contents)
        inner = raws + rest.SerializeToString()
        assert len(inner) < 128  # a one-byte length
        return b"\x12" + bytes([len(inner)]) + inner

    protobuf = Counting()
    tpl = wire.StreamTemplate(protobuf, wire.Layout())
    for t in (b"a", b"b", b"c"):
        data = contents_first(t)
        assert reference_read(data) == (t, 5, 1)  # protobuf reads it
        assert tpl.parse(data) == (t, 5, 1)
    assert tpl.prefix is None and protobuf.calls == 3


def test_two_streams_of_a_model_interleaving_each_keep_their_template():
    """Each call has its own (their ids differ); the model's layout is shared: each parses its first response only."""
    layout = wire.Layout()
    counts = {rid: Counting() for rid in ("req-a", "req-b")}
    templates = {rid: wire.StreamTemplate(c, layout) for rid, c in counts.items()}
    for i in range(4):
        for rid, tpl in templates.items():
            data = streamed(llm(f"{rid} {i}".encode(), id=rid))
            assert tpl.parse(data) == reference_read(data)
    assert [c.calls for c in counts.values()] == [1, 1]


EVERY = [*FAST, *SLOW]


def test_every_pair_of_responses_reads_as_protobuf_reads_it():
    """The template learnt from one response, then any other read: its answer is protobuf's."""
    used = 0
    for first in EVERY:
        for second in EVERY + [llm(b"other")]:
            protobuf = Counting()
            tpl = wire.StreamTemplate(protobuf, wire.Layout())
            tpl.parse(streamed(first))
            got = tpl.parse(streamed(second))
            assert parsed_alike(got, streamed(second)), (first, second)
            used += protobuf.calls == 1
    assert used >= len(FAST) - 1  # a response after one of its own layout is read from its bytes


@st.composite
def variants(draw):
    """A response like the learnt one with other contents, and then perhaps damaged: cut, a byte changed, bytes
    added (a field the template does not know, or garbage)."""
    t = draw(st.binary(max_size=300))
    data = streamed(llm(t, draw(st.integers(-(2**31), 2**31 - 1)), draw(st.integers(0, 2**31 - 1))))
    how = draw(st.sampled_from(["whole", "cut", "flip", "append"]))
    if how == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif how == "append":
        data += draw(st.binary(min_size=1, max_size=12))
    return data


@settings(max_examples=400, deadline=None)
@given(variants())
def test_any_bytes_read_by_the_template_are_read_as_protobuf_reads_them(data):
    tpl = wire.StreamTemplate(FROM_STRING, wire.Layout())
    tpl.parse(streamed(llm(b" learnt")))
    tpl.parse(streamed(llm(b" from the first, at the second")))
    assert tpl.prefix is not None
    got = tpl.read(data)
    if got is not None:
        assert got == reference_read(data)  # protobuf parses it, and to the same answer


def test_bytes_whose_lengths_disagree_are_not_read_by_the_template():
    """Each length the template reads is checked: the message's, the text entry's and the text's own; a response
    with an entry more than the layout's is left to protobuf."""
    tpl = wire.StreamTemplate(FROM_STRING, wire.Layout())
    tpl.parse(streamed(llm(b" learnt")))
    tpl.parse(streamed(llm(b" from the first, at the second")))
    data = streamed(llm(b" later"))
    assert tpl.read(data) == (b" later", 5, 1) == reference_read(data)
    extra = llm(b" later")
    extra.raw_output_contents.insert(1, b"abc")  # four contents for three outputs: decode_llm declines it
    size = data[1:3]  # the message's length (two varint bytes)
    for bad in (
        streamed(extra),
        data[:1] + bytes([size[0] + 1]) + data[2:],  # one byte more than there is
        data[:1] + bytes([size[0] - 1]) + data[2:] + b"\x00",
    ):
        assert tpl.read(bad) is None
        try:
            theirs = reference_read(bad)
        except Exception:  # protobuf refuses it
            theirs = None
        assert theirs != (b" later", 5, 1)


def test_the_instance_reads_a_plain_answer_through_the_template_and_others_parsed():
    inst = TritonInstance("127.0.0.1:1", "ensemble")
    parse = wire.StreamTemplate(FROM_STRING, inst._layout).parse
    for message, expect in [(llm(b"a"), ("a", 5, 1)), (llm(b" b", n_out=2), (" b", 5, 2))]:
        assert inst._decode(inst._response(parse(streamed(message)), False)) == expect
    assert TritonInstance._plain(GenRequest("p", Sampling(4)))
    assert not TritonInstance._plain(GenRequest("p", Sampling(4, logprobs=True)))
    assert not TritonInstance._plain(GenRequest("p", Sampling(4, n=2)))
    with pytest.raises(Exception, match="engine error: boom"):
        inst._response(parse(streamed(llm(b"x"), error="boom")), False)


def test_instance_decode_uses_either_path_alike():
    inst = _instance(ENSEMBLE)
    r = FAST[0]
    assert inst._decode(r) == (" river", 5, 1)
    bytes_contents = service_pb2.ModelInferResponse()
    out = bytes_contents.outputs.add(name="text_output", datatype="BYTES", shape=[1, 1])
    out.contents.bytes_contents.append(b"from contents")
    assert wire.decode_llm(bytes_contents) is None  # tritonclient decides (with numpy 2 it fails: so do we)
    try:
        ref = reference_decode(bytes_contents)
    except Exception as e:
        with pytest.raises(type(e)):
            inst._decode(bytes_contents)
    else:
        assert inst._decode(bytes_contents) == (ref[0].decode(), None, None)
    with pytest.raises(Exception, match="no text_output"):
        inst._decode(FAST[-1])


# -- the per-stream read deadline ----------------------------------------------------------------------------------
class FakeCall:
    """call.read() answers after the given delays (None: never)."""

    def __init__(self, delays):
        self.delays = list(delays)
        self.reads = 0

    async def read(self):
        d = self.delays[self.reads]
        self.reads += 1
        if d is None:
            await asyncio.Event().wait()
        await asyncio.sleep(d)
        return service_pb2.ModelStreamInferResponse()


async def test_read_deadline_first_and_idle():
    inst = TritonInstance("127.0.0.1:1", "m", deadline_s=0.3, idle_timeout_s=0.1)
    dl = ReadDeadline()
    call = FakeCall([0.2, 0.05, 0.05, 0.2])  # first within 0.3, then 0.05 twice within 0.1, then too slow
    t0 = time.monotonic()
    assert await inst._next(call, dl, True, False) is not None
    assert await inst._next(call, dl, False, True) is not None
    await asyncio.sleep(0.3)  # time spent between reads (by the consumer) does not count
    assert await inst._next(call, dl, False, True) is not None
    with pytest.raises(BackendTimeout, match="stream went silent") as ei:
        await inst._next(call, dl, False, True)
    assert ei.value.partial is True and 0.65 < time.monotonic() - t0 < 1.0
    assert asyncio.current_task().cancelling() == 0  # our cancellation was taken back
    dl.close()
    await asyncio.sleep(0.2)  # nothing fires after close


async def test_read_deadline_timeout_then_more_reads_and_outer_timeouts():
    inst = TritonInstance("127.0.0.1:1", "m", deadline_s=0.1)
    dl = ReadDeadline()
    with pytest.raises(BackendTimeout, match="first response"):
        await inst._next(FakeCall([None]), dl, True, False)
    # an enclosing asyncio.timeout still works, and ours does not eat it
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await inst._next(FakeCall([None]), dl, True, False)
    assert await inst._next(FakeCall([0.01]), dl, True, False) is not None
    dl.close()


async def test_read_deadline_caller_cancellation_propagates():
    inst = TritonInstance("127.0.0.1:1", "m", deadline_s=0.2)

    async def reader():
        dl = ReadDeadline()
        try:
            await inst._next(FakeCall([None]), dl, True, False)
        finally:
            dl.close()

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # cancelled by the caller exactly when the deadline expires: a cancellation, not a timeout
    task = asyncio.create_task(reader())
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + 0.2, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
