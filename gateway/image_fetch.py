"""Image URLs in vision requests: the gateway fetches them itself and hands the engine bytes, never a URL.

An engine told to fetch `http://169.254.169.254/…` or `http://10.0.0.5:8001/…` would reach, from inside the cluster,
what callers must not (SSRF). So, before any engine sees a request:

* `data:image/…` URLs pass as they are, within `max_bytes`;
* `http(s)://` URLs are fetched here: the host must be on the allow-list when one is configured; its name is resolved
  once and EVERY address it resolves to must be public (not private, loopback, link-local, multicast, reserved,
  site-local, …; an IPv4 address embedded in an IPv6 one — IPv4-mapped, 6to4, NAT64 — is checked itself; Teredo and
  IPv4-compatible forms are refused) unless inside a configured network (loopback only when configured, for local
  tests); the connection goes to the address that was checked (the name is not resolved again, so DNS rebinding
  cannot swap in another address), with the original Host header and TLS server name; no redirects, no proxies from
  the environment, no connection reuse; each fetch within `timeout_s`, at most `max_bytes`, and the answer must say
  `content-type: image/*`;
* anything else (`file:`, `ftp:`, `gopher:` …) is refused.

One caller must not be able to stall the event loop or the memory of the others (docs/reliability.md, resource
bounds per request), so the counts are checked before anything is fetched (`check`: at most `max_per_request`
images, `max_request_bytes` in all) and the process's `ImageFetcher` bounds the work: one shared HTTP client (a new
client per URL cost a TLS context each: 500 URLs froze the loop for seconds), at most `concurrency_per_request`
fetches of one request and `concurrency` of all requests at once, and a byte budget: the image bytes all requests
hold at once (fetched, until their request is done) stay within `budget_bytes`; a fetch that would exceed it is
refused with 503 and a Retry-After instead of waiting for memory. The base64 text is built as the bytes arrive, in
slices, so no single step of the event loop encodes a whole image.

The fetched bytes reach the engine as a `data:` URL in `image_url_input` (what TensorRT-LLM's multimodal
preprocessing decodes itself). `image_bytes_input` is not used: it takes decoded pixels, which would mean an image
decoder in the gateway and the model's own resizing rules.

Every refusal is a 400 that names the message part and says why, without echoing what the host answered.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import anyio
import httpx

from .errors import ImagesBusy, InvalidRequest

log = logging.getLogger("gateway.image_fetch")
MiB = 1024 * 1024


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int = 20 * MiB  # OpenAI's own limit per image
    timeout_s: float = 10.0  # per image, from the moment its fetch may start
    allow_hosts: tuple[str, ...] = ()  # when set: only these host names (exact, lowercase)
    allow_networks: tuple[str, ...] = ()  # non-public networks that may be fetched anyway (e.g. 127.0.0.0/8 locally)
    max_per_request: int = 16  # image parts in one request (URLs and data: URLs alike)
    max_request_bytes: int = 50 * MiB  # all images of one request (OpenAI's payload limit)
    concurrency_per_request: int = 4  # fetches of one request at once
    concurrency: int = 32  # fetches of all requests of this process at once
    budget_bytes: int = 256 * MiB  # fetched image bytes all requests of this process hold at once


def _refuse(index: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"image {index + 1} of the request: {why}", param="messages", code="invalid_image_url")


# 64:ff9b::/96 (RFC 6052) maps the whole IPv4 space; 64:ff9b:1::/48 (RFC 8215) is for a network's own translators.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | Literal[False] | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, NAT64), False for forms that are refused
    outright (Teredo tunnels to an address it obfuscates, local-use NAT64, IPv4-compatible), None for none."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    if ip.sixtofour is not None:
        return ip.sixtofour  # 2002:7f00:1:: reaches 127.0.0.1 through a 6to4 relay
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None or ip in _NAT64_LOCAL or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return False
    return None


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is False:
            return any(ip in net for net in allowed)
        if inner is not None:
            ip = inner
        elif ip.is_site_local:  # fec0::/10: deprecated, yet routed inside some networks; is_global says True
            return any(ip in net for net in allowed)
    if any(ip in net for net in allowed):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


async def resolve(host: str, port: int) -> list[str]:
    """Addresses of host (one DNS answer, in order). A seam for tests."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # a host name resolves to AF_INET/AF_INET6 records, whose sockaddr starts with the address as a string
    return [addr for *_, sockaddr in infos if isinstance(addr := sockaddr[0], str)]


def _data_size(url: str) -> int:
    return len(url.partition(",")[2]) * 3 // 4


def check(urls: Sequence[str], policy: ImagePolicy) -> None:
    """What can be refused before any work: the number of images and the size of those sent inline."""
    if len(urls) > policy.max_per_request:
        raise InvalidRequest(
            f"the request has {len(urls)} images; at most {policy.max_per_request} are accepted per request",
            param="messages",
            code="too_many_images",
        )
    inline = 0
    for i, url in enumerate(urls):
        if url[:5].lower() == "data:":
            header, sep, _ = url.partition(",")
            if not sep or not header.startswith("data:image/"):
                raise _refuse(i, "a data: URL must be data:image/<type>[;base64],<data>")
            size = _data_size(url)
            if size > policy.max_bytes:
                raise _refuse(i, f"the image is larger than {policy.max_bytes} bytes")
            inline += size
    if inline > policy.max_request_bytes:
        raise InvalidRequest(
            f"the request's images are larger than {policy.max_request_bytes} bytes in all",
            param="messages",
            code="images_too_large",
        )


