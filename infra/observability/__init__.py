"""What Prometheus records and alerts on, and the Grafana dashboard: built from the catalog, rendered by infra."""
