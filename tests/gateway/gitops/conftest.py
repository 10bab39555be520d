"""The console's actions against the fake GitHub (fake_github.py), in process: the gateway's ASGI app and the fake's,
joined by httpx transports (no socket, no process)."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..harness import example_catalog
from ..inproc import InProcessGateway
from .fake_github import FakeGitHub

OWNER, REPO = "acme", "models"
APP_ID = 424242


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """(private PEM, public PEM) of the test App."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def make_fake(app_key, **kw) -> FakeGitHub:
    return FakeGitHub(OWNER, REPO, {"services.yaml": example_catalog()}, app_id=APP_ID, public_key=app_key[1], **kw)


def gitops_settings(tmp_path, app_key, **kw) -> dict:
    key_file = tmp_path / "app.pem"
    key_file.write_text(app_key[0])
    return {
        "github_repo": f"{OWNER}/{REPO}",
        "github_app_id": str(APP_ID),
        "github_app_key_file": str(key_file),
        "github_api_url": "https://api.github.com/",
        "github_poll_s": 0.0,
        **kw,
    }


async def wait_enabled(gw: InProcessGateway, key: str, want: bool = True) -> dict:
    assert gw.client is not None
    for _ in range(200):
        r = await gw.client.get("/console/api/actions", headers={"authorization": f"Bearer {key}"})
        body = r.json()
        if body["enabled"] is want or ("reason" in body and "checking" not in body["reason"]):
            return body
        await asyncio.sleep(0.02)
    return body


@pytest.fixture
def fake(app_key) -> FakeGitHub:
    return make_fake(app_key)
