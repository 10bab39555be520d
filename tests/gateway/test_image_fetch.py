"""Image URLs: the gateway fetches allowed ones itself and sends the engine bytes; everything else is a 400."""

import asyncio
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from devtools.standin.testing import StandInThread
from gateway import image_fetch
from gateway.errors import InvalidRequest
from gateway.image_fetch import ImageBytes, ImageFetcher, ImagePolicy

from .harness import OTHER_KEY, Gateway

SVC = "u-3f9a2c7e51d0/receipts"  # vision-chat
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def inline_images(urls, policy):
    """The fetcher of a gateway process, for one request."""

    async def run():
        fetcher = ImageFetcher(policy)
        held = ImageBytes(fetcher)
        try:
            return await fetcher.inline(urls, held)
        finally:
            held.release()
            await fetcher.close()
            assert fetcher.in_flight == 0

    return run()


class _Images(BaseHTTPRequestHandler):
    hosts: ClassVar[list] = []

    def do_GET(self):
        _Images.hosts.append(self.headers.get("host"))
        routes = {
            "/cat.png": (200, "image/png", PNG),
            "/page": (200, "text/html", b"<html>"),
            "/big": (200, "image/png", b"x" * 200_000),
            "/redirect": (302, "text/plain", b""),
        }
        if self.path == "/slow":
            time.sleep(4)
        status, ctype, body = routes.get(self.path, (200, "image/png", PNG))
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        if status == 302:
            self.send_header("location", "/cat.png")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_host(e2e):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def gateways(e2e, tmp_path_factory):
    engine = StandInThread("vision").start()
    ep = {SVC: [f"127.0.0.1:{engine.server.port}"]}
    strict = Gateway(tmp_path_factory.mktemp("strict"), ep).start()
    local = Gateway(
        tmp_path_factory.mktemp("local"),
        ep,
        args=("--image-allow-networks", "127.0.0.0/8", "--image-max-bytes", "100000", "--image-timeout", "1.5"),
    ).start()
    yield strict, local
    strict.stop()
    local.stop()
    engine.stop()


def ask(g, url):
    return g.post(
        "/v1/chat/completions",
        {
            "model": SVC,
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        },
        key=OTHER_KEY,
    )


def refused(r, why):
    assert r.status_code == 400, r.text
    e = r.json()["error"]
    assert e["code"] == "invalid_image_url" and e["param"] == "messages" and why in e["message"], e
    return e


@pytest.mark.parametrize(
    "url,why",
    [
        ("http://{host}/cat.png", "not a public address"),  # loopback: only when configured
        ("http://localhost:{port}/cat.png", "not a public address"),  # by name too (resolved first)
        ("http://169.254.169.254/latest/meta-data/", "not a public address"),  # cloud metadata: link-local
        ("http://[::ffff:127.0.0.1]:{port}/cat.png", "not a public address"),
        ("http://10.0.0.7:8001/x.png", "not a public address"),
        ("http://user:pw@{host}/cat.png", "credentials"),
    ],
)
def test_private_addresses_are_refused_by_default(gateways, image_host, url, why):
    strict, _ = gateways
    _Images.hosts.clear()
    refused(ask(strict, url.format(host=image_host, port=image_host.split(":")[1])), why)
    assert _Images.hosts == []  # never connected


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/"])
def test_other_schemes_are_refused(gateways, url):
    r = ask(gateways[0], url)
    assert r.status_code == 400 and "image_url.url" in r.json()["error"]["param"]


def test_allowed_url_is_fetched_and_the_engine_gets_the_bytes(gateways, image_host):
    _, local = gateways
    r = ask(local, f"http://{image_host}/cat.png")
    assert r.status_code == 200, r.text
    # the stand-in names a data: URL's image by the hash of its bytes (of an http URL: by the URL string)
    assert r.json()["choices"][0]["message"]["content"].startswith("image-" + hashlib.sha256(PNG).hexdigest()[:8])


@pytest.mark.parametrize(
    "path,why",
    [
        ("/page", "content-type must be image/*"),
        ("/big", "larger than 100000 bytes"),
        ("/redirect", "redirects are not followed"),
        ("/slow", "within 1.5s"),
    ],
)
def test_bounds_on_what_is_fetched(gateways, image_host, path, why):
    t = time.monotonic()
    refused(ask(gateways[1], f"http://{image_host}{path}"), why)
    assert time.monotonic() - t < 4


def test_configured_networks_do_not_open_others(gateways):
    refused(ask(gateways[1], "http://169.254.169.254/latest/meta-data/"), "not a public address")


def test_data_urls_pass_within_the_size_bound(gateways):
    ok = "data:image/png;base64," + "QUFB" * 100
    assert ask(gateways[1], ok).status_code == 200
    refused(ask(gateways[1], "data:image/png;base64," + "QUFB" * 40_000), "larger than")


def test_the_checked_address_is_the_one_connected_to(image_host, monkeypatch):
    """DNS rebinding: the name is resolved once, checked, and the connection goes to that address with the original
    Host header; a name with any non-public address is refused."""
    port = int(image_host.split(":")[1])
    answers = {"images.example": ["127.0.0.1"], "mixed.example": ["127.0.0.1", "10.1.2.3"]}

    async def fake_resolve(host, p):
        return answers[host]

    monkeypatch.setattr(image_fetch, "resolve", fake_resolve)
    policy = ImagePolicy(allow_networks=("127.0.0.0/8",))
    _Images.hosts.clear()
    (url,) = asyncio.run(inline_images([f"http://images.example:{port}/cat.png"], policy))
    assert url.startswith("data:image/png;base64,") and _Images.hosts == [f"images.example:{port}"]
    with pytest.raises(InvalidRequest, match="not a public address"):
        asyncio.run(inline_images([f"http://mixed.example:{port}/cat.png"], policy))
    with pytest.raises(InvalidRequest, match="allow-list"):
        asyncio.run(
            inline_images(
                [f"http://images.example:{port}/cat.png"],
                ImagePolicy(allow_networks=("127.0.0.0/8",), allow_hosts=("cdn.example",)),
            )
        )


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254 (cloud metadata)
        "2002:a00:7::1",  # 6to4 of 10.0.0.7
        "fec0::1",  # site-local (deprecated, still routed inside some networks)
        "fed0:1::5",  # site-local too (fec0::/10)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::a00:7",  # local-use NAT64 (RFC 8215)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo: a tunnel to an address it hides
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::ffff:a9fe:a9fe",  # IPv4-mapped metadata
    ],
)
def test_ipv6_forms_that_embed_an_internal_ipv4_are_refused(image_host, monkeypatch, address):
    """6to4, NAT64, Teredo and IPv4-compatible addresses carry an IPv4 address inside; Python's is_global says
    True for some of them (2002::/16, fec0::/10). The embedded address is checked, or the form refused."""

    async def fake_resolve(host, p):
        return [address]

    monkeypatch.setattr(image_fetch, "resolve", fake_resolve)
    _Images.hosts.clear()
    with pytest.raises(InvalidRequest, match="not a public address"):
        asyncio.run(inline_images(["http://images.example/cat.png"], ImagePolicy()))
    assert _Images.hosts == []


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "2606:4700::1111", "8.8.8.8"])
def test_ipv6_forms_of_public_addresses_stay_public(address):
    assert image_fetch._public(image_fetch.ipaddress.ip_address(address), [])
