"""The builder on NVIDIA's real templates (MODELSVC_TRITON_TEMPLATES): every task on every release."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from infra.modelrepo import RepoError, RepoSpec, build_repository, load
from infra.modelrepo.templates import RELEASES

LLM_TASKS = ("chat", "vision-chat")
LLAMA31 = (
    "{{- bos_token }}\n{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim "
    "+ '<|eot_id|>' }}{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}\n"
)


def spec(task: str, **kw) -> RepoSpec:
    return RepoSpec(task=task, max_batch_size=8, max_input_tokens=4096, max_output_tokens=512, **kw)


def no_placeholders(written):
    for path in written:
        assert "${" not in path.read_text(), path


@pytest.mark.parametrize("task", ["chat", "vision-chat", "image-generation"])
def test_pinned_release_fills_and_parses(tpl, tmp_path, task):
    written = build_repository(spec(task), tpl(task), tmp_path / "repo")
    no_placeholders(written)
    models = load(tmp_path / "repo")
    assert set(models) == {p.parent.name for p in written}
    if task == "image-generation":
        sd = models["stable_diffusion"]
        assert sd.backend == "diffusion" and {t.name for t in sd.output} == {"generated_image"}
        assert sd.parameters["image_width"].string_value == "512"  # the tutorial's SD 1.5 value, kept
        return
    expected = {"ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls"}
    if task == "vision-chat":
        expected.add("multimodal_encoders")
        assert "image_url_input" in {t.name for t in models["ensemble"].input}
    assert set(models) == expected
    assert models["tensorrt_llm"].model_transaction_policy.decoupled
    assert models["tensorrt_llm"].max_batch_size == 8
    assert models["tensorrt_llm"].parameters["gpt_model_path"].string_value == "/models/engine"
    assert models["preprocessing"].parameters["tokenizer_dir"].string_value == "/models/tokenizer"
    assert (tmp_path / "repo" / "tensorrt_llm" / "1").is_dir()


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_chat_on_every_release(tpl, tmp_path, release):
    written = build_repository(spec("chat"), tpl("chat", release), tmp_path / "repo")
    no_placeholders(written)
    models = load(tmp_path / "repo")
    ptable = next(t for t in models["tensorrt_llm"].input if t.name == "prompt_embedding_table")
    assert (
        ptable.data_type == mc.TYPE_FP16
    )  # TYPE_FP16 (the 1.2 templates take it as ${prompt_embedding_table_data_type})


def test_vision_on_older_release(tpl, tmp_path):
    no_placeholders(build_repository(spec("vision-chat"), tpl("chat", "tensorrtllm_backend-r25.05"), tmp_path / "r"))


def test_vision_on_newer_release_is_refused_by_name(tpl, tmp_path):
    # The stored 1.2.x multimodal ensemble maps IMAGE_SIZES into preprocessing, whose config declares it only as
    # an output: Triton would refuse to load it, so we refuse to write it.
    with pytest.raises(RepoError) as e:
        build_repository(spec("vision-chat"), tpl("chat", "trtllm-1.2.x-stored"), tmp_path / "r")
    assert "multimodal/ensemble/config.pbtxt" in e.value.where
    assert "'IMAGE_SIZES'" in e.value.message and "'preprocessing'" in e.value.message
    assert not (tmp_path / "r").exists()


def test_diffusion_size_steps_and_variant(tpl, tmp_path):
    build_repository(
        spec(
            "image-generation",
            image_width=768,
            image_height=512,
            steps=20,
            diffusion_variant="sdxl",
            served_name="stable_diffusion",
        ),
        tpl("image-generation"),
        tmp_path / "r",
    )
    cfg = load(tmp_path / "r")["stable_diffusion"]
    p = {k: v.string_value for k, v in cfg.parameters.items()}
    assert (p["image_width"], p["image_height"], p["steps"], p["version"]) == ("768", "512", "20", "xl-1.0")


def test_diffusion_needs_the_tutorial_configs(tpl, tmp_path):
    with pytest.raises(RepoError, match="template missing") as e:
        build_repository(spec("image-generation"), tpl("chat"), tmp_path / "r")
    assert e.value.where.endswith("stable_diffusion_1_5/config.pbtxt")


# -- broken templates (a copy of the pinned release, edited) ---------------------------------------------------------
@pytest.fixture
def edited(tpl, tmp_path):
    copy = tmp_path / "all_models"
    shutil.copytree(tpl("chat"), copy)

    def edit(model: str, old: str, new: str, count: int = 1):
        path = copy / model / "config.pbtxt"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, count))
        return copy

    return edit


def test_template_lacking_a_key(edited, tmp_path):
    templates = edited("inflight_batcher_llm/ensemble", "${triton_max_batch_size}", "8")
    with pytest.raises(RepoError) as e:
        build_repository(spec("chat"), templates, tmp_path / "out")
    assert e.value.where.endswith("inflight_batcher_llm/ensemble/config.pbtxt")
    assert "'triton_max_batch_size'" in e.value.message


def test_leftover_placeholder(edited, tmp_path):
    templates = edited(
        "inflight_batcher_llm/postprocessing",
        'name: "postprocessing"',
        'name: "postprocessing"\nparameters { key: "x" value: { string_value: "${brand_new_key}" } }',
    )
    with pytest.raises(RepoError) as e:
        build_repository(spec("chat"), templates, tmp_path / "out")
    assert e.value.where.endswith("inflight_batcher_llm/postprocessing/config.pbtxt")
    assert "${brand_new_key}" in e.value.message
    assert not (tmp_path / "out").exists()  # nothing written


def test_broken_ensemble_map(edited, tmp_path):
    templates = edited("inflight_batcher_llm/ensemble", 'key: "QUERY"', 'key: "QUERRY"')
    with pytest.raises(RepoError, match="input_map key 'QUERRY' is not an input of model 'preprocessing'"):
        build_repository(spec("chat"), templates, tmp_path / "out")


def test_ensemble_reading_an_unknown_tensor(edited, tmp_path):
    templates = edited(
        "inflight_batcher_llm/ensemble",
        'value: "_TOKENS_BATCH"\n      }\n      input_map',
        'value: "_TOKENS_BATCHED"\n      }\n      input_map',
    )
    with pytest.raises(RepoError, match="'_TOKENS_BATCHED'"):
        build_repository(spec("chat"), templates, tmp_path / "out")


def test_config_that_does_not_parse(edited, tmp_path):
    templates = edited("inflight_batcher_llm/postprocessing", "max_batch_size:", "max_batch_sise:")
    with pytest.raises(RepoError, match="not a valid Triton model config") as e:
        build_repository(spec("chat"), templates, tmp_path / "out")
    assert e.value.where.endswith("postprocessing/config.pbtxt")


def test_output_must_be_new_or_empty(tpl, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(RepoError, match="not empty"):
        build_repository(spec("chat"), tpl("chat"), tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# -- chat template -----------------------------------------------------------------------------------------------
def _tokenizer_config(tmp_path, **fields):
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps(fields))
    return path


@pytest.mark.parametrize("task", LLM_TASKS)
def test_chat_template_from_the_checkpoint(tpl, tmp_path, task):
    tc = _tokenizer_config(
        tmp_path,
        chat_template=LLAMA31,
        bos_token="<|begin_of_text|>",
        eos_token={"content": "<|eot_id|>", "special": True},
    )
    build_repository(spec(task), tpl(task), tmp_path / "r", tokenizer_config=tc)
    models = load(tmp_path / "r")
    for served in ("ensemble", "tensorrt_llm_bls"):
        p = {k: v.string_value for k, v in models[served].parameters.items()}
        assert p["chat_template"] == LLAMA31
        assert (p["bos_token"], p["eos_token"]) == ("<|begin_of_text|>", "<|eot_id|>")


def test_named_templates_use_default_and_services_yaml_overrides(tpl, tmp_path):
    tc = _tokenizer_config(
        tmp_path, chat_template=[{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    )
    build_repository(spec("chat"), tpl("chat"), tmp_path / "a", tokenizer_config=tc)
    assert load(tmp_path / "a")["ensemble"].parameters["chat_template"].string_value == "D"
    build_repository(spec("chat", chat_template="OVERRIDE"), tpl("chat"), tmp_path / "b", tokenizer_config=tc)
    assert load(tmp_path / "b")["ensemble"].parameters["chat_template"].string_value == "OVERRIDE"


def test_named_templates_without_default_are_refused(tpl, tmp_path):
    tc = _tokenizer_config(tmp_path, chat_template=[{"name": "tool_use", "template": "T"}])
    with pytest.raises(RepoError, match="none named 'default'") as e:
        build_repository(spec("chat"), tpl("chat"), tmp_path / "r", tokenizer_config=tc)
    assert e.value.where == str(tc)


def test_no_template_anywhere_adds_no_parameter(tpl, tmp_path):
    build_repository(spec("chat"), tpl("chat"), tmp_path / "r")
    assert "chat_template" not in load(tmp_path / "r")["ensemble"].parameters


# -- the Job's CLI ----------------------------------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "infra.modelrepo", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.e2e
def test_cli_builds(tpl, tmp_path):
    s = tmp_path / "spec.json"
    s.write_text(json.dumps({"task": "chat", "max_batch_size": 4, "max_input_tokens": 100, "max_output_tokens": 10}))
    tc = _tokenizer_config(tmp_path, chat_template=LLAMA31)
    r = _cli("--spec", s, "--templates", tpl("chat"), "--out", tmp_path / "repo", "--tokenizer-config", tc)
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "repo" / "ensemble" / "config.pbtxt") in r.stdout.splitlines()


@pytest.mark.e2e
def test_cli_refuses_with_a_located_message(edited, tmp_path):
    templates = edited("inflight_batcher_llm/tensorrt_llm", "${logits_datatype}", "TYPE_FP32", -1)
    s = tmp_path / "spec.json"
    s.write_text(json.dumps({"task": "chat", "max_batch_size": 4, "max_input_tokens": 100, "max_output_tokens": 10}))
    r = _cli("--spec", s, "--templates", templates, "--out", tmp_path / "repo")
    assert r.returncode == 1
    assert "inflight_batcher_llm/tensorrt_llm/config.pbtxt: key 'logits_datatype' does not exist" in r.stderr
    assert not (tmp_path / "repo").exists()


@pytest.mark.e2e
def test_cli_refuses_an_unknown_spec_key(tpl, tmp_path):
    s = tmp_path / "spec.json"
    s.write_text(
        json.dumps({"task": "chat", "max_batch_size": 4, "max_input_tokens": 1, "max_output_tokens": 1, "max_batch": 3})
    )
    r = _cli("--spec", s, "--templates", tpl("chat"), "--out", tmp_path / "repo")
    assert r.returncode == 1 and f"{s}: unknown key(s) max_batch" in r.stderr


# -- which models have a recipe ---------------------------------------------------------------------------------------
def _model(**kw):
    from modelsvc.catalog.model import Model

    return Model(**kw)


def test_has_recipe_and_spec_for():
    from infra.modelrepo import has_recipe, spec_for

    chat = _model(task="chat", source="s3://m/llama-3.1-8b-instruct", max_input_tokens=8192)
    assert has_recipe(chat) is None
    s = spec_for(chat)
    assert (s.task, s.max_input_tokens, s.served_name, s.max_batch_size) == ("chat", 8192, "ensemble", 64)
    assert has_recipe(_model(task="vision-chat", source="s3://m/qwen2-vl-7b-instruct")) is None
    assert "encoder-decoder" in has_recipe(_model(task="vision-chat", source="s3://m/Llama-3.2-11B-Vision-Instruct"))
    sdxl = _model(task="image-generation", source="s3://m/stable-diffusion-xl-base-1.0")
    assert has_recipe(sdxl) is None and spec_for(sdxl).diffusion_variant == "sdxl"
    assert spec_for(sdxl).served_name == "stable_diffusion"
    assert "1.5 and XL only" in has_recipe(_model(task="image-generation", source="s3://m/flux-1-dev"))
    assert "one GPU" in has_recipe(
        _model(task="image-generation", source="s3://m/stable-diffusion-xl-base-1.0", gpus=2)
    )
    assert "not served" in has_recipe(_model(task="chat", source="s3://m/x", triton_model="tensorrt_llm"))
    assert "no model repository" in has_recipe(_model(task="chat", backend="openai", upstream="http://u:1/v1"))


@pytest.mark.parametrize("task", LLM_TASKS)
def test_serving_settings_follow_nvidias_advice(tpl, tmp_path, task):
    """tensorrtllm_backend r25.10 docs/model_config.md: KV-cache (prefix) reuse on, instance_count 5 for the Python
    pre/postprocessing models, BLS instances = the maximum batch size; what the written configs say, parsed."""
    build_repository(spec(task), tpl(task), tmp_path / "repo")
    models = load(tmp_path / "repo")
    assert models["tensorrt_llm"].parameters["enable_kv_cache_reuse"].string_value.lower() == "true"
    for name in ("preprocessing", "postprocessing"):
        assert [g.count for g in models[name].instance_group] == [5], name
    assert [g.count for g in models["tensorrt_llm_bls"].instance_group] == [8]  # spec's max_batch_size
