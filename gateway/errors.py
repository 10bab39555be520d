"""One exception type per failure kind; `openai_error_body` maps them to the OpenAI error shape in one place."""

from __future__ import annotations

import re

# Internal addresses (an engine's "10.0.3.7:8001", "ipv4:127.0.0.1:18602", "[fd00::1]:8001", "http://vllm:8000/v1")
# belong in the logs, never in what a caller reads: the server-side errors' messages are scrubbed on the way out.
_ADDRESS = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://[^\s'\"]*[^\s'\":,.;)])"  # any URL (not its trailing punctuation)
    r"|(?:\bipv[46]:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d+)?)"  # gRPC's "ipv4:1.2.3.4:5" targets
    r"|(?:\bunix:[^\s'\",;:]+)"
    r"|(?:\[[0-9a-f:.]+\](?::\d+)?)"  # [IPv6]:port
    r"|(?:\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b)"  # IPv4[:port]
    r"|(?:\b(?=[0-9a-f:]*:[0-9a-f:]*:)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b)"  # bare IPv6
    r"|(?:\b[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?:\d{2,5}\b)",  # host:port
    re.IGNORECASE,
)


def redact_addresses(message: str) -> str:
    return _ADDRESS.sub("<internal>", message)


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str | None]]:
        message = self.message if self.status < 500 else redact_addresses(self.message)
        return {"error": {"message": message, "type": self.type, "param": self.param, "code": self.code}}


# -- the caller's fault (4xx) ------------------------------------------------------------------------------------------
class InvalidRequest(GatewayError):
    """Malformed JSON, wrong types, missing fields, values out of range."""

    status = 400
    type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    """A valid OpenAI parameter the model cannot honour (e.g. seed on a model without a seed input)."""

    code = "unsupported_parameter"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class HeadersTooLarge(InvalidRequest):
    status = 431
    code = "request_header_fields_too_large"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(GatewayError):
    """Unknown model, or one the caller's key may not use (never reveal which)."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(GatewayError):
    """An unknown URL or object. OpenAI answers unknown URLs with code null ("Invalid URL (GET /v1/x)") — never a
    code a client could read as "model not found"."""

    status = 404
    type = "invalid_request_error"
    code = None


def unknown_url(method: str, path: str) -> NotFound:
    """OpenAI's own answers: "Invalid URL (POST /v1/x)" under /v1, code null; elsewhere "Unknown request URL",
    code "unknown_url"."""
    shown = path if len(path) <= 200 else path[:200] + "…"
    if path.startswith("/v1/"):
        return NotFound(f"Invalid URL ({method} {shown})")
    return NotFound(
        f"Unknown request URL: {method} {shown}. Please check the URL for typos, or see the docs at "
        "https://platform.openai.com/docs/api-reference/.",
        code="unknown_url",
    )


class InvalidEdit(InvalidRequest):
    """A console action whose services.yaml edit is refused (modelsvc.catalog.edit): the message names the input
    (`param`), and `problems` carries each located problem so the form shows it beside its field."""

    code = "invalid_edit"

    def __init__(
        self, message: str, *, param: str | None = None, problems: list[dict[str, object]] | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.problems = problems or []

    def body(self) -> dict[str, object]:  # type: ignore[override]  # adds "problems" beside "error"
        return {**super().body(), "problems": self.problems}


class Conflict(GatewayError):
    """The action cannot be taken now: the service has a pending pull request, or main changed under it."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


# -- the backend's fault (5xx) -----------------------------------------------------------------------------------------
class BackendError(GatewayError):
    """The engine answered with an error."""

    status = 502
    type = "server_error"
    code = "backend_error"
    partial = False  # whether output had already reached the caller (set by the backend that raises it)


class ModelOutputError(GatewayError):
    """The model wrote what cannot be the answer asked for (a tool call that broke after it went out, arguments
    that do not fit a strict schema): OpenAI's "model_error". 502: the engine answered, badly; not the caller's
    fault, and not retried (the engine did the work, and would likely write the same)."""

    status = 502
    type = "model_error"
    code = "invalid_model_output"


class BackendUnavailable(BackendError):
    """No instance could be reached (connection refused, not ready). Safe to retry on another instance."""

    status = 503
    code = "backend_unavailable"


class BackendTimeout(BackendError):
    """The engine did not answer within the deadline."""

    status = 504
    code = "backend_timeout"


class UsageUnavailable(GatewayError):
    """Usage cannot be recorded (the disk refuses records and the memory buffer is full) or read (the usage
    database is down). Retry later; nothing was charged."""

    status = 503
    type = "server_error"
    code = "usage_unavailable"


class GitHubUnavailable(GatewayError):
    """GitHub refused or failed a call of the console's actions (the pull request was not opened)."""

    status = 502
    type = "server_error"
    code = "github_error"


class ActionsUnavailable(GatewayError):
    """The console's actions are not configured, or their GitHub access failed its start-up check."""

    status = 503
    type = "server_error"
    code = "console_actions_unavailable"


class StoreUnavailable(GatewayError):
    """Stored responses cannot be read (the database is down): a follow-up cannot be answered right now."""

    status = 503
    type = "server_error"
    code = "store_unavailable"


# -- the gateway's own state (5xx) -------------------------------------------------------------------------------------
class ImagesBusy(GatewayError):
    """The image bytes the process may hold at once (fetched for requests in flight) are spent: retry shortly."""

    status = 503
    code = "images_busy"


class ShuttingDown(GatewayError):
    """The gateway stopped at the end of its shutdown grace with this request still running."""

    status = 503
    code = "gateway_shutting_down"


class LimitStoreUnavailable(GatewayError):
    """The shared limit store (Redis) cannot be reached and the limit fails closed."""

    status = 503
    code = "limit_store_unavailable"


def openai_error_body(exc: BaseException) -> tuple[int, dict[str, dict[str, str | None]], dict[str, str]]:
    """(status, body, headers) for any exception; unknown ones become a bare 500 without internals."""
    if isinstance(exc, GatewayError):
        return exc.status, exc.body(), exc.headers
    err = GatewayError("internal error")
    return err.status, err.body(), {}
