"""The gateway's settings are declared once: Settings, the serve flags with their environment defaults and the
Deployment's environment all come from modelsvc/catalog/gateway_settings.py."""

import argparse
import dataclasses

from gateway.config import Settings, settings_from
from infra.manifests.gateway import deployment
from infra.settings import Settings as InfraSettings
from modelsvc.catalog.gateway_settings import SETTINGS
from modelsvc.cli.run import add_serve_arguments


def parser(environ=None, monkeypatch=None):
    p = argparse.ArgumentParser()
    add_serve_arguments(p, local_default=None)
    return p


def test_names_flags_and_environment_variables_are_unique():
    for attr in ("name", "flag", "env"):
        values = [getattr(s, attr) for s in SETTINGS]
        assert len(values) == len(set(values)), attr


def test_every_settings_field_is_declared_and_defaults_agree():
    declared = {s.field: s for s in SETTINGS if s.field and "." not in s.field}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(fields) - {"images"} == set(declared)
    defaults = Settings()
    for name, s in declared.items():
        assert getattr(defaults, name) == s.default, name
    assert defaults.images.max_bytes == 20 * 1024 * 1024 and defaults.images.allow_hosts == ()


def test_every_flag_has_its_environment_default(monkeypatch):
    for name, value in {
        "MODELSVC_DEADLINE_SECONDS": "7.5",
        "MODELSVC_GRACE_SECONDS": "12",
        "MODELSVC_IMAGE_HOSTS": "A.example, b.example",
        "MODELSVC_USAGE_STORE": "",
        "REDIS_URL": "redis://r:6379/0",
    }.items():
        monkeypatch.setenv(name, value)
    args = parser().parse_args([])
    s = settings_from(vars(args))
    assert (s.deadline_s, s.grace_s, s.redis_url, s.usage_store) == (7.5, 12.0, "redis://r:6379/0", None)
    assert s.images.allow_hosts == ("a.example", "b.example")
    assert s.metrics_host is None  # unset: the internal port stays on loopback
    s = settings_from(vars(parser().parse_args(["--deadline", "3", "--host", "0.0.0.0", "--metrics-port", "0"])))
    assert (s.deadline_s, s.metrics_port, s.metrics_host) == (3.0, 0, None)  # never follows --host
    s = settings_from(vars(parser().parse_args(["--host", "0.0.0.0", "--metrics-host", "0.0.0.0"])))
    assert s.metrics_host == "0.0.0.0"


def test_the_deployment_sets_only_declared_variables(example):
    env = deployment(example, InfraSettings())["spec"]["template"]["spec"]["containers"][0]["env"]
    declared = {s.env for s in SETTINGS}
    ours = [e["name"] for e in env if e["name"].startswith("MODELSVC_") or e["name"] == "REDIS_URL"]
    placement = {"MODELSVC_NAMESPACE", "MODELSVC_NAMESPACE_MODE", "MODELSVC_CLUSTER_DOMAIN"}
    assert {"MODELSVC_CATALOG", "MODELSVC_PORT", "MODELSVC_METRICS_PORT", "MODELSVC_GRACE_SECONDS"} <= set(ours)
    assert set(ours) - placement <= declared, set(ours) - placement - declared
