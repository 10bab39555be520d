"""Triton's KServe-v2 tensors on the wire, without tritonclient's per-call numpy machinery.

The hot path of ``TritonInstance`` builds ``ModelInferRequest`` bytes directly (each part serialized by protobuf
once and kept: a tensor's header per name, datatype and count, the model's name, the outputs asked for; a request
joins them with its values) and reads ``ModelInferResponse.raw_output_contents`` itself. The bytes are exactly what
``tritonclient.grpc.InferInput`` / ``InferResult`` produce and read (proved in tests/gateway/backends/
test_triton_wire.py):

* a tensor of n values goes as shape ``[1, n]`` (every tensor is batched), its data in ``raw_input_contents``;
* numbers little-endian in their declared type (BOOL one byte); BYTES as a 4-byte little-endian length + the bytes,
  per element.

Anything out of the ordinary (a value of an unexpected Python type, a number out of range, a datatype without a fast
path, an irregular response) goes through tritonclient's own ``InferInput`` / ``InferResult``, so that behaviour,
errors included, is the same as tritonclient's.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferResult, service_pb2
from tritonclient.utils import triton_to_np_dtype

InputTensor = service_pb2.ModelInferRequest.InferInputTensor
Tensor = bytes  # an InputTensor as a ModelInferRequest's `inputs` field: its tag, length and serialized header
Message = Any  # a ModelInferRequest / ModelInferResponse (tritonclient's protobufs carry no type hints)

# datatype -> (struct format, accepted Python types, (min, max) for integers)
_INT_RANGES = {
    "INT8": ("<b", -(2**7), 2**7 - 1),
    "INT16": ("<h", -(2**15), 2**15 - 1),
    "INT32": ("<i", -(2**31), 2**31 - 1),
    "INT64": ("<q", -(2**63), 2**63 - 1),
    "UINT8": ("<B", 0, 2**8 - 1),
    "UINT16": ("<H", 0, 2**16 - 1),
    "UINT32": ("<I", 0, 2**32 - 1),
    "UINT64": ("<Q", 0, 2**64 - 1),
}
_FLOATS = {"FP32": "<f", "FP64": "<d"}
_LEN = struct.Struct("<I")
_OUT_INTS = {
    "INT32": struct.Struct("<i"),
    "INT64": struct.Struct("<q"),
    "UINT32": struct.Struct("<I"),
    "UINT64": struct.Struct("<Q"),
}


def _pack_fast(datatype: str, values: list[Any]) -> bytes | None:
    """The raw bytes of a [1, n] tensor, or None where only numpy can say (then the numpy path decides)."""
    if datatype == "BYTES":
        parts = []
        for v in values:
            if type(v) is not bytes:
                return None
            parts.append(_LEN.pack(len(v)))
            parts.append(v)
        return b"".join(parts)
    if datatype == "BOOL":
        if all(type(v) is bool for v in values):
            return bytes(values)  # numpy's bool is one byte, 0 or 1
        return None
    spec = _INT_RANGES.get(datatype)
    if spec is not None:
        fmt, lo, hi = spec
        if all(type(v) is int and lo <= v <= hi for v in values):
            return struct.pack(fmt[0] + fmt[1] * len(values), *values)
        return None
    float_fmt = _FLOATS.get(datatype)
    if float_fmt is not None:
        if all(type(v) is float or type(v) is int for v in values):
            try:
                return struct.pack(float_fmt[0] + float_fmt[1] * len(values), *values)
            except (OverflowError, struct.error):  # e.g. out of FP32 range: numpy makes it inf
                return None
        return None
    return None


def encode_input(name: str, datatype: str, values: list[Any]) -> tuple[Tensor, bytes]:
    """The tensor header and raw contents that ``InferInput(name, [1, n], datatype).set_data_from_numpy(
    np.array([values], dtype))`` would put in a request. Raises what that raises (ValueError, OverflowError,
    InferenceServerException) on values it cannot encode."""
    raw = _pack_fast(datatype, values)
    if raw is None:
        return encode_input_numpy(name, datatype, values)
    return _input_header(name, datatype, len(values)), raw


def encode_input_numpy(name: str, datatype: str, values: list[Any]) -> tuple[Tensor, bytes]:
    """tritonclient's own encoding (the reference, and the path for anything unusual)."""
    np_dtype = np.object_ if datatype == "BYTES" else triton_to_np_dtype(datatype)
    arr = np.array([values], dtype=np_dtype)  # batched: [1, n]
    t = InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr)
    return _field(_INPUTS, t._get_tensor().SerializeToString()), t._get_content()


