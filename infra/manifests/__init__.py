"""Pure manifest builders: catalog + settings in, plain Kubernetes dicts out (no Pulumi here)."""
