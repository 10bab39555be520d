"""The Responses API on the chat path: translate.py makes a Responses request into the chat request the engine
runs (gateway/flow.py runs it like any other: one flow, one usage record; gateway/shape.py's ResponsesShape answers
it), store.py keeps stored responses per owner."""

from .store import DEFAULT_TTL_S, ResponseStore, SqliteStore, Stored, make_store
from .translate import ResponsesRequest, responses_request, validated

__all__ = [
    "DEFAULT_TTL_S",
    "ResponseStore",
    "ResponsesRequest",
    "SqliteStore",
    "Stored",
    "make_store",
    "responses_request",
    "validated",
]