@lru_cache(maxsize=4096)  # names and datatypes are the model's; the counts are few (stop words, images)
def _input_header(name: str, datatype: str, n: int) -> Tensor:
    return _field(_INPUTS, InputTensor(name=name, datatype=datatype, shape=(1, n)).SerializeToString())


@lru_cache(maxsize=256)
def _model_field(model_name: str) -> bytes:
    # model_name, field 1; proto3 writes no empty string (and model_version is always "")
    return _field(0x0A, model_name.encode()) if model_name else b""


@lru_cache(maxsize=256)
def _outputs_field(outputs: tuple[str, ...]) -> bytes:
    asked = service_pb2.ModelInferRequest.InferRequestedOutputTensor
    return b"".join(_field(_OUTPUTS, asked(name=n).SerializeToString()) for n in outputs)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited protobuf field: its tag byte, the length as a varint, the bytes."""
    size, head = len(data), bytearray((tag,))
    while size >= 0x80:
        head.append((size & 0x7F) | 0x80)
        size >>= 7
    head.append(size)
    return bytes(head) + data


# ModelInferRequest's length-delimited fields (grpc_service.proto): id 3, inputs 5, outputs 6, raw_input_contents 7
_ID, _INPUTS, _OUTPUTS, _RAW_INPUT = 0x1A, 0x2A, 0x32, 0x3A


def infer_request(
    model_name: str, request_id: str, tensors: list[tuple[Tensor, bytes]], outputs: tuple[str, ...] = ()
) -> bytes:
    """A ModelInferRequest's bytes as tritonclient's ``_get_inference_request`` builds and protobuf serializes it
    (with ``InferRequestedOutput`` per name in ``outputs``; none: the server returns all of them): its fields in
    their numbers' order, as protobuf writes them."""
    parts = [_model_field(model_name)]
    if request_id != "":
        parts.append(_field(_ID, request_id.encode()))
    parts += [t for t, _ in tensors]
    parts.append(_outputs_field(outputs))
    parts += [_field(_RAW_INPUT, raw) for _, raw in tensors]
    return b"".join(parts)


_MISSING = object()


def _first(out: Any, raw: bytes) -> Any:
    """The only element of a one-element BYTES (-> bytes) or integer (-> int) tensor; _MISSING otherwise."""
    n = 1
    for d in out.shape:
        n *= d
    if n != 1:
        return _MISSING
    dt = out.datatype
    if dt == "BYTES":
        if len(raw) < 4 or _LEN.unpack_from(raw)[0] != len(raw) - 4:
            return _MISSING
        return raw[4:]
    s = _OUT_INTS.get(dt)
    if s is None or len(raw) != s.size:
        return _MISSING
    return s.unpack(raw)[0]


_LLM_OUTPUTS = {"text_output": 0, "num_input_tokens": 1, "num_output_tokens": 2}


class Layout:
    """Where the LLM outputs sit in a model's responses, learnt from the last one read field by field: the responses
    of one model repeat the same ``outputs`` (names, datatypes, shapes) with new raw contents, and comparing two
    ``outputs`` is one C call, where reading them field by field cost ten times the parse of the message."""

    __slots__ = ("outputs", "plan")

    def __init__(self) -> None:
        self.outputs: Any = None  # the ``outputs`` of the response the plan was made from
        self.plan: tuple[tuple[int, int, struct.Struct | None], ...] = ()  # (slot, raw index, int format | BYTES)


