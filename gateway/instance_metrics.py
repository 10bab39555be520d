"""Instance counts per service as Prometheus gauges, read from the instance pools at scrape time.

The gateway follows each service's pods through the headless Service (DNS: one record per ready pod), so it knows how
many instances it currently sees and how many of those pass its own health checks. That is what it exports; the
autoscaler's own view (desired replicas, scaling events) lives in Kubernetes and comes from kube-state-metrics.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily


class InstanceCollector:
    def __init__(self, runtime):
        self.runtime = runtime

    def collect(self):
        family = GaugeMetricFamily(
            "modelsvc_instances",
            "Instances the gateway sees per service, by state",
            labels=["service_id", "access_name", "state"],
        )
        catalog = self.runtime.catalog
        for svc in catalog.services:
            pool = self.runtime.pools.get(svc.access_name)
            ready, seen = pool.counts() if pool else (0, 0)
            family.add_metric([svc.id, svc.access_name, "ready"], ready)
            family.add_metric([svc.id, svc.access_name, "discovered"], seen)
        yield family
