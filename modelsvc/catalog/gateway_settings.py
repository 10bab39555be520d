"""The gateway's settings, declared once: name, type, default, environment variable, command-line flag and help.

From this list come the gateway's ``Settings`` (gateway/config.py), the flags of ``modelsvc serve`` with their
environment defaults (modelsvc/cli/run.py) and the environment the gateway's Deployment sets (infra/manifests/
gateway.py). It lives on the floor because infra may not import the gateway: it is plain data, importing nothing.

``field``: the ``Settings`` attribute ("images.max_bytes": a field of its ImagePolicy); empty for what is an argument
of the server rather than a setting (config file, host, port, workers). A default of None: unset (an empty value in
the environment means unset too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GatewaySetting:
    name: str  # the argparse destination (and the key of `values()`)
    kind: type  # str, int, float (a comma-separated list: `listed`)
    default: Any
    flag: str
    env: str
    help: str = ""
    field: str = ""
    choices: tuple[str, ...] = ()
    listed: bool = False  # "a,b,c" → ("a", "b", "c")
    optional: bool = False  # an empty value means unset (None)
    lower: bool = False  # case-insensitive names (host names)

    def parse(self, text: str) -> Any:
        """A value as the environment or the command line spells it."""
        if self.listed:
            parts = (part.strip() for part in text.split(","))
            return tuple(p.lower() if self.lower else p for p in parts if p)
        if text == "" and (self.optional or self.default is None):
            return None
        return self.kind(text)

    def from_env(self, environ: Mapping[str, str] | None = None) -> Any:
        text = (os.environ if environ is None else environ).get(self.env)
        return self.default if text is None else self.parse(text)


def _s(
    name: str, kind: type, default: Any, flag: str, env: str, help: str, field: str = "", **kw: Any
) -> GatewaySetting:
    return GatewaySetting(name, kind, default, flag, env, help, field, **kw)


SETTINGS: tuple[GatewaySetting, ...] = (
    # -- the server ------------------------------------------------------------------------------------------------
    _s("config", str, "services.yaml", "--config", "MODELSVC_CATALOG", "the catalog file (services.yaml)"),
    _s("host", str, "127.0.0.1", "--host", "MODELSVC_HOST", "address the API listens on"),
    _s("port", int, 8080, "--port", "MODELSVC_PORT", "port of the API"),
    _s("workers", int, 1, "--workers", "MODELSVC_WORKERS", "worker processes (more than 1 needs --redis-url)"),
    _s(
        "metrics_port",
        int,
        9091,
        "--metrics-port",
        "MODELSVC_METRICS_PORT",
        "internal port for /metrics and per-service /readyz, on the --metrics-host (0: off); keep it off the "
        "public load balancer",
        "metrics_port",
    ),
    _s(
        "metrics_host",
        str,
        None,
        "--metrics-host",
        "MODELSVC_METRICS_HOST",
        "address of the internal port (default: 127.0.0.1, whatever the --host; in Kubernetes set it, e.g. "
        "0.0.0.0, so that Prometheus reaches it)",
        "metrics_host",
        optional=True,
    ),
    # -- engines ---------------------------------------------------------------------------------------------------
    _s("deadline", float, 60.0, "--deadline", "MODELSVC_DEADLINE_SECONDS", "seconds per backend call", "deadline_s"),
    _s(
        "connect_timeout",
        float,
        5.0,
        "--connect-timeout",
        "MODELSVC_CONNECT_TIMEOUT_SECONDS",
        "seconds to connect to an engine and read its model config",
        "connect_timeout_s",
    ),
    _s(
        "non_streamed",
        str,
        "stream",
        "--non-streamed",
        "MODELSVC_NON_STREAMED",
        "how a non-streamed answer is read: stream (the engine's token stream, collected: a caller who leaves is "
        "billed what was generated; a message per token) or whole (one answer at the end: less CPU, but a cancelled "
        "request bills no output tokens)",
        "non_streamed",
        choices=("stream", "whole"),
    ),
    _s(
        "discovery",
        str,
        "static",
        "--discovery",
        "MODELSVC_DISCOVERY",
        "dns: find each service's pods through its headless Service (in Kubernetes)",
        "discovery",
        choices=("static", "dns"),
    ),
    _s("dns_port", int, 8001, "--dns-port", "MODELSVC_DNS_PORT", "Triton's gRPC port on each pod (dns)", "dns_port"),
    _s(
        "probe_interval",
        float,
        1.0,
        "--probe-interval",
        "MODELSVC_PROBE_INTERVAL_SECONDS",
        "seconds between readiness probes of a failed instance",
        "probe_interval_s",
    ),
    _s(
        "refresh_interval",
        float,
        10.0,
        "--refresh-interval",
        "MODELSVC_REFRESH_INTERVAL_SECONDS",
        "seconds between DNS lookups of each service's pods (dns)",
        "refresh_interval_s",
    ),
    _s(
        "health_interval",
        float,
        5.0,
        "--health-interval",
        "MODELSVC_HEALTH_INTERVAL_SECONDS",
        "seconds between readiness checks of healthy instances (0: off)",
        "health_interval_s",
    ),
    # -- the catalog -----------------------------------------------------------------------------------------------
    _s(
        "reload_poll",
        float,
        1.0,
        "--reload-poll",
        "MODELSVC_RELOAD_POLL_SECONDS",
        "seconds between checks of the catalog file for changes (0: SIGHUP only)",
        "reload_poll_s",
    ),
    _s(
        "reload_settle",
        float,
        1.0,
        "--reload-settle",
        "MODELSVC_RELOAD_SETTLE_SECONDS",
        "a changed catalog file is read once it has not changed for this long (a writer may still be writing)",
        "reload_settle_s",
    ),
    # -- usage -----------------------------------------------------------------------------------------------------
    _s(
        "usage_log",
        str,
        "var/usage.jsonl",
        "--usage-log",
        "MODELSVC_USAGE_LOG",
        "the local usage store: a JSON-lines file (used when --usage-store is not set)",
        "usage_log",
        optional=True,
    ),
    _s(
        "usage_store",
        str,
        None,
        "--usage-store",
        "MODELSVC_USAGE_STORE",
        "postgresql://… : the production usage store (records pass through --usage-spool)",
        "usage_store",
        optional=True,
    ),
    _s(
        "usage_spool",
        str,
        "var/usage-spool",
        "--usage-spool",
        "MODELSVC_USAGE_SPOOL",
        "directory where records wait until the database has them (a volume in Kubernetes)",
        "usage_spool",
    ),
    _s(
        "usage_api_rpm",
        int,
        60,
        "--usage-api-rpm",
        "MODELSVC_USAGE_API_RPM",
        "usage queries per API key per minute (the usage API and the console's usage pages; 0: unlimited)",
        "usage_api_rpm",
    ),
    _s(
        "usage_buffer_max",
        int,
        100_000,
        "--usage-buffer-max",
        "MODELSVC_USAGE_BUFFER_MAX",
        "records kept in memory while the disk refuses them; beyond that, 503 (fail closed)",
        "usage_buffer_max",
    ),
    # -- stored responses (the Responses API's store / previous_response_id) ---------------------------------------
    _s(
        "responses_store",
        str,
        "var/responses.sqlite3",
        "--responses-store",
        "MODELSVC_RESPONSES_STORE",
        "the local store of Responses API responses, a SQLite file (with --usage-store set to PostgreSQL, "
        "responses are kept there instead); empty: responses are not stored",
        "responses_store",
        optional=True,
    ),
    _s(
        "responses_ttl",
        float,
        30 * 86400.0,
        "--responses-ttl",
        "MODELSVC_RESPONSES_TTL_SECONDS",
        "seconds a stored response is kept (OpenAI keeps them 30 days)",
        "responses_ttl_s",
    ),
    # -- limits ----------------------------------------------------------------------------------------------------
    _s(
        "redis_url",
        str,
        None,
        "--redis-url",
        "REDIS_URL",
        "share rate limits and usage totals across gateway replicas (default: in memory)",
        "redis_url",
        optional=True,
    ),
    _s(
        "redis_timeout",
        float,
        0.25,
        "--redis-timeout",
        "MODELSVC_REDIS_TIMEOUT_SECONDS",
        "deadline of every Redis call (connect, command, script); past it the limits' outage policy applies",
        "redis_timeout_s",
    ),
    _s(
        "stream_lease",
        float,
        45.0,
        "--stream-lease",
        "MODELSVC_STREAM_LEASE_SECONDS",
        "seconds a dead replica's open streams keep counting against max_concurrent_streams",
        "stream_lease_s",
    ),
    # -- shutdown and slow clients ---------------------------------------------------------------------------------
    _s(
        "drain",
        float,
        0.0,
        "--drain",
        "MODELSVC_DRAIN_SECONDS",
        "after SIGTERM, seconds to keep serving with /readyz false (set ~5 in Kubernetes)",
        "drain_s",
    ),
    _s(
        "grace",
        float,
        30.0,
        "--grace",
        "MODELSVC_GRACE_SECONDS",
        "then, seconds in-flight requests and streams get to finish",
        "grace_s",
    ),
    _s(
        "max_connections",
        int,
        4096,
        "--max-connections",
        "MODELSVC_MAX_CONNECTIONS",
        "open client connections per process; past it a new one gets 503 and is closed (0: no cap)",
        "max_connections",
    ),
    _s(
        "request_timeout",
        float,
        15.0,
        "--request-timeout",
        "MODELSVC_REQUEST_TIMEOUT_SECONDS",
        "seconds a client has to send its whole request",
        "request_timeout_s",
    ),
    # -- the console's actions: pull requests on GitHub (off unless --github-repo is set; docs/console.md) ----------
    _s(
        "github_repo",
        str,
        None,
        "--github-repo",
        "MODELSVC_GITHUB_REPO",
        "OWNER/NAME of the repository holding services.yaml: the console's Deploy, Scale and Delete open pull "
        "requests there (default: off; the console shows the commands instead)",
        "github_repo",
        optional=True,
    ),
    _s(
        "github_base",
        str,
        "main",
        "--github-base",
        "MODELSVC_GITHUB_BASE",
        "the branch the pull requests target",
        "github_base",
    ),
    _s(
        "github_catalog_path",
        str,
        "services.yaml",
        "--github-catalog-path",
        "MODELSVC_GITHUB_CATALOG_PATH",
        "services.yaml's path in that repository",
        "github_catalog_path",
    ),
    _s(
        "github_api_url",
        str,
        "https://api.github.com",
        "--github-api-url",
        "MODELSVC_GITHUB_API_URL",
        "GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3)",
        "github_api_url",
    ),
    _s(
        "github_app_id",
        str,
        None,
        "--github-app-id",
        "MODELSVC_GITHUB_APP_ID",
        "the GitHub App's id (or client id) the actions act as",
        "github_app_id",
        optional=True,
    ),
    _s(
        "github_app_key_file",
        str,
        None,
        "--github-app-key-file",
        "MODELSVC_GITHUB_APP_KEY_FILE",
        "path of the file holding the App's private key (PEM); the key itself is never a flag or a variable",
        "github_app_key_file",
        optional=True,
    ),
    _s(
        "github_token_file",
        str,
        None,
        "--github-token-file",
        "MODELSVC_GITHUB_TOKEN_FILE",
        "instead of an App: path of the file holding a fine-grained personal access token",
        "github_token_file",
        optional=True,
    ),
    _s(
        "github_gate_check",
        str,
        "modelsvc gate",
        "--github-gate-check",
        "MODELSVC_GITHUB_GATE_CHECK",
        "name of the required check whose conclusion the console shows on a pending pull request",
        "github_gate_check",
    ),
    _s(
        "github_poll",
        float,
        15.0,
        "--github-poll",
        "MODELSVC_GITHUB_POLL_SECONDS",
        "seconds the pending pull requests' status is kept between reads from GitHub",
        "github_poll_s",
    ),
    _s(
        "console_actions_per_minute",
        int,
        5,
        "--console-actions-per-minute",
        "MODELSVC_CONSOLE_ACTIONS_PER_MINUTE",
        "console actions (pull requests) each owner may start per minute",
        "console_actions_per_minute",
    ),
    # -- image URLs in vision requests -----------------------------------------------------------------------------
    _s(
        "image_hosts",
        str,
        (),
        "--image-hosts",
        "MODELSVC_IMAGE_HOSTS",
        "comma-separated host names image URLs may point at (default: any public host)",
        "images.allow_hosts",
        listed=True,
        lower=True,
    ),
    _s(
        "image_allow_networks",
        str,
        (),
        "--image-allow-networks",
        "MODELSVC_IMAGE_ALLOW_NETWORKS",
        "comma-separated non-public networks image URLs may reach anyway, e.g. 127.0.0.0/8 for local tests "
        "(default: none)",
        "images.allow_networks",
        listed=True,
    ),
    _s(
        "image_max_bytes",
        int,
        20 * 1024 * 1024,
        "--image-max-bytes",
        "MODELSVC_IMAGE_MAX_BYTES",
        "largest image accepted",
        "images.max_bytes",
    ),
    _s(
        "image_timeout",
        float,
        10.0,
        "--image-timeout",
        "MODELSVC_IMAGE_TIMEOUT_SECONDS",
        "seconds to fetch one image URL",
        "images.timeout_s",
    ),
    _s(
        "image_max_per_request",
        int,
        16,
        "--image-max-per-request",
        "MODELSVC_IMAGE_MAX_PER_REQUEST",
        "images one request may carry (checked before anything is fetched)",
        "images.max_per_request",
    ),
    _s(
        "image_max_request_bytes",
        int,
        50 * 1024 * 1024,
        "--image-max-request-bytes",
        "MODELSVC_IMAGE_MAX_REQUEST_BYTES",
        "image bytes of one request in all",
        "images.max_request_bytes",
    ),
    _s(
        "image_fetch_concurrency_per_request",
        int,
        4,
        "--image-fetch-concurrency-per-request",
        "MODELSVC_IMAGE_FETCH_CONCURRENCY_PER_REQUEST",
        "image URLs of one request fetched at once",
        "images.concurrency_per_request",
    ),
    _s(
        "image_fetch_concurrency",
        int,
        32,
        "--image-fetch-concurrency",
        "MODELSVC_IMAGE_FETCH_CONCURRENCY",
        "image URLs fetched at once by this process, all requests together",
        "images.concurrency",
    ),
    _s(
        "image_budget_bytes",
        int,
        256 * 1024 * 1024,
        "--image-budget-bytes",
        "MODELSVC_IMAGE_BUDGET_BYTES",
        "fetched image bytes all requests of this process may hold at once; beyond it, 503 with Retry-After",
        "images.budget_bytes",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


def env_name(name: str) -> str:
    """The environment variable of a declared setting (infra/manifests/gateway.py sets them by these names)."""
    return BY_NAME[name].env