def decode_llm(response: Message, layout: Layout | None = None) -> tuple[bytes | None, int | None, int | None] | None:
    """(text_output bytes or None when absent, num_input_tokens, num_output_tokens) of a ModelInferResponse, as
    ``InferResult(response).as_numpy(name).reshape(-1)[0]`` gives them (None for an absent output), for the common
    case: one-element BYTES / integer tensors in raw_output_contents. None when something is out of the ordinary
    (then decode with tritonclient's InferResult: decode_llm_numpy). With a `layout`, a response whose outputs equal
    the last one's is read by its plan."""
    outputs = response.outputs
    if layout is not None and layout.outputs is not None and outputs == layout.outputs:
        return _by_plan(layout.plan, response.raw_output_contents)
    found: list[Any] = [None, None, None]
    plan = []
    seen = 0
    raw_all = response.raw_output_contents
    for index, out in enumerate(outputs):
        slot = _LLM_OUTPUTS.get(out.name)
        if slot is None or (seen >> slot) & 1:  # as_numpy takes the first output of a name
            continue
        seen |= 1 << slot
        if index >= len(raw_all):
            return None
        value = _first(out, raw_all[index])
        if value is _MISSING:
            return None
        found[slot] = value
        plan.append((slot, index, None if out.datatype == "BYTES" else _OUT_INTS[out.datatype]))
    if layout is not None:
        layout.outputs, layout.plan = outputs, tuple(plan)
    return found[0], found[1], found[2]


def _by_plan(
    plan: tuple[tuple[int, int, struct.Struct | None], ...], raw_all: Any
) -> tuple[bytes | None, int | None, int | None] | None:
    """decode_llm's answer for a response laid out as the plan says (None where its contents do not fit it)."""
    found: list[Any] = [None, None, None]
    n = len(raw_all)
    for slot, index, fmt in plan:
        if index >= n:
            return None
        raw = raw_all[index]
        if fmt is None:
            if len(raw) < 4 or _LEN.unpack_from(raw)[0] != len(raw) - 4:
                return None
            found[slot] = raw[4:]
        elif len(raw) != fmt.size:
            return None
        else:
            found[slot] = fmt.unpack(raw)[0]
    return found[0], found[1], found[2]


Decoded = tuple[bytes | None, int | None, int | None]  # (text_output, num_input_tokens, num_output_tokens)
_INFER_RESPONSE = 0x12  # ModelStreamInferResponse.infer_response: field 2, length-delimited (error_message is 1)
_RAW_OUTPUT = 0x32  # ModelInferResponse.raw_output_contents: field 6, length-delimited, the last field


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at data[pos]: (value, the position after it); IndexError when cut short."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def _infer_response(data: bytes) -> tuple[int, int] | None:
    """Where a stream message's infer_response lies, (start, end), when it is all the message holds; else None."""
    if not data or data[0] != _INFER_RESPONSE:
        return None
    try:
        size, pos = _varint(data, 1)
    except IndexError:
        return None
    end = pos + size
    return (pos, end) if end == len(data) else None


def _raw_fields(data: bytes, pos: int, end: int) -> list[bytes] | None:
    """data[pos:end] as nothing but raw_output_contents entries, in order; None on anything else."""
    raws = []
    try:
        while pos < end:
            if data[pos] != _RAW_OUTPUT:
                return None
            size = data[pos + 1]
            if size < 0x80:  # a contents entry under 128 bytes: the common case
                pos += 2
            else:
                size, pos = _varint(data, pos + 1)
            if pos + size > end:
                return None
            raws.append(data[pos : pos + size])
            pos += size
    except IndexError:
        return None
    return raws


