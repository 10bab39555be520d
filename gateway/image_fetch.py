"""Image URLs in vision requests: the gateway fetches them itself and hands the engine bytes, never a URL.

An engine told to fetch `http://169.254.169.254/…` or `http://10.0.0.5:8001/…` would reach, from inside the cluster,
what callers must not (SSRF). So, before any engine sees a request:

* `data:image/…` URLs pass as they are, within `max_bytes`;
* `http(s)://` URLs are fetched here: the host must be on the allow-list when one is configured; its name is resolved
  once and EVERY address it resolves to must be public (not private, loopback, link-local, multicast, reserved, …)
  unless inside a configured network (loopback only when configured, for local tests); the connection goes to the
  address that was checked (the name is not resolved again, so DNS rebinding cannot swap in another address), with
  the original Host header and TLS server name; no redirects, no proxies from the environment; the whole fetch within
  `timeout_s`, at most `max_bytes`, and the answer must say `content-type: image/*`;
* anything else (`file:`, `ftp:`, `gopher:` …) is refused.

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
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from .errors import InvalidRequest

log = logging.getLogger("gateway.image_fetch")


@dataclass(frozen=True)
class ImagePolicy:
    max_bytes: int = 20 * 1024 * 1024  # OpenAI's own limit per image
    timeout_s: float = 10.0
    allow_hosts: tuple[str, ...] = ()  # when set: only these host names (exact, lowercase)
    allow_networks: tuple[str, ...] = ()  # non-public networks that may be fetched anyway (e.g. 127.0.0.0/8 locally)


def _refuse(index: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"image {index + 1} of the request: {why}", param="messages", code="invalid_image_url")


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    if any(ip in net for net in allowed):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


async def resolve(host: str, port: int) -> list[str]:
    """Addresses of host (one DNS answer, in order). A seam for tests."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _data_url(url: str, policy: ImagePolicy, index: int) -> str:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:image/"):
        raise _refuse(index, "a data: URL must be data:image/<type>[;base64],<data>")
    if len(payload) * 3 // 4 > policy.max_bytes:
        raise _refuse(index, f"the image is larger than {policy.max_bytes} bytes")
    return url


async def _fetch(url: str, policy: ImagePolicy, index: int) -> str:
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
        async with asyncio.timeout(policy.timeout_s):
            addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        raise _refuse(index, "the image host's name does not resolve") from None
    ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not ips or not all(_public(ip, allowed) for ip in ips):
        log.warning("image URL refused: %s resolves to a non-public address (%s)", host, ", ".join(map(str, ips)))
        raise _refuse(index, "the image host is not a public address")
    ip = ips[0]
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    target = f"{scheme}://{literal}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    body = bytearray()
    try:
        async with (
            asyncio.timeout(policy.timeout_s),
            httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=policy.timeout_s) as client,
        ):
            async with client.stream(
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
                if int(r.headers.get("content-length") or 0) > policy.max_bytes:
                    raise _refuse(index, f"the image is larger than {policy.max_bytes} bytes")
                async for chunk in r.aiter_bytes():  # decoded: the bound holds after decompression
                    body += chunk
                    if len(body) > policy.max_bytes:
                        raise _refuse(index, f"the image is larger than {policy.max_bytes} bytes")
    except TimeoutError:
        raise _refuse(index, f"the image could not be fetched within {policy.timeout_s:g}s") from None
    except httpx.HTTPError as e:
        log.warning("image URL %s (%s) could not be fetched: %s", host, ip, e)
        raise _refuse(index, "the image could not be fetched") from None
    return f"data:{ctype};base64," + base64.b64encode(bytes(body)).decode()


async def inline_images(urls, policy: ImagePolicy) -> list[str]:
    """Each image URL as a data: URL with the image's bytes (fetched concurrently), or a 400."""

    async def one(i: int, url: str) -> str:
        if url[:5].lower() == "data:":
            return _data_url(url, policy, i)
        return await _fetch(url, policy, i)

    tasks = [asyncio.ensure_future(one(i, u)) for i, u in enumerate(urls)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:  # the first refusal answers; the other fetches stop
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
