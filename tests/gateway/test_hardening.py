"""Bounded inputs, slow clients, keys only in the Authorization header, and what never reaches the logs."""

import socket
import time

import httpx
import pytest

from devtools.standin.testing import StandInThread

from .harness import DEMO_KEY, Gateway

SVC = "u-8105f7322477/test"


@pytest.fixture(scope="module")
def hard(e2e, tmp_path_factory):
    t = StandInThread("chat").start()
    g = Gateway(
        tmp_path_factory.mktemp("hard"), {SVC: [f"127.0.0.1:{t.server.port}"]}, args=("--request-timeout", "1")
    ).start()
    yield g
    g.stop()
    t.stop()


def test_prompt_longer_than_the_model_context_is_refused(hard):
    # llama-3.1-8b-instruct: max_input_tokens 8192 → at most 131072 characters
    r = hard.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "a" * 140_000}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    r = hard.post("/v1/completions", {"model": SVC, "prompt": "a" * 140_000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    r = hard.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "a"}] * 5000})
    assert r.status_code == 400 and "at most 4096" in r.json()["error"]["message"]


def test_oversized_headers_are_refused(hard):
    r = httpx.post(
        hard.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {DEMO_KEY}", "x-junk": "j" * 20_000},
        json={},
    )
    assert r.status_code == 431 and r.json()["error"]["code"] == "request_header_fields_too_large"


def test_slow_client_is_disconnected(hard):
    s = socket.create_connection(("127.0.0.1", hard.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # ... and never finishes the headers
    s.settimeout(5)
    start = time.time()
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    assert time.time() - start < 4  # --request-timeout 1
    assert data == b"" or data.startswith(b"HTTP/1.1 408")
    s.close()


def test_keys_in_the_url_are_refused_and_not_logged(hard):
    r = httpx.get(hard.url + f"/v1/models?api_key={DEMO_KEY}")
    assert r.status_code == 400 and "never in the URL" in r.json()["error"]["message"]
    assert DEMO_KEY not in r.text
    r = httpx.get(hard.url + f"/v1/models?api_key={DEMO_KEY}", headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert r.status_code == 400  # even with a header: the URL copy has leaked
    hard.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "x"}]})
    time.sleep(0.3)
    assert DEMO_KEY not in hard.logs() and DEMO_KEY not in hard.usage_log.read_text()


