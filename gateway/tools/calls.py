"""One function call written as JSON, parsed as it arrives: ``{"name": ..., "arguments": {...}}`` (Hermes/Qwen,
Mistral, the gateway's own guided "required" array) or ``{"name": ..., "parameters": {...}}`` (Llama 3.x), or the
bare arguments object of a forced (named) call.

The head of the call (its name) is known as soon as the name's value is complete; from then on the arguments are
handed out as they are written, each piece a valid JSON prefix (jsonscan validates every character). What is not a
call (a JSON answer with other keys, a call of a function that was not offered) is ``NotACall`` before anything of
it was handed out, so the caller can give the text back as text.
"""

from __future__ import annotations

import json

from .jsonscan import JsonError, JsonScan, Member

NAME_KEYS = ("name",)
ARGUMENT_KEYS = ("arguments", "parameters")
# other keys the families' own examples put in a call object (Llama 3.2: "type"; Mistral's history: "id")
OTHER_KEYS = ("type", "id")
MAX_MEMBERS = 8


class NotACall(ValueError):
    """The text is not a function call (nothing of it was handed out as a call)."""


class Malformed(ValueError):
    """The call broke after its head was handed out: invalid JSON, or more than the buffer cap."""


class TooLarge(ValueError):
    """The call is larger than the parse buffer's cap."""


Event = tuple[str, str]  # ("head", name) | ("args", fragment)


class CallParse:
    """One call object. ``feed(piece)`` returns (index in piece just past the object or -1, events)."""

    __slots__ = (
        "_args",
        "_args_kind",
        "_args_sent",
        "_keys",
        "_name_member",
        "_parts",
        "_size",
        "arguments",
        "done",
        "head_sent",
        "limit",
        "name",
        "scan",
        "tools",
    )

    def __init__(self, tools: frozenset[str] | None, limit: int) -> None:
        self.scan = JsonScan()
        self.tools = tools  # the functions offered (None: any name)
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._keys: list[str] = []  # the keys of the members checked so far
        self._name_member: Member | None = None
        self._args: Member | None = None
        self._args_kind = ""  # the arguments value's first character, once written
        self._args_sent = 0  # characters of the arguments handed out
        self.name: str | None = None
        self.head_sent = False
        self.done = False
        self.arguments = ""  # once done: the arguments as JSON text

    def _text(self, start: int, end: int) -> str:
        return "".join(self._parts)[start:end]

    def _fail(self, why: str) -> ValueError:
        return Malformed(why) if self.head_sent else NotACall(why)

    def feed(self, piece: str) -> tuple[int, list[Event]]:
        start = self._size
        try:
            end = self.scan.feed(piece)
        except JsonError as e:
            raise self._fail(str(e)) from None
        used = piece if end < 0 else piece[:end]
        self._parts.append(used)
        self._size += len(used)
        if self._size > self.limit:
            raise TooLarge(f"a tool call longer than {self.limit} characters")
        if self.scan.top and self.scan.top != "{":
            raise NotACall("not a JSON object")
        self._classify()
        events: list[Event] = []
        if self.scan.done:
            self._finish(events, start, used)
            return end, events
        self._stream(events, start, used)
        return -1, events

    def _classify(self) -> None:
        members = self.scan.members
        if len(members) > MAX_MEMBERS:
            raise self._fail("too many keys for a function call")
        for m in members[len(self._keys) :]:
            if m.key_end < 0:
                break
            key = _loads(self._text(m.key_start, m.key_end))
            if key in ARGUMENT_KEYS:
                if self._args is not None:
                    raise self._fail("two argument objects")
                self._args = m
            elif key in NAME_KEYS:
                if self._name_member is not None:
                    raise self._fail("two function names")
                self._name_member = m
            elif key not in OTHER_KEYS:
                raise self._fail(f"a key {key!r} that no function call has")
            self._keys.append(str(key))
        named = self._name_member
        if self.name is None and named is not None and named.value_end is not None:
            name = _loads(self._text(named.value_start, named.value_end))
            if not isinstance(name, str) or not name:
                raise self._fail("the function name is not a string")
            if self.tools is not None and name not in self.tools:
                raise self._fail(f"a call of {name!r}, which was not offered")
            self.name = name
        a = self._args
        if a is not None and not self._args_kind and 0 <= a.value_start < self._size:
            self._args_kind = self._text(a.value_start, a.value_start + 1)

    def _streamable(self) -> bool:
        return self._args_kind == "{"

    def _stream(self, events: list[Event], piece_start: int, used: str) -> None:
        if self.name is None or self._args is None or self._args.value_start < 0:
            return
        if not self.head_sent:
            if not self._streamable():
                return  # arguments given as a JSON string: handed out decoded, once complete
            self.head_sent = True
            events.append(("head", self.name))
            # what was written before the head could go out
            backlog = self._text(self._args.value_start, self._size)
            self._args_sent = len(backlog)
            if backlog:
                events.append(("args", backlog))
            return
        if not self._streamable():
            return
        a_start = self._args.value_start
        lo = max(a_start + self._args_sent, piece_start)
        hi = self._size if self._args.value_end is None else min(self._args.value_end, self._size)
        if hi > lo:
            fragment = used[lo - piece_start : hi - piece_start]
            self._args_sent += len(fragment)
            events.append(("args", fragment))

    def _finish(self, events: list[Event], piece_start: int, used: str) -> None:
        self.done = True
        if self.name is None:
            raise self._fail("a JSON object without a function name")
        a = self._args
        if a is None or a.value_end is None:
            arguments = "{}"
        else:
            raw = self._text(a.value_start, a.value_end)
            if raw.startswith('"'):  # arguments as a JSON string holding the object (some fine-tunes)
                inner = _loads(raw)
                if not isinstance(inner, str) or not isinstance(_loads_or_none(inner), dict):
                    raise self._fail("the arguments are not a JSON object")
                arguments = inner
            elif raw.startswith("{"):
                arguments = raw
            else:
                raise self._fail("the arguments are not a JSON object")
        self.arguments = arguments
        if not self.head_sent:
            self.head_sent = True
            events.append(("head", self.name))
            if arguments:
                events.append(("args", arguments))
            self._args_sent = len(arguments)
            return
        rest = arguments[self._args_sent :]
        if rest:
            events.append(("args", rest))
            self._args_sent = len(arguments)


class ArgsParse:
    """The arguments object of a forced call (guided decoding wrote exactly the function's parameters)."""

    __slots__ = ("_parts", "_size", "done", "head_sent", "limit", "name", "scan")

    def __init__(self, name: str, limit: int) -> None:
        self.scan = JsonScan()
        self.name = name
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.head_sent = False
        self.done = False

    @property
    def arguments(self) -> str:
        return "".join(self._parts)

    def feed(self, piece: str) -> tuple[int, list[Event]]:
        if not self.head_sent:
            piece = piece.lstrip()
            if not piece:
                return -1, []
        try:
            end = self.scan.feed(piece)
        except JsonError as e:
            if self.head_sent:
                raise Malformed(str(e)) from None
            raise NotACall(str(e)) from None
        used = piece if end < 0 else piece[:end]
        if self.scan.top != "{":
            raise NotACall("the arguments are not a JSON object")
        self._parts.append(used)
        self._size += len(used)
        if self._size > self.limit:
            raise TooLarge(f"a tool call longer than {self.limit} characters")
        events: list[Event] = []
        if not self.head_sent:
            self.head_sent = True
            events.append(("head", self.name))
        if used:
            events.append(("args", used))
        self.done = self.scan.done
        return end, events


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise NotACall("invalid JSON") from None


def _loads_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
