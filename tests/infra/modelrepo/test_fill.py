"""Our fill equals NVIDIA's fill_template.py (triton_backend/tools/fill_template.py) on a sample.

The expected texts are written by hand from that tool's documented behaviour: string.Template safe_substitute,
max_queue_size / max_queue_delay_microseconds defaulting to 0, unknown placeholders left alone, ``$$`` -> ``$``,
and an error naming the key and the file for a key the template lacks."""

import pytest

from infra.modelrepo.errors import RepoError
from infra.modelrepo.fill import fill, leftovers, placeholders

SAMPLE = """name: "m"
max_batch_size: ${triton_max_batch_size}
dynamic_batching { max_queue_delay_microseconds: ${max_queue_delay_microseconds}
  default_queue_policy: { max_queue_size: ${max_queue_size} } }
parameters { key: "tokenizer_dir" value: { string_value: "${tokenizer_dir}" } }
parameters { key: "price" value: { string_value: "$$5 $plain" } }
"""


def test_fill_matches_fill_template_py():
    out = fill(SAMPLE, {"triton_max_batch_size": 8, "tokenizer_dir": "/models/tok", "plain": "x"}, "f")
    assert (
        out
        == """name: "m"
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 0
  default_queue_policy: { max_queue_size: 0 } }
parameters { key: "tokenizer_dir" value: { string_value: "/models/tok" } }
parameters { key: "price" value: { string_value: "$5 x" } }
"""
    )


def test_given_values_override_the_queue_defaults():
    out = fill(SAMPLE, {"max_queue_delay_microseconds": 20000, "max_queue_size": 7}, "f")
    assert "max_queue_delay_microseconds: 20000" in out and "max_queue_size: 7 }" in out


def test_unknown_placeholders_stay_and_are_reported():
    out = fill(SAMPLE, {"triton_max_batch_size": 1}, "f")
    assert '"${tokenizer_dir}"' in out  # safe_substitute leaves what it was not given
    assert leftovers(out) == ["tokenizer_dir", "plain"]


def test_a_key_the_template_lacks_is_an_error_naming_key_and_file():
    with pytest.raises(RepoError) as e:
        fill(SAMPLE, {"logits_datatype": "TYPE_FP32"}, "repo/preprocessing/config.pbtxt")
    assert e.value.where == "repo/preprocessing/config.pbtxt"
    assert "'logits_datatype'" in str(e.value)


def test_key_present_only_as_text_is_refused():
    # NVIDIA's tool only asserts `key in text`; a key that is no placeholder would be silently ignored.
    with pytest.raises(RepoError, match="'price'"):
        fill(SAMPLE, {"price": "1"}, "f")


def test_placeholders_of_a_template():
    assert placeholders(SAMPLE) == {
        "triton_max_batch_size",
        "max_queue_delay_microseconds",
        "max_queue_size",
        "tokenizer_dir",
        "plain",
    }
    assert leftovers('x: "${not an identifier}"') == ["not an identifier"]
