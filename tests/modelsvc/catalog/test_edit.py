"""modelsvc.catalog.edit: the one code path of `modelsvc create/scale/delete` and the console's actions."""

from __future__ import annotations

import pytest

from modelsvc.catalog import loads
from modelsvc.catalog.edit import EditError, create, default_access_name, delete, scale
from tests.conftest import ROOT

TEXT = (ROOT / "services.yaml").read_text()
AUTO, FIXED = "u-8105f7322477/support-bot", "u-8105f7322477/test"


def test_scale_sets_the_minimum_and_the_maximum_of_an_autoscaled_service_keeping_comments():
    text, cat = scale(TEXT, "services.yaml", AUTO, to=3, max_instances=6)
    svc = cat.service(AUTO)
    assert (svc.instances, svc.autoscale.max_instances) == (3, 6)
    assert "# instances stays the minimum" in text and text.count("\n") == TEXT.count("\n")
    text, cat = scale(TEXT, "services.yaml", AUTO, max_instances=5)  # the maximum alone
    assert (cat.service(AUTO).instances, cat.service(AUTO).autoscale.max_instances) == (2, 5)


@pytest.mark.parametrize(
    "name, kw, field, message",
    [
        (FIXED, {"max_instances": 3}, "max_instances", "is not autoscaled"),
        (AUTO, {"to": 3, "max_instances": 2}, "max_instances", "cannot be below the minimum"),
        (FIXED, {"add": -5}, "instances", "cannot go to -4"),
        (FIXED, {}, "instances", "say how to scale"),
        ("u-8105f7322477/nope", {"to": 1}, "access_name", "no service"),
    ],
)
def test_scale_refusals_name_their_field(name, kw, field, message):
    with pytest.raises(EditError) as e:
        scale(TEXT, "services.yaml", name, **kw)
    assert e.value.field == field and message in str(e.value)


def test_a_refused_edit_carries_its_located_problems_and_the_text_it_would_have_written():
    with pytest.raises(EditError) as e:
        scale(TEXT, "services.yaml", FIXED, to=99)
    assert e.value.problems and "max_nodes" in e.value.problems[0].message
    assert "instances: 99" in e.value.text and e.value.text != TEXT


def test_create_with_autoscale_and_the_default_access_name():
    text, cat = create(
        TEXT, "services.yaml", name="Docs Bot", owner="u-8105f7322477", model="llama-3.1-8b-instruct",
        pool="h100", max_instances=3,
    )  # fmt: skip
    svc = cat.service(default_access_name("u-8105f7322477", "Docs Bot"))
    assert svc.access_name == "u-8105f7322477/docs-bot" and svc.autoscale.max_instances == 3
    assert text.startswith(TEXT)
    with pytest.raises(EditError) as e:
        create(TEXT, "services.yaml", name="X", owner="u-8105f7322477", model="llama-3.1-8b-instruct",
               pool="h100", instances=3, max_instances=2)  # fmt: skip
    assert e.value.field == "max_instances"


def test_delete_needs_the_typed_name():
    with pytest.raises(EditError) as e:
        delete(TEXT, "services.yaml", FIXED, "u-8105f7322477/tes")
    assert e.value.field == "confirm"
    _, cat = delete(TEXT, "services.yaml", FIXED, FIXED)
    assert cat.service(FIXED) is None and loads(TEXT).service(FIXED) is not None
