"""An incremental JSON validator for one top-level value, fed a piece at a time (pure, synchronous).

Tool-call arguments are streamed as the engine writes them, so the parser must know, character by character,
whether what it has so far can still be valid JSON and where the value ends — without re-parsing the whole
buffer on every piece (the cause of Triton's frontend needing a parse-bytes cap after an out-of-memory report,
triton-inference-server/server PR #8811). Grammar: RFC 8259 (what ``json.loads`` accepts minus NaN/Infinity).

Inside a top-level object it also records where each member's key and value are (``members``), which is what
the call parser needs: the function's name, and where its arguments start and end.
"""

from __future__ import annotations

_WS = " \t\n\r"
_HEX = "0123456789abcdefABCDEF"
_DIGITS = "0123456789"
_LITERALS = {"t": "true", "f": "false", "n": "null"}

# states
_VALUE, _KEY_OR_END, _KEY, _COLON, _OBJ_NEXT, _VALUE_OR_END, _ARR_NEXT, _STRING, _ESCAPE, _UNICODE, _LITERAL = range(11)
_DONE = 11
# number sub-states: after '-', after a leading 0, in the integer, after '.', in the fraction, after 'e', after the
# exponent's sign, in the exponent
_N_MINUS, _N_ZERO, _N_INT, _N_DOT, _N_FRAC, _N_E, _N_ESIGN, _N_EXP = range(8)
_N_FINAL = {_N_ZERO, _N_INT, _N_FRAC, _N_EXP}
_NUMBER = 12


class JsonError(ValueError):
    """What was fed cannot be (the start of) a JSON value."""


class Member:
    """One member of the top-level object: [key_start, key_end) and [value_start, value_end) in the text fed
    (key spans include the quotes); value_end is None while the value is still being written."""

    __slots__ = ("key_end", "key_start", "value_end", "value_start")

    def __init__(self, key_start: int) -> None:
        self.key_start = key_start
        self.key_end = -1
        self.value_start = -1
        self.value_end: int | None = None


