from infra.cache import engine_cache_key, engine_uri, service_cache_key
from infra.settings import Settings


def key(catalog, access, settings: Settings | None = None):
    return service_cache_key(catalog, catalog.service(access), settings or Settings())


def test_key_is_stable_and_short(small, make_catalog, small_text):
    assert key(small, "alice/chat") == key(make_catalog(small_text), "alice/chat")
    assert len(key(small, "alice/chat")) == 16


def test_same_model_same_gpu_shares_key(small, make_catalog, small_text):
    other = make_catalog(small_text.replace("gpu_type: l4", "gpu_type: h100"))
    # bob/chat on pool l4 whose gpu_type is now h100: same engine as alice/chat on h100
    assert key(other, "bob/chat") == key(other, "alice/chat")
    assert key(small, "bob/chat") != key(small, "alice/chat")  # different GPU type


def test_model_changes_alter_the_key(small, make_catalog, small_text):
    base = key(small, "alice/chat")
    for old, new in [
        ("s3://example-models/small", "s3://example-models/small-v2"),
        ("    gpus: 1\n", "    gpus: 2\n"),
        ("  small:\n    source", "  small:\n    dtype: float16\n    source"),
    ]:
        changed = make_catalog(small_text.replace(old, new, 1))
        assert key(changed, "alice/chat") != base, (old, new)
    assert key(small, "alice/chat", Settings(triton_version="25.11")) != base


def test_instance_and_pool_size_changes_keep_the_key(small, make_catalog, small_text):
    base = key(small, "alice/chat")
    changed = make_catalog(small_text.replace("instances: 3", "instances: 1").replace("max_nodes: 4", "max_nodes: 5"))
    assert key(changed, "alice/chat") == base


def test_engine_uri():
    assert engine_uri(Settings(engine_cache_uri="s3://b/p/"), "abc") == "s3://b/p/engines/abc"


def test_key_function_directly(small):
    m = small.models["small"]
    assert engine_cache_key(m, "h100", "25.10") != engine_cache_key(m, "a100", "25.10")
