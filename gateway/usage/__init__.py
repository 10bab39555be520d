"""Usage metering: a record per request that reached an engine, Prometheus metrics per service id, and the stores
the usage API and invoices read (see sink.py for the two paths, docs/reliability.md for the guarantees)."""

from .record import COMPLETION_ENDPOINTS, IMAGE_ENDPOINTS, Metrics, UsageRecord, owner_of
from .sink import UsageLog

__all__ = ["COMPLETION_ENDPOINTS", "IMAGE_ENDPOINTS", "Metrics", "UsageLog", "UsageRecord", "owner_of"]