class JsonScan:
    __slots__ = ("_is_key", "_lit", "_num", "_uni", "members", "pos", "stack", "state", "top")

    def __init__(self) -> None:
        self.stack: list[str] = []  # "o" / "a": the open containers
        self.state = _VALUE
        self.pos = 0  # characters consumed
        self.top = ""  # the top-level value's first character ("{" for an object), once seen
        self.members: list[Member] = []  # of the top-level object, in order
        self._is_key = False
        self._uni = 0
        self._num = 0
        self._lit = ""

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def finish(self) -> bool:
        """The input ended: whether the value is complete (a top-level number ends only here)."""
        if self.state == _NUMBER and self._num in _N_FINAL and not self.stack:
            self.state = _DONE
        return self.state == _DONE

    def feed(self, text: str) -> int:
        """Consume `text`; returns the index in it just past the end of the top-level value (-1: not ended yet).
        Raises JsonError at the first character that cannot continue valid JSON. Nothing after the end is read."""
        i, n = 0, len(text)
        while i < n:
            if self.state == _DONE:
                return i
            c = text[i]
            if self._step(c):
                i += 1
                self.pos += 1
            # else: the character ended a number and is read again in the new state
        return i if self.state == _DONE else -1

    # -- one character: a handler per state ----------------------------------------------------------------------
    def _step(self, c: str) -> bool:
        """Consume c; False when it was not consumed (it ended a number)."""
        st = self.state
        if st >= _STRING:
            return _IN_TOKEN[st - _STRING](self, c)
        if c in _WS:
            return True
        _BETWEEN[st](self, c)
        return True

    def _after_end(self, c: str) -> bool:
        raise AssertionError("the value has ended: feed() reads nothing past it")

    def _string(self, c: str) -> bool:
        if c == '"':
            self._end_string()
        elif c == "\\":
            self.state = _ESCAPE
        elif c < " ":
            raise JsonError("a control character inside a string")
        return True

    def _escape(self, c: str) -> bool:
        if c == "u":
            self.state, self._uni = _UNICODE, 0
        elif c in '"\\/bfnrt':
            self.state = _STRING
        else:
            raise JsonError(f"invalid escape \\{c}")
        return True

    def _unicode(self, c: str) -> bool:
        if c not in _HEX:
            raise JsonError("invalid \\u escape")
        self._uni += 1
        if self._uni == 4:
            self.state = _STRING
        return True

    def _literal(self, c: str) -> bool:
        if c != self._lit[0]:
            raise JsonError("invalid literal")
        self._lit = self._lit[1:]
        if not self._lit:
            self._end_value()
        return True

    def _value(self, c: str) -> None:
        self._begin_value(c)

    def _value_or_end(self, c: str) -> None:
        if c == "]":
            self._close("a")
        else:
            self._begin_value(c)

    def _key(self, c: str) -> None:
        if c != '"':
            raise JsonError("expected a string key")
        if len(self.stack) == 1:
            self.members.append(Member(self.pos))
        self.state, self._is_key = _STRING, True

    def _key_or_end(self, c: str) -> None:
        if c == "}":
            self._close("o")
        else:
            self._key(c)

    def _colon(self, c: str) -> None:
        if c != ":":
            raise JsonError("expected ':'")
        self.state = _VALUE

    def _obj_next(self, c: str) -> None:
        if c == ",":
            self.state = _KEY
        elif c == "}":
            self._close("o")
        else:
            raise JsonError("expected ',' or '}'")

    def _arr_next(self, c: str) -> None:
        if c == ",":
            self.state = _VALUE
        elif c == "]":
            self._close("a")
        else:
            raise JsonError("expected ',' or ']'")

    def _begin_value(self, c: str) -> None:
        if not self.stack and not self.top:
            self.top = c
        elif len(self.stack) == 1 and self.stack[0] == "o" and self.members:
            self.members[-1].value_start = self.pos
        if c == "{":
            self.stack.append("o")
            self.state = _KEY_OR_END
        elif c == "[":
            self.stack.append("a")
            self.state = _VALUE_OR_END
        elif c == '"':
            self.state, self._is_key = _STRING, False
        elif c == "-":
            self.state, self._num = _NUMBER, _N_MINUS
        elif c in _DIGITS:
            self.state, self._num = _NUMBER, (_N_ZERO if c == "0" else _N_INT)
        elif c in _LITERALS:
            self.state, self._lit = _LITERAL, _LITERALS[c][1:]
        else:
            raise JsonError(f"unexpected {c!r}")

    def _number(self, c: str) -> bool:
        s = self._num
        if c in _DIGITS:
            if s == _N_MINUS:
                self._num = _N_ZERO if c == "0" else _N_INT
            elif s == _N_ZERO:
                raise JsonError("a leading zero")
            elif s == _N_DOT:
                self._num = _N_FRAC
            elif s in (_N_E, _N_ESIGN):
                self._num = _N_EXP
            return True
        if c == "." and s in (_N_ZERO, _N_INT):
            self._num = _N_DOT
            return True
        if c in "eE" and s in (_N_ZERO, _N_INT, _N_FRAC):
            self._num = _N_E
            return True
        if c in "+-" and s == _N_E:
            self._num = _N_ESIGN
            return True
        if s not in _N_FINAL:
            raise JsonError("an incomplete number")
        self._end_value()  # c is read again after the number
        return False

    def _end_string(self) -> None:
        if self._is_key:
            if len(self.stack) == 1 and self.members:
                self.members[-1].key_end = self.pos + 1
            self.state = _COLON
        else:
            self._end_value()

    def _close(self, kind: str) -> None:
        self.stack.pop()
        self._end_value(closing=True)

    def _end_value(self, closing: bool = False) -> None:
        end = self.pos + (1 if (closing or self.state in (_STRING, _LITERAL)) else 0)
        if len(self.stack) == 1 and self.stack[0] == "o" and self.members:
            member = self.members[-1]
            if member.value_start >= 0 and member.value_end is None:
                member.value_end = end
        if not self.stack:
            self.state = _DONE
        else:
            self.state = _OBJ_NEXT if self.stack[-1] == "o" else _ARR_NEXT


# the handlers by state: between tokens (_VALUE .. _ARR_NEXT), inside one (_STRING .. _NUMBER)
_BETWEEN = (
    JsonScan._value,
    JsonScan._key_or_end,
    JsonScan._key,
    JsonScan._colon,
    JsonScan._obj_next,
    JsonScan._value_or_end,
    JsonScan._arr_next,
)
_IN_TOKEN = (
    JsonScan._string,
    JsonScan._escape,
    JsonScan._unicode,
    JsonScan._literal,
    JsonScan._after_end,
    JsonScan._number,
)
