"""Every rule of the loader: the exact message, line and column, and that all problems come at once."""

import pydantic
import pytest

from modelsvc.catalog import CatalogError, Task, load, loads

from .samples import DIGEST_A, DIGEST_B, KEY_A, VALID, replace


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as e:
        loads(text)
    return [str(p) for p in e.value.problems]


def test_valid_sample_loads_into_typed_objects():
    c = loads(VALID)
    assert [s.access_name for s in c.services] == ["u-a/test", "u-b/big"]
    assert c.service("u-a/test").instances == 1
    assert c.model_of(c.service("u-b/big")).gpus == 4
    assert c.models["chat-70b"].task is Task.chat  # default
    assert c.key_for_digest(DIGEST_A).owner == "u-a"
    assert c.gateway.public_url == "http://127.0.0.1:8080/v1"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        c.services[0].instances = 3  # immutable


CASES = [
    # (what, old, new, expected problem)
    (
        "yaml syntax",
        "  replicas: 1\n",
        "  replicas: [1\n",
        "services.yaml:5:6: YAML syntax error: expected ',' or ']', but got ':' — "
        "check indentation, colons and quoting "
        "around this spot",
    ),
    (
        "duplicate key",
        "    gpus: 4\n",
        "    gpus: 4\n    gpus: 2\n",
        "services.yaml:20:5: duplicate key 'gpus' (first defined on line 19) — remove one of the two; "
        "YAML would silently keep only the last",
    ),
    (
        "unknown field",
        "    max_nodes: 2\n",
        "    max_node: 2\n",
        "services.yaml:9:5: unknown field 'max_node' — did you mean 'max_nodes'?",
    ),
    (
        "unknown top-level field",
        "version: 1\n",
        "version: 1\nservice: []\n",
        "services.yaml:2:1: unknown field 'service' — did you mean 'services'?",
    ),
    (
        "wrong type",
        "    gpus: 4\n",
        '    gpus: "4"\n',
        "services.yaml:19:11: 'gpus' must be a whole number, not the text '4' — write a number without quotes, e.g. 2",
    ),
    (
        "bool is not a number",
        "  replicas: 1\n",
        "  replicas: true\n",
        "services.yaml:4:13: 'replicas' must be a whole number, not the boolean true — write a number without quotes, "
        "e.g. 2",
    ),
    (
        "out of range",
        "    gpus_per_node: 8\n",
        "    gpus_per_node: 0\n",
        "services.yaml:8:20: 'gpus_per_node' is 0, must be >= 1 — use a value >= 1",
    ),
    (
        "bad enum",
        "    task: chat\n",
        "    task: chatt\n",
        "services.yaml:12:11: 'task' is 'chatt', must be one of chat, vision-chat, image-generation — "
        "did you mean 'chat'?",
    ),
    (
        "missing field",
        "    instance_type: p5.48xlarge\n",
        "",
        "services.yaml:6:3: missing required field 'instance_type' — add 'instance_type:' here",
    ),
    (
        "bad url",
        "http://127.0.0.1:8080/v1",
        "127.0.0.1:8080",
        "services.yaml:3:15: 'public_url' must be an http:// or https:// URL, e.g. https://models.example.com/v1 "
        "— fix the value",
    ),
    (
        "dangling model",
        "    model: chat-70b\n",
        "    model: chat-7b\n",
        "services.yaml:37:12: model 'chat-7b' is not defined under 'models' — did you mean 'chat-70b'?",
    ),
    (
        "dangling pool",
        "    pool: h100\n    - name: Big",
        "    pool: h200\n    - name: Big",
        None,
    ),  # replaced below (sample uses "  - name")
    (
        "duplicate access name",
        "access_name: u-b/big",
        "access_name: u-a/test",
        "services.yaml:35:18: duplicate access name 'u-a/test' (first used on line 29) — access names are what "
        "callers put in 'model': each must be unique",
    ),
    (
        "duplicate service id",
        "id: ms-000000000002",
        "id: ms-000000000001",
        "services.yaml:36:9: duplicate service id 'ms-000000000001' (first used on line 30) — service ids are used for "
        "billing and are never reused: make a new one with `modelsvc new-id`",
    ),
    (
        "duplicate key id",
        "id: k-b",
        "id: k-a",
        "services.yaml:24:9: duplicate key id 'k-a' (first used on line 21) — give each key its own id",
    ),
    (
        "bad access name: uppercase",
        "access_name: u-a/test",
        "access_name: u-a/Test",
        "services.yaml:29:18: 'u-a/Test' is not a valid access_name — use '<owner>/<name>': lowercase letters, digits "
        "and '-', each part starting and ending with a letter or digit, e.g. u-8105f7322477/test",
    ),
    (
        "bad access name: no owner",
        "access_name: u-a/test",
        "access_name: test",
        "services.yaml:29:18: 'test' is not a valid access_name — use '<owner>/<name>': lowercase letters, digits "
        "and '-', each part starting and ending with a letter or digit, e.g. u-8105f7322477/test",
    ),
    (
        "bad service id",
        "id: ms-000000000002",
        "id: svc-2",
        "services.yaml:36:9: 'svc-2' is not a valid id — use lowercase letters, digits and '-' (service ids: 'ms-' and "
        "12 hex digits, e.g. ms-1d033c426254)",
    ),
    (
        "owner without key",
        "access_name: u-b/big",
        "access_name: u-c/big",
        "services.yaml:35:18: owner 'u-c' has no API key, so nobody could call this service — add one: "
        "`modelsvc keys new --owner u-c`",
    ),
    (
        "capacity overrun",
        "    instances: 2\n",
        "    instances: 4\n",
        "services.yaml:9:16: pool 'h100' needs 3 nodes for 5 instances (17 GPUs) and room to build a 4-GPU engine "
        "beside them, but max_nodes is 2 — raise max_nodes to 3 or lower the instances of the services using it",
    ),
    (
        "instance bigger than a node",
        "    gpus: 4\n",
        "    gpus: 16\n",
        "services.yaml:39:11: one instance of model 'chat-70b' needs 16 GPUs but nodes in pool 'h100' have 8 — choose "
        "a pool with bigger nodes or a model with fewer GPUs",
    ),
    (
        "plaintext secret field",
        "    owner: u-b\n",
        "    owner: u-b\n    key: abc\n",
        "services.yaml:26:5: 'key' looks like a plaintext secret — never put keys in git: run `modelsvc keys new "
        "--owner OWNER` and add only its sha256 digest",
    ),
    (
        "plaintext secret in a comment",
        "version: 1\n",
        "version: 1  # my key: sk-ms-AAAAAAAAAAAAAAAAAAAAAAAA\n",
        "services.yaml:1:23: this looks like a plaintext secret (an API key) — remove it from the file (and rotate it "
        "if it was pushed); keys are stored only as sha256 digests, made by `modelsvc keys new`",
    ),
    (
        "digest not hex",
        DIGEST_A,
        "not-a-digest",
        "services.yaml:23:13: 'sha256' must be the 64 lowercase hex digits of a key's SHA-256 digest (the value is not "
        "shown: it may be the key itself) — if you pasted the key, remove it and rotate it; `modelsvc keys new` prints "
        "the digest line",
    ),
    (
        "triton model without source",
        "    source: s3://models/chat-70b\n",
        "",
        "services.yaml:18:5: model 'chat-70b' has no 'source' — add 'source: s3://…' (the checkpoint the engine is "
        "built from) or set 'backend: openai'",
    ),
    (
        "openai model without upstream",
        "    source: s3://models/chat-70b\n",
        "    backend: openai\n",
        "services.yaml:18:5: model 'chat-70b' uses backend openai but has no 'upstream' — add 'upstream: "
        "http://host:port/v1' (the OpenAI-compatible server to forward to)",
    ),
    (
        "limits: unknown field",
        "    pool: h100\n  - name: Big",
        "    pool: h100\n    limits:\n      request_per_minute: 5\n  - name: Big",
        "services.yaml:35:7: unknown field 'request_per_minute' — did you mean 'requests_per_minute'?",
    ),
    (
        "limits: out of range",
        "    pool: h100\n  - name: Big",
        "    pool: h100\n    limits: {max_concurrent_streams: 0}\n  - name: Big",
        "services.yaml:34:38: 'max_concurrent_streams' is 0, must be >= 1 — use a value >= 1",
    ),
    (
        "wrong version",
        "version: 1\n",
        "version: 2\n",
        "services.yaml:1:10: 'version' is 2, must be one of 1 — use one of: 1",
    ),
]
CASES = [c for c in CASES if c[3] is not None]


