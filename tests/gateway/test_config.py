"""gateway/config.py: the local overlay's declarations."""

import typing

import yaml

from devtools.standin.models import FAMILIES
from gateway.config import LocalOverlay, StandinSpec
from tests.conftest import ROOT


def test_the_overlays_families_are_the_stand_ins():
    """gateway.config cannot import devtools (the layers): the family names it accepts are the stand-in's."""
    annotation = StandinSpec.model_fields["family"].annotation
    (literal,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    assert set(typing.get_args(literal)) == set(FAMILIES)


def test_the_checkouts_local_overlay_loads_and_serves_llama_templates_on_the_chat_stand_ins():
    overlay = LocalOverlay.model_validate(yaml.safe_load((ROOT / "local.yaml").read_text()))
    chat = [s for s in overlay.standins if s.profile == "chat"]
    assert chat and all(s.family == "llama3" for s in chat)