@pytest.mark.parametrize(
    "url",
    [
        "/v1/models?API_KEY=abc",
        "/v1/models?apiKey=abc",
        "/v1/models?Api-Key=abc",
        "/v1/models?x-api-key=abc",
        "/v1/models?Authorization=Bearer%20abc",
        "/v1/models?ACCESS_TOKEN=abc",
        "/v1/models?Key=",
        f"/v1/models?q={DEMO_KEY}",
        f"/v1/models?{DEMO_KEY}",
        f"/v1/models?q={DEMO_KEY.replace('s', '%2573', 1)}",
        f"/v1/models/{DEMO_KEY}",
        "/console/api/services?token=abc",
        f"/console/api/services?x={DEMO_KEY}",
        "/console/?apikey=abc",
        "/healthz?key=abc",
    ],
)
def test_key_ish_query_parameters_and_key_values_are_refused_on_every_path(hard, url):
    r = httpx.get(hard.url + url, headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert r.status_code == 400, (url, r.status_code, r.text)
    e = r.json()["error"]
    assert e["code"] == "api_key_in_url" and e["type"] == "invalid_request_error"
    assert DEMO_KEY not in r.text and "abc" not in r.text


def test_ordinary_query_parameters_still_pass(hard):
    r = httpx.get(hard.url + "/v1/models?limit=5&monkey=1&keyboard=x", headers={"authorization": f"Bearer {DEMO_KEY}"})
    assert r.status_code == 200


def _read_all(s: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or `limit` seconds pass), and when it closed."""
    s.settimeout(limit)
    start, data = time.time(), b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data, time.time() - start


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickling_request_is_cut_at_the_whole_request_deadline(hard, part):
    """A header line (or a body byte) every 0.4 s keeps Sanic's idle timer happy forever; the request as a whole
    must still arrive within --request-timeout (1 s here)."""
    s = socket.create_connection(("127.0.0.1", hard.port))
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + DEMO_KEY.encode() + b"\r\n"
    )
    if part == "body":
        head += b"Content-Length: 1000\r\n\r\n"
    s.sendall(head)
    s.settimeout(0.4)
    start, data, closed = time.time(), b"", False
    while time.time() - start < 6 and not closed:
        try:
            chunk = s.recv(4096)
            data += chunk
            closed = not chunk
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
        if not closed:
            try:
                s.sendall(b"X-Slow: 1\r\n" if part == "headers" else b" ")
            except OSError:
                closed = True
    s.close()
    assert closed and time.time() - start < 4, "the trickling request was never cut off"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]


def test_a_nul_byte_in_the_url_leaves_no_key_in_the_logs(hard):
    secret = "sk-ms-nul-byte-secret-1234567890"
    for line in (
        f"GET /v1/models?api_key={secret}\x00x HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        f"GET /v1/models?api_key={secret}\xff HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"),
        f"GET /v1/models?api_key={secret} HTTP/1.1\r\nHost: x\x00\r\n\r\n".encode(),
    ):
        s = socket.create_connection(("127.0.0.1", hard.port))
        s.sendall(line)
        data, _ = _read_all(s, 5)
        s.close()
        assert data.startswith((b"HTTP/1.1 400", b"HTTP/1.1 401")), data[:200]
        assert secret.encode() not in data
    hard.post("/v1/chat/completions", {"model": SVC, "messages": [{"role": "user", "content": "flush"}]})
    time.sleep(0.3)
    logs = hard.logs()
    assert secret not in logs and "Traceback" not in logs, logs[-3000:]


# -- strict HTTP/1.1 framing (RFC 9112): what a front proxy might read differently is refused, and the connection
# closed, so no byte of it can be taken for the next request (request smuggling) ------------------------------------
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def _exchange(port: int, data: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    out, _ = _read_all(s, 5)
    s.close()
    return out


def _chunked(body_part: bytes, extra_headers: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + DEMO_KEY.encode() + b"\r\n" + extra_headers + b"\r\n" + body_part
    )


BODY = b'{"model": "u-8105f7322477/test", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}'


@pytest.mark.parametrize(
    "request_bytes",
    [
        # chunk sizes must be 1*HEXDIG: Python's int(x, 16) also takes "0x", "+", " " and "_"
        _chunked(b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY), b"Transfer-Encoding: chunked\r\n"),
        _chunked(b"%x \r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY), b"Transfer-Encoding: chunked\r\n"),
        _chunked(b" %x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY), b"Transfer-Encoding: chunked\r\n"),
        _chunked(b"%x\r\n%s\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY, b"1" * 20), b"Transfer-Encoding: chunked\r\n"),
        # chunk data must end with CRLF: the two bytes after it were skipped unread
        _chunked(b"%x\r\n%sXX0\r\n\r\n" % (len(BODY), BODY), b"Transfer-Encoding: chunked\r\n"),
        # no whitespace between a field name and its colon: "Transfer-Encoding :" was an unknown header, so the body
        # (here a second request) was parsed as the next request
        _chunked(SMUGGLED, b"Transfer-Encoding : chunked\r\n"),
        _chunked(SMUGGLED, b"Content-Length\t: 0\r\n"),
        # a bare CR or LF inside a field value, obsolete line folding, an empty field name
        _chunked(b"", b"X-Note: a\rTransfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
        _chunked(b"", b"X-Note: a\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
        _chunked(b"", b"X-Note: a\r\n folded\r\nContent-Length: 0\r\n"),
        _chunked(b"", b": nameless\r\nContent-Length: 0\r\n"),
    ],
    ids=[
        "0x-size",
        "size-trailing-space",
        "size-leading-space",
        "size-too-long",
        "data-without-crlf",
        "space-before-colon",
        "tab-before-colon",
        "bare-cr-in-value",
        "bare-lf-in-value",
        "obs-fold",
        "empty-name",
    ],
)
def test_ambiguous_framing_is_refused_and_the_connection_closed(hard, request_bytes):
    out = _exchange(hard.port, request_bytes + SMUGGLED)
    assert out.startswith(b"HTTP/1.1 400 "), out[:300]
    assert out.count(b"HTTP/1.1 ") == 1, out  # nothing after the refusal was read as a request
    assert b'"error"' in out and b"invalid_request_error" in out


def test_well_formed_chunked_bodies_still_pass(hard):
    body = BODY[:10], BODY[10:]
    chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in body) + b"0\r\n\r\n"
    out = _exchange(hard.port, _chunked(chunked, b"Transfer-Encoding: chunked\r\nConnection: close\r\n"))
    assert out.startswith(b"HTTP/1.1 200 "), out[:300]
    out = _exchange(
        hard.port, _chunked(b"%X\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY), b"Transfer-Encoding: chunked\r\n") + SMUGGLED
    )
    assert out.startswith(b"HTTP/1.1 200 ") and out.count(b"HTTP/1.1 200 ") == 2, out[:300]  # pipelining works


@pytest.mark.e2e
def test_connections_past_the_cap_get_503_and_are_closed(tmp_path):
    t = StandInThread("chat").start()
    g = Gateway(tmp_path, {SVC: [f"127.0.0.1:{t.server.port}"]}, args=("--max-connections", "4")).start()
    held = []
    try:
        while len(held) < 4:  # four keep-alive connections, each proven open by an answer
            s = socket.create_connection(("127.0.0.1", g.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            if s.recv(4096).startswith(b"HTTP/1.1 200 "):
                held.append(s)
            else:  # the harness's start-up probe is still being closed: it counts until then
                s.close()
                time.sleep(0.05)
        out = _exchange(g.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in out and b"retry-after: 1" in out
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the open ones are still served
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200 ")
        held.pop().close()
        assert g.wait_until(
            lambda: _exchange(g.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
                b"HTTP/1.1 200 "
            ),
            10,
        )
        metrics = httpx.get(g.internal_url + "/metrics").text
        refused = next(line for line in metrics.splitlines() if line.startswith("modelsvc_connections_refused_total"))
        assert float(refused.split()[1]) >= 1
    finally:
        for s in held:
            s.close()
        g.stop()
        t.stop()
