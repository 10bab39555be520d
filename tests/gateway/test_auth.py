import hashlib

import pytest

from gateway.auth import KeyRing, authorize
from gateway.errors import AuthenticationError, ModelNotFound
from modelsvc.catalog import Key, Service

KEY = "sk-ms-abc"
RING = KeyRing([Key(id="k1", owner="u-a", sha256=hashlib.sha256(KEY.encode()).hexdigest())])
SVC = Service(name="T", access_name="u-a/t", id="ms-000000000001", model="m", pool="p")


def test_bearer_lookup():
    assert RING.authenticate(f"Bearer {KEY}").id == "k1"
    assert RING.authenticate(f"bearer   {KEY}  ").id == "k1"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", f"Basic {KEY}", "Bearer sk-ms-abd", KEY])
def test_refusals(header):
    with pytest.raises(AuthenticationError):
        RING.authenticate(header)


def test_other_owner_is_indistinguishable_from_unknown():
    key = RING.authenticate(f"Bearer {KEY}")
    assert authorize(key, SVC, "u-a/t") is SVC
    other = Key(id="k2", owner="u-b", sha256="0" * 64)
    with pytest.raises(ModelNotFound) as a:
        authorize(other, SVC, "u-a/t")
    with pytest.raises(ModelNotFound) as b:
        authorize(key, None, "u-a/t")
    assert a.value.message == b.value.message
