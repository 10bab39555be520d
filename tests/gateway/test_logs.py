"""The log formatter every gateway and Sanic log line goes through: no URL query, credential or key survives it."""

import logging
import sys

from gateway.logs import RedactingFormatter, redact


def test_query_strings_keys_and_url_credentials_are_redacted():
    line = redact(
        "Bad URL: /v1/models?api_key=sk-ms-abcdef123456&x=1 from http://bob:hunter2@up.example/v1 "
        "with token sk-live-0123456789abcdef; did you mean 'models'?"
    )
    assert "sk-ms-abcdef123456" not in line and "hunter2" not in line and "sk-live-0123456789abcdef" not in line
    assert "/v1/models?[redacted]" in line and "http://[redacted]@up.example/v1" in line
    assert line.endswith("did you mean 'models'?")  # ordinary text stays readable


def test_tracebacks_are_redacted_too():
    try:
        raise ValueError("invalid url b'/v1/models?api_key=sk-ms-secret-in-traceback'")
    except ValueError:
        record = logging.LogRecord("sanic.error", logging.ERROR, __file__, 1, "uncaught", None, sys.exc_info())
    out = RedactingFormatter("%(message)s").format(record)
    assert "Traceback" in out and "sk-ms-secret-in-traceback" not in out
