"""Labels every object carries: app.kubernetes.io/* plus the service id."""

from __future__ import annotations

PART_OF = "modelsvc"
MANAGED_BY = "pulumi"
SERVICE_ID = "modelsvc.io/service-id"
ACCESS_OWNER = "modelsvc.io/owner"
POOL = "modelsvc.io/pool"  # node label on GPU node groups, and the pod node selector
CACHE_KEY = "modelsvc.io/engine-key"
CATALOG_HASH = "modelsvc.io/catalog-sha256"  # gateway pod annotation: a catalog change rolls the gateway

# component values
TRITON, ENGINE_BUILD, GATEWAY, DEVICE_PLUGIN, SYSTEM = "triton", "engine-build", "gateway", "device-plugin", "system"


def selector(name: str, component: str, instance: str) -> dict[str, str]:
    """The immutable subset used in selectors (Deployment.spec.selector cannot change later)."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
    }


def labels(
    name: str,
    component: str,
    instance: str,
    service_id: str | None = None,
    owner: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    out = {
        **selector(name, component, instance),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if service_id:
        out[SERVICE_ID] = service_id
    if owner:
        out[ACCESS_OWNER] = owner
    if extra:
        out.update(extra)
    return out
