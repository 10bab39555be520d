"""Benchmark of the gateway: added latency, throughput, streaming overhead and memory, side by side with the
upstream alone and with LiteLLM proxy. Entry point: ``python -m bench [--quick]``."""