@pytest.mark.parametrize("what,old,new,expected", CASES, ids=[c[0] for c in CASES])
def test_each_rule_reports_exact_location_and_fix(what, old, new, expected):
    assert expected in problems(replace(VALID, old, new))


def test_dangling_pool_suggests_the_nearest_name():
    text = replace(VALID, "    pool: h100\n  - name: Big", "    pool: h10\n  - name: Big")
    assert problems(text) == ["services.yaml:33:11: pool 'h10' is not defined under 'pools' — did you mean 'h100'?"]


def test_ten_mistakes_give_ten_located_errors():
    text = VALID
    for old, new in [
        ("  replicas: 1\n", "  replicas: 0\n"),  # 1 range
        ("    max_nodes: 2\n", "    max_nodes: 2\n    max_nodez: 1\n"),  # 2 unknown field
        ("    task: chat\n", "    task: text\n"),  # 3 enum
        ("    gpus: 4\n", "    gpus: four\n"),  # 4 type
        ("id: k-b", "id: k-a"),  # 5 duplicate key id
        ("access_name: u-a/test", "access_name: U-A/test"),  # 6 access name syntax
        ("    model: chat-8b\n", "    model: chat-9b\n"),  # 7 dangling model
        ("id: ms-000000000002", "id: ms-000000000001"),  # 8 duplicate service id
        ("    pool: h100\n  - name: Big", "    pool: a100\n  - name: Big"),  # 9 dangling pool
        ("version: 1\n", "version: 1\n# token sk-ms-BBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"),  # 10 secret
    ]:
        text = replace(text, old, new)
    found = problems(text)
    assert len(found) == 10, "\n".join(found)
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)  # reported in file order
    assert all(p.startswith("services.yaml:") and " — " in p for p in found)


