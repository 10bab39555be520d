import json

import yaml

from modelsvc.catalog.schema import SCHEMA_PATH, render


def test_committed_schema_is_current():
    assert SCHEMA_PATH.read_text() == render(), "run `modelsvc schema --write`"


def test_example_references_the_schema():
    with open("services.yaml") as f:
        assert f.readline().strip() == "# yaml-language-server: $schema=./schema/services.schema.json"


def test_schema_accepts_the_example_and_rejects_an_unknown_field():
    jsonschema = __import__("jsonschema")  # ships with kubernetes-validate
    schema = json.loads(SCHEMA_PATH.read_text())
    with open("services.yaml") as f:
        data = yaml.safe_load(f)
    jsonschema.validate(data, schema)
    data["gateway"]["replicaz"] = 2
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert any("replicaz" in e.message for e in errors)
