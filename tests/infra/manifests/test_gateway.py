from infra.manifests import gateway, system
from infra.settings import Settings

S = Settings(gateway_image="example/gw:1")


def test_gateway_deployment(small):
    dep = gateway.deployment(small, S)
    assert dep["spec"]["replicas"] == 3
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "example/gw:1"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MODELSVC_NAMESPACE"] == "modelsvc" and env["MODELSVC_CATALOG"] == "/etc/modelsvc/services.yaml"


def test_metrics_are_scraped_on_the_internal_port_only(small):
    dep = gateway.deployment(small, S)
    c = dep["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert ports["metrics"] == int(env["MODELSVC_METRICS_PORT"]) != ports["http"]
    assert env["MODELSVC_METRICS_HOST"] == "0.0.0.0"  # the gateway binds loopback unless told: Prometheus must reach it
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert (ann["prometheus.io/scrape"], ann["prometheus.io/port"], ann["prometheus.io/path"]) == (
        "true",
        str(ports["metrics"]),
        "/metrics",
    )
    svc_ports = gateway.service(S)["spec"]["ports"]
    assert [p["targetPort"] for p in svc_ports] == ["http"]  # the Service (and so the Ingress) never exposes metrics


def test_catalog_change_rolls_the_gateway(small, make_catalog, small_text):
    before = gateway.deployment(small, S)["spec"]["template"]["metadata"]["annotations"]
    changed = make_catalog(small_text.replace("instances: 3", "instances: 4"))
    after = gateway.deployment(changed, S)["spec"]["template"]["metadata"]["annotations"]
    assert before != after


def test_comment_only_or_reordered_edit_rolls_nothing(small, make_catalog, small_text):
    """The ConfigMap and the hash come from the parsed catalog: spelling changes render identical manifests."""
    from modelsvc.catalog import loads

    respelled = make_catalog("# reviewed by the platform team\n" + small_text.replace("\n", "  # note\n", 3))
    reordered = make_catalog(
        small_text.replace(
            "    source: s3://example-models/small\n    gpus: 1\n",
            "    gpus: 1\n    source: s3://example-models/small\n",
        ).replace("  - id: k-alice\n    owner: alice\n", "  - owner: alice\n    id: k-alice\n")
    )
    assert reordered.text != small_text
    for c in (respelled, reordered):
        assert gateway.deployment(c, S) == gateway.deployment(small, S)
        assert gateway.catalog_configmap(c, S) == gateway.catalog_configmap(small, S)
    data = gateway.catalog_configmap(small, S)["data"]["services.yaml"]
    assert "#" not in data and loads(data).canonical_json() == small.canonical_json()


def test_network_policy_admits_only_gateway_pods(small):
    pol = system.triton_network_policy("modelsvc", S)
    gw_labels = gateway.deployment(small, S)["spec"]["template"]["metadata"]["labels"]
    peer = pol["spec"]["ingress"][0]["from"][0]
    assert peer["podSelector"]["matchLabels"].items() <= gw_labels.items()
    assert {p["port"] for p in pol["spec"]["ingress"][0]["ports"]} == {8000, 8001, 8002}
    assert pol["spec"]["policyTypes"] == ["Ingress"]


def test_gateway_drains_and_can_share_limits_through_redis(example):
    from infra.manifests.gateway import deployment
    from infra.settings import Settings

    spec = deployment(example, Settings())["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["MODELSVC_DRAIN_SECONDS"]["value"] == "5" and env["MODELSVC_GRACE_SECONDS"]["value"] == "30"
    assert spec["terminationGracePeriodSeconds"] == 45
    assert "REDIS_URL" not in env
    spec = deployment(example, Settings(gateway_redis_secret="gateway-redis"))["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["REDIS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "gateway-redis", "key": "url"}}


def test_metrics_namespace_reaches_only_the_metrics_ports(small):
    settings = Settings(metrics_namespace="observability")
    pol = system.triton_network_policy("modelsvc", settings)
    scrape = pol["spec"]["ingress"][1]
    assert scrape["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 8002}]  # Triton's metrics, not its inference ports
    gw = system.gateway_network_policy(settings)
    c = gateway.deployment(small, settings)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 9091, "protocol": "TCP"} in c["ports"]
    assert {"name": "MODELSVC_METRICS_PORT", "value": "9091"} in c["env"]
    http, metrics = gw["spec"]["ingress"]
    assert "from" not in http and http["ports"] == [{"protocol": "TCP", "port": "http"}]  # the API stays public
    assert metrics["from"] == scrape["from"] and metrics["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    assert (
        gw["spec"]["podSelector"]["matchLabels"].items()
        <= gateway.deployment(small, settings)["spec"]["template"]["metadata"]["labels"].items()
    )


def test_usage_store_dsn_comes_from_a_secret_and_records_live_on_a_volume(example):
    import kubernetes_validate

    from infra.manifests.gateway import USAGE_DIR, deployment, usage_store_secret

    for settings in (Settings(), Settings(gateway_usage_secret="usage-db")):
        dep = deployment(example, settings)
        kubernetes_validate.validate(dep, "1.33", strict=True)
        spec = dep["spec"]["template"]["spec"]
        c = spec["containers"][0]
        env = {e["name"]: e for e in c["env"]}
        # Spool and local log on the pod's emptyDir volume, never in the container's filesystem.
        assert env["MODELSVC_USAGE_SPOOL"]["value"].startswith(USAGE_DIR + "/")
        assert env["MODELSVC_USAGE_LOG"]["value"].startswith(USAGE_DIR + "/")
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == USAGE_DIR)
        assert next(v for v in spec["volumes"] if v["name"] == mount["name"])["emptyDir"]
        if settings.gateway_usage_secret:
            assert env["MODELSVC_USAGE_STORE"]["valueFrom"] == {"secretKeyRef": {"name": "usage-db", "key": "url"}}
            assert "value" not in env["MODELSVC_USAGE_STORE"]  # the DSN is never in the manifest
        else:
            assert "MODELSVC_USAGE_STORE" not in env
    secret = usage_store_secret("postgresql://u:p@db:5432/modelsvc", Settings())
    kubernetes_validate.validate(secret, "1.33", strict=True)
    assert secret["metadata"]["name"] == "gateway-usage-store"
