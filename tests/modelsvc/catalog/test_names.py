import re

import pytest

from infra.settings import Settings
from modelsvc.catalog.names import (
    MAX_NAME,
    engine_job_name,
    headless_service_host,
    k8s_name,
    namespace_of,
    owner_namespace,
    placement_from_env,
    service_names,
    triton_grpc_target,
)

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_plain_name_is_readable():
    assert k8s_name("u-8105f7322477/test") == "u-8105f7322477--test"


@pytest.mark.parametrize(
    "access",
    [
        "u-8105f7322477/test",
        "a/b",
        "1abc/x",
        "a--b/c",
        "a/b--c",
        "x" * 63 + "/" + "y" * 63,
        "a---b/c-d",
        "9/9",
        "team-search/query-rewriter",
    ],
)
def test_names_are_dns1035_labels_with_room_for_suffixes(access):
    name = k8s_name(access)
    assert DNS1035.match(name), name
    assert len(name) <= MAX_NAME
    assert DNS1035.match(engine_job_name("f" * 16)) and len(engine_job_name("f" * 16)) <= 63


def test_stable_and_independent_of_other_services():
    assert k8s_name("alice/chat") == k8s_name("alice/chat") == "alice--chat"


@pytest.mark.parametrize(
    "a,b",
    [
        ("a-b/c", "a/b-c"),  # '-' vs '/'
        ("a--b/c", "a/b--c"),  # '--' inside a part
        ("a/b--c", "a--b/c"),
        ("x" * 60 + "/a", "x" * 60 + "/b"),  # long names that truncate to the same prefix
        ("1a/b", "x-1a/b"),  # digit start gets a prefix
        ("1a/b", "x/1a--b"),
    ],
)
def test_collision_free(a, b):
    assert k8s_name(a) != k8s_name(b)


def test_collision_free_over_many_names():
    parts = ["a", "b", "a-b", "a--b", "b-a", "1", "1-a", "x-1", "a-1"]
    names = {f"{o}/{n}": k8s_name(f"{o}/{n}") for o in parts for n in parts}
    assert len(set(names.values())) == len(names)


def test_rejects_non_access_names():
    for bad in ["abc", "A/b", "a/", "/b", "a/b/c", "-a/b"]:
        with pytest.raises(ValueError):
            k8s_name(bad)


def test_service_names_covers_catalog(example):
    names = service_names(example)
    assert set(names) == {s.access_name for s in example.services}
    assert len(set(names.values())) == len(names)


def test_namespaces():
    shared = Settings()
    per_owner = Settings(namespace_mode="per-owner")
    assert namespace_of("alice/chat", shared) == "modelsvc"
    assert namespace_of("alice/chat", per_owner) == "modelsvc-alice"
    long = owner_namespace("o" * 63)
    assert len(long) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", long)
    assert owner_namespace("a--b") != owner_namespace("a-b")


def test_headless_service_host(example):
    svc = example.service("u-8105f7322477/test")
    assert headless_service_host(svc) == "u-8105f7322477--test.modelsvc.svc.cluster.local"
    assert (
        headless_service_host("u-8105f7322477/test", Settings(namespace_mode="per-owner", cluster_domain="c.x"))
        == "u-8105f7322477--test.modelsvc-u-8105f7322477.svc.c.x"
    )
    assert triton_grpc_target(svc).endswith(".svc.cluster.local:8001")


def test_placement_from_env_round_trip():
    s = placement_from_env({"MODELSVC_NAMESPACE": "ml", "MODELSVC_NAMESPACE_MODE": "per-owner"})
    assert (s.namespace, s.namespace_mode, s.cluster_domain) == ("ml", "per-owner", "cluster.local")
    assert headless_service_host("alice/chat", s) == "alice--chat.ml-alice.svc.cluster.local"