class ImageBytes:
    """The image bytes one request holds against the process's budget, given back when the request is done."""

    def __init__(self, fetcher: ImageFetcher | None = None):
        self.fetcher = fetcher
        self.held = 0  # against the budget
        self.total = 0  # all image bytes of the request (inline ones too): max_request_bytes

    def take(self, n: int, index: int, policy: ImagePolicy) -> None:
        self.total += n
        if self.total > policy.max_request_bytes:
            raise InvalidRequest(
                f"the request's images are larger than {policy.max_request_bytes} bytes in all",
                param="messages",
                code="images_too_large",
            )
        fetcher = self.fetcher
        assert fetcher is not None
        if fetcher.in_flight + n > policy.budget_bytes:
            fetcher.refused += 1
            raise ImagesBusy(
                "the gateway is holding as many image bytes as it may right now; retry shortly",
                headers={"retry-after": "1"},
            )
        fetcher.in_flight += n
        fetcher.peak = max(fetcher.peak, fetcher.in_flight)
        self.held += n

    def release(self) -> None:
        if self.fetcher is not None and self.held:
            self.fetcher.in_flight -= self.held
            self.held = 0


class ImageFetcher:
    """The process's image fetching: one HTTP client, the concurrency caps and the byte budget (see the module)."""

    def __init__(self, policy: ImagePolicy):
        self.policy = policy
        self.in_flight = 0  # bytes held by requests now (ImageBytes)
        self.peak = 0  # the most ever held at once
        self.refused = 0  # requests refused for the budget
        self._slots = asyncio.Semaphore(policy.concurrency)
        # Made once, here (at start): a client's TLS context costs tens of milliseconds of CPU. No keep-alive: a
        # connection is made for one Host and its checked address, never reused for another.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=policy.timeout_s,
            limits=httpx.Limits(max_connections=policy.concurrency, max_keepalive_connections=0),
        )

    async def start(self) -> None:
        """In the running loop, before serving: the HTTP stack loads its async backend on first use (anyio's,
        tens of milliseconds of imports), which must not happen inside a caller's request."""
        anyio.Event()

    async def close(self) -> None:
        await self._client.aclose()

    async def inline(self, urls: Sequence[str], held: ImageBytes) -> list[str]:
        """Each image URL as a data: URL with the image's bytes, or a 400 (503 when the byte budget is spent).
        `held` accounts for the bytes until the caller releases it (when the request is done)."""
        policy = self.policy
        check(urls, policy)
        per_request = asyncio.Semaphore(policy.concurrency_per_request)
        for url in urls:
            if url[:5].lower() == "data:":
                held.total += _data_size(url)

        async def one(i: int, url: str) -> str:
            if url[:5].lower() == "data:":
                return url
            async with per_request:
                try:
                    async with asyncio.timeout(policy.timeout_s):
                        async with self._slots:
                            return await self._fetch(url, i, held)
                except TimeoutError:
                    raise _refuse(i, f"the image could not be fetched within {policy.timeout_s:g}s") from None

        tasks = [asyncio.ensure_future(one(i, u)) for i, u in enumerate(urls)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # the first refusal answers; the other fetches stop
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _fetch(self, url: str, index: int, held: ImageBytes) -> str:
        policy = self.policy
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            raise _refuse(index, "image URLs must be https://, http:// or data:image/ URLs")
        if parts.username is not None or parts.password is not None:
            raise _refuse(index, "image URLs must not carry credentials")
        if policy.allow_hosts and host not in policy.allow_hosts:
            raise _refuse(index, "this host is not on the gateway's image host allow-list")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise _refuse(index, "the URL's port is invalid") from None
        allowed = [ipaddress.ip_network(n, strict=False) for n in policy.allow_networks]
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError):
            raise _refuse(index, "the image host's name does not resolve") from None
        ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        if not ips or not all(_public(ip, allowed) for ip in ips):
            log.warning("image URL refused: %s resolves to a non-public address (%s)", host, ", ".join(map(str, ips)))
            raise _refuse(index, "the image host is not a public address")
        ip = ips[0]
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        target = f"{scheme}://{literal}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        encoded: list[str] = []
        try:
            async with self._client.stream(
                "GET",
                target,
                headers={"host": host_header, "accept": "image/*", "accept-encoding": "identity"},
                extensions={"sni_hostname": host},
            ) as r:
                if r.status_code != 200:
                    raise _refuse(
                        index,
                        f"the image host answered HTTP {r.status_code}"
                        + (" (redirects are not followed)" if 300 <= r.status_code < 400 else ""),
                    )
                ctype = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                # a plain image/<subtype> only: it becomes the data: URL's header, so no ';' or ',' may slip in
                if (
                    not ctype.startswith("image/")
                    or not ctype[6:].replace("+", "").replace("-", "").replace(".", "").isalnum()
                ):
                    raise _refuse(index, "the URL is not an image (content-type must be image/*)")
                try:
                    announced = int(r.headers.get("content-length") or 0)
                except ValueError:
                    announced = 0
                if announced > policy.max_bytes:
                    raise _refuse(index, f"the image is larger than {policy.max_bytes} bytes")
                size, rest = 0, b""
                async for chunk in r.aiter_bytes():  # decoded: the bounds hold after decompression
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise _refuse(index, f"the image is larger than {policy.max_bytes} bytes")
                    held.take(len(chunk), index, policy)
                    data = rest + chunk
                    cut = len(data) - len(data) % 3  # base64 of whole 3-byte groups; the rest waits for more
                    encoded.append(base64.b64encode(data[:cut]).decode("ascii"))
                    rest = data[cut:]
                encoded.append(base64.b64encode(rest).decode("ascii"))
        except httpx.HTTPError as e:
            log.warning("image URL %s (%s) could not be fetched: %s", host, ip, e)
            raise _refuse(index, "the image could not be fetched") from None
        return f"data:{ctype};base64," + "".join(encoded)