class StreamTemplate:
    """One stream's responses read from their bytes, without protobuf: the responses to one request repeat the same
    bytes up to their raw_output_contents (model name and version, request id, parameters, the outputs' names,
    datatypes and shapes) and differ only in those, which protobuf's wire format puts last. A response that does not
    fit (the first, the final one whose parameters differ, an error: error_message comes first) is parsed, and when
    it is a plain LLM response its bytes before raw_output_contents are kept with the model layout's plan for it; a
    later response whose infer_response starts with those same bytes and goes on with nothing but
    raw_output_contents entries parses to that response with new contents, so the plan reads them as decode_llm
    would (proved in tests/gateway/backends/test_triton_wire.py). One per call: requests' ids differ, and the
    streams of one model interleave. For single-sequence answers without log probabilities, whose plan is all they
    need."""

    __slots__ = ("_first", "_layout", "_missed", "_parse", "_tail", "plan", "prefix")

    def __init__(self, parse: Any, layout: Layout) -> None:
        self._parse = parse  # ModelStreamInferResponse.FromString
        self._layout = layout  # the model's (shared by its calls)
        self._missed = False  # the last response did not fit
        self._first: tuple[bytes, Any, tuple[tuple[int, int, struct.Struct | None], ...]] | None = None
        self.prefix: bytes | None = None
        self.plan: tuple[tuple[int, int, struct.Struct | None], ...] = ()
        self._tail: _Tail | None = None  # the usual layout's contents, read in one piece

    def read(self, data: bytes) -> Decoded | None:
        """The response's (text, counts) when it fits the template, else None."""
        prefix = self.prefix
        if prefix is None:
            return None
        if self._tail is not None and (fast := self._tail.read(data, prefix)) is not None:
            return fast
        if (span := _infer_response(data)) is None:
            return None
        pos, end = span
        if not data.startswith(prefix, pos):
            return None
        raws = _raw_fields(data, pos + len(prefix), end)
        return None if raws is None else _by_plan(self.plan, raws)

    def parse(self, data: bytes) -> Decoded | Message:
        """The h2c parse function: the response's (text, counts), read from the bytes when they fit, else parsed; a
        response that is no plain LLM response comes back parsed. Learning waits for a second response (an answer
        of one costs nothing more) and skips the first miss after responses that fit (the final response, whose
        parameters differ)."""
        fast = self.read(data)
        if fast is None and self._first is not None:  # a second response: learn from the first, then try again
            self._learn(*self._first)
            self._first = None
            fast = self.read(data)
        if fast is not None:
            self._missed = False
            return fast
        message = self._parse(data)
        if message.error_message != "":
            return message
        response = message.infer_response
        decoded = decode_llm(response, self._layout)
        if decoded is None:
            return message
        learnt = (data, response.raw_output_contents, self._layout.plan)  # the plan decode_llm just read it by
        if self.prefix is None and not self._missed:
            self._first = learnt
        elif self._missed:
            self._learn(*learnt)
        self._missed = True
        return decoded

    def _learn(self, data: bytes, raws: Any, plan: tuple[tuple[int, int, struct.Struct | None], ...]) -> None:
        """Keep the bytes of a decoded response before its raw_output_contents, the message's last bytes, with the
        plan that read it."""
        if not plan or (span := _infer_response(data)) is None:
            return
        pos, end = span
        at = end - sum(1 + (len(raw).bit_length() + 6) // 7 + len(raw) if raw else 2 for raw in raws)
        # the bytes from `at` on are exactly all the contents (so none is among the bytes kept)
        if at < pos or _raw_fields(data, at, end) != list(raws):
            return
        self.prefix, self.plan = data[pos:at], plan
        self._tail = _Tail.of(plan, len(raws))


class _Tail:
    """The contents of the usual layout read in one piece: text_output first, then only integer outputs, which a
    struct reads at the message's end in one call (the same answer as _raw_fields and _by_plan: every tag and size
    checked; anything else is left to them)."""

    __slots__ = ("ints", "size", "struct", "tags", "usual")

    def __init__(self, ints: tuple[int, ...], fmts: list[struct.Struct]) -> None:
        self.ints = ints  # the slot of each integer, in the contents' order
        self.usual = ints == (1, 2)  # num_input_tokens, then num_output_tokens
        self.struct = struct.Struct("<" + "".join("2s" + f.format.lstrip("<") for f in fmts))
        self.size = self.struct.size
        self.tags = tuple(bytes([_RAW_OUTPUT, f.size]) for f in fmts)  # each entry's tag and one-byte length

    @classmethod
    def of(cls, plan: tuple[tuple[int, int, struct.Struct | None], ...], count: int) -> _Tail | None:
        """For a plan whose text is the first of `count` contents and the rest are all integers it reads."""
        by_index = {index: (slot, fmt) for slot, index, fmt in plan}
        text = by_index.get(0)
        rest = [by_index.get(i) for i in range(1, count)]
        if text is None or text[0] != 0 or text[1] is not None or any(e is None or e[1] is None for e in rest):
            return None
        return cls(tuple(e[0] for e in rest if e), [e[1] for e in rest if e and e[1]])

    def read(self, data: bytes, prefix: bytes) -> Decoded | None:
        n = len(data)
        if n < 3 or data[0] != _INFER_RESPONSE:
            return None
        size, pos = _short_varint(data, 1)
        if pos + size != n or not data.startswith(prefix, pos):
            return None
        pos += len(prefix)
        ints_at = n - self.size
        if pos + 6 > ints_at or data[pos] != _RAW_OUTPUT:
            return None
        size, pos = _short_varint(data, pos + 1)
        if pos + size != ints_at or size < 4 or _LEN.unpack_from(data, pos)[0] != size - 4:
            return None
        values = self.struct.unpack_from(data, ints_at)
        if values[::2] != self.tags:
            return None
        text = data[pos + 4 : ints_at]
        if self.usual:
            return text, values[1], values[3]
        found: list[Any] = [text, None, None]
        for slot, value in zip(self.ints, values[1::2], strict=True):
            found[slot] = value
        return found[0], found[1], found[2]


def _short_varint(data: bytes, pos: int) -> tuple[int, int]:
    """A varint of one or two bytes at data[pos]: (value, the position after it); (-1, pos) for a longer one."""
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    second = data[pos + 1]
    if second >= 0x80:
        return -1, pos
    return (first & 0x7F) | (second << 7), pos + 2


def decode_llm_numpy(response: Message) -> tuple[bytes | str | None, int | None, int | None]:
    """The same through tritonclient's InferResult.as_numpy (the reference, and the path for anything unusual).
    text is None when the output is absent; b"" when it is empty."""
    result = InferResult(response)
    out = result.as_numpy("text_output")
    text: bytes | str | None = None
    if out is not None:
        flat = out.reshape(-1)
        text = flat[0] if flat.size else b""
    n_in = result.as_numpy("num_input_tokens")
    n_out = result.as_numpy("num_output_tokens")
    return (
        text,
        int(n_in.reshape(-1)[0]) if n_in is not None and n_in.size else None,
        int(n_out.reshape(-1)[0]) if n_out is not None and n_out.size else None,
    )


def decode_int(response: Message, name: str) -> int | None:
    """The one integer of output `name` (sequence_index), None when absent."""
    raw_all = response.raw_output_contents
    for index, out in enumerate(response.outputs):
        if out.name == name:
            if index < len(raw_all):
                value = _first(out, raw_all[index])
                if value is not _MISSING and not isinstance(value, bytes):
                    return int(value)
            arr = InferResult(response).as_numpy(name)
            return int(arr.reshape(-1)[0]) if arr is not None and arr.size else None
    return None