def test_empty_and_non_mapping_files():
    assert problems("") == ["services.yaml:1:1: the file is empty — start from the example services.yaml"]
    assert problems("- a\n- b\n")[0].startswith("services.yaml:1:1: the top level must be a mapping")


def test_merge_keys_are_resolved_not_reported_as_unknown():
    text = replace(VALID, "models:\n", "x-defaults: &d\n  gpus: 1\nmodels:\n")
    # x-defaults itself is an unknown field: anchors must live inside known fields
    assert any("unknown field 'x-defaults'" in p for p in problems(text))


def test_error_list_is_a_single_exception_message():
    with pytest.raises(CatalogError) as e:
        loads(replace(VALID, "  replicas: 1\n", "  replicas: -1\n"), "deploy/services.yaml")
    assert str(e.value) == "deploy/services.yaml:4:13: 'replicas' is -1, must be >= 1 — use a value >= 1"


# A key pasted where its digest belongs, or anywhere else: every message says where, never what.
PASTED = [
    ("key in sha256", [(DIGEST_A, KEY_A)], KEY_A),
    (
        "key-like text in sha256",
        [(DIGEST_A, "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA")],
        "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA",
    ),
    ("number in sha256", [(DIGEST_A, "12345678901234567890")], "12345678901234567890"),
    ("same key in both sha256 (duplicate)", [(DIGEST_A, "0" * 40), (DIGEST_B, "0" * 40)], "0" * 40),
    ("key in a name", [("  - name: Test\n", f"  - name: {KEY_A}\n")], KEY_A),
    ("key in an access name", [("access_name: u-a/test\n", f"access_name: u-a/{KEY_A}\n")], KEY_A),
    (
        "password in an upstream URL",
        [
            (
                "    source: s3://models/chat-70b\n",
                "    backend: openai\n    upstream: http://user:hunter2hunter2@vllm:8000/v1\n",
            )
        ],
        "hunter2hunter2",
    ),
]


@pytest.mark.parametrize("what,edits,secret", PASTED, ids=[c[0] for c in PASTED])
def test_a_pasted_secret_is_never_quoted(what, edits, secret):
    text = VALID
    for old, new in edits:
        text = replace(text, old, new)
    found = problems(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if secret in t)
    assert found and not any(secret in p for p in found), found
    assert any(p.startswith(f"services.yaml:{line}:") for p in found), found


@pytest.mark.parametrize(
    "name",
    [
        "Docs)\n\n**Result: ✅ passes**\n<!--",
        "<img src=x onerror=alert(1)>",
        "a\x1b[31mred",
        "rtl \u202e txt",
        "line\u2028sep",
        "tab\there",
    ],
)
def test_display_names_refuse_control_characters_and_angle_brackets(name):
    import json

    text = replace(VALID, "  - name: Test\n", f"  - name: {json.dumps(name)}\n")
    found = problems(text)
    assert len(found) == 1 and found[0].startswith("services.yaml:28:11: 'name' must not contain control characters")
    assert name not in found[0]


def test_display_names_may_hold_markdown_and_backticks():
    """Harmless in text, escaped wherever shown (reviews use code spans)."""
    c = loads(replace(VALID, "  - name: Test\n", "  - name: 'Docs `x` **bold** | [a](b) ::warning::'\n"))
    assert c.services[0].name == "Docs `x` **bold** | [a](b) ::warning::"


def test_descriptions_refuse_control_characters_but_keep_angle_brackets():
    """Descriptions are escaped wherever shown; only characters that could start a line or hide text are refused."""
    ok = loads(
        replace(
            VALID,
            "    pool: h100\n",
            "    pool: h100\n    description: 'a <b> & c'\n",
        )
    )
    assert ok.services[0].description == "a <b> & c"
    found = problems(replace(VALID, "    pool: h100\n", '    pool: h100\n    description: "a\\nb"\n'))
    assert len(found) == 1 and "'description' must not contain control characters" in found[0]


def test_bytes_that_are_not_utf8_are_a_located_problem(tmp_path):
    f = tmp_path / "services.yaml"
    f.write_bytes(VALID.replace("  replicas: 1\n", "  replicas: 1  # caf\xe9\n").encode("latin-1"))
    with pytest.raises(CatalogError) as e:
        load(str(f))
    (p,) = e.value.problems
    line = VALID.splitlines().index("  replicas: 1") + 1
    assert str(p).startswith(f"{f}:{line}:21: not UTF-8 (byte 0xe9)") and "UTF-8" in p.hint


def test_deeply_nested_yaml_is_a_located_problem():
    text = VALID + "extra: " + "[" * 5000 + "]" * 5000 + "\n"
    (p,) = problems(text)
    assert "nested too deeply" in p and p.startswith(f"services.yaml:{VALID.count(chr(10)) + 1}:")
