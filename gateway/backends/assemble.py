"""One generation's output, assembled from the engine's responses: pure and synchronous (no gRPC, no I/O).

What TensorRT-LLM sends is not what an OpenAI caller must see:

* a matched stop string stays in the engine's output (it also matches only on token boundaries): the output is cut
  before the first match; while streaming, text that could be the start of a stop string is held back until it is
  known not to be one, and once one matched the generation is over (the caller cancels the engine);
* BLS with ``accumulate_tokens`` sends the cumulative text each time: it is diffed against the previous one;
* ``num_output_tokens`` is per response: summed; ``num_input_tokens``: the last value seen. Without the counts,
  completion tokens = responses received (one per token on a decoupled model) or words, prompt tokens the estimate;
* ``finish_reason``: "stop" when a stop string matched, "length" when ``completion_tokens >= max_tokens``, else
  "stop" (Triton's own OpenAI frontend always says "stop").

``Assembly(req, stream=True)``: ``add()`` per response returns the Delta the caller may see now, ``end()`` the
held-back rest once the engine is done, ``result()`` the GenResult. ``stream=False`` (one answer for the whole
generation): ``add()`` only collects, and ``result()`` cuts the whole text at the earliest stop string.

The model's end-of-turn tokens beyond the engine's one ``end_id`` (``GenRequest.end_tokens``) are cut like stop
strings: they end the answer and never reach the caller.

``Choices`` does the same for n > 1 (``num_return_sequences``): one Assembly per sequence, told apart by the engine's
``sequence_index``; the counts are summed over the sequences, and the generation is over once every one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .base import Choice, Delta, GenRequest, GenResult, TokenLogprob

log = logging.getLogger("gateway.backends.assemble")


def stop_cut(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop-string match in text, or None."""
    best = None
    for s in stops:
        i = text.find(s)
        if i != -1 and (best is None or i < best):
            best = i
    return best


def holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of text that is a proper prefix of some stop string."""
    longest = max(len(s) for s in stops) - 1
    tail = text[-longest:] if longest > 0 else ""
    if not any(s[0] in tail for s in stops):
        return 0  # the common case: no stop string can start in the last characters
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


def finish_reason(stopped: bool, completion_tokens: int, max_tokens: int) -> str:
    if stopped:
        return "stop"
    return "length" if completion_tokens >= max_tokens else "stop"


class Assembly:
    __slots__ = (
        "_cumulative",
        "_emitted",
        "_firsts",
        "_last",
        "_n_in",
        "_n_out",
        "_pending",
        "_req",
        "_stops",
        "_stream",
        "_unsent",
        "index",
        "meter",
        "responses",
        "stopped",
        "tokens",
    )

    def __init__(
        self, req: GenRequest, *, stream: bool = True, cumulative: bool = False, index: int = 0, meter: bool = True
    ) -> None:
        self._req = req
        self._stream = stream
        self._cumulative = cumulative
        self.index = index  # the choice (sequence_index)
        self.meter = meter  # keep req.work up to date (Choices sums its sequences itself)
        self._stops = [s for s in req.sampling.stop if s]
        if req.end_tokens:
            self._stops += [t for t in req.end_tokens if t]
        self._firsts = tuple({st[0] for st in self._stops})  # the first characters of the stop strings
        self._emitted: list[str] = []  # text handed to the caller (streaming) or collected (not streaming)
        self._pending = ""  # received but not handed over yet (could start a stop string)
        self._last = ""  # the previous cumulative text (BLS accumulate_tokens)
        self._n_in: int | None = None
        self._n_out: int | None = None  # the sum of num_output_tokens, once a response carried it
        self._unsent = 0  # tokens not yet attached to a Delta
        self.responses = 0
        self.stopped = False  # a stop string matched: the generation is over
        self.tokens: list[TokenLogprob] | None = [] if req.sampling.logprobs else None

    def add(self, text: str, n_in: int | None, n_out: int | None, logprobs: Sequence[float] = ()) -> Delta | None:
        """One response of the engine: its text, token counts and (when asked) the log probabilities of its tokens.
        Returns what the caller may see now (streaming only); `req.work` is kept up to date for metering."""
        self.responses += 1
        work = self._req.work
        if n_in is not None:
            self._n_in = n_in
            if self.meter:
                work.prompt_tokens = n_in
        if n_out is not None:
            self._n_out = (self._n_out or 0) + n_out
        if self.meter:
            work.completion_tokens = self._n_out if self._n_out is not None else self.responses
        if self._cumulative:
            if not text.startswith(self._last):  # the detokenizer rewrote earlier text: continue from the end
                log.warning("cumulative text did not extend the previous one")
            piece, self._last = text[len(self._last) :], text
        else:
            piece = text
        if self.tokens is not None:
            # One response per token when streaming; if the engine sent several, the text goes with the first
            self.tokens.extend((piece if i == 0 else "", lp) for i, lp in enumerate(logprobs))
        if not self._stream:
            self._emitted.append(piece)
            return None
        if self._stops:
            pending = self._pending + piece
            if not any(c in pending for c in self._firsts):
                # no stop string can be in it or start in it: the common case, one scan per first character
                self._pending = ""
                return self._delta(pending) if pending else None
            cut = stop_cut(pending, self._stops)  # a match cannot start in what was emitted (its start was held)
            if cut is not None:
                safe, self._pending, self.stopped = pending[:cut], "", True
            else:
                keep = holdback(pending, self._stops)
                safe, self._pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
        else:
            safe = piece
        return self._delta(safe) if safe else None

    @property
    def count(self) -> int:
        """Completion tokens so far: the engine's count, else the responses received."""
        return self._n_out if self._n_out is not None else self.responses

    def end(self) -> Delta | None:
        """The engine is done: held-back text was not a stop string after all."""
        pending, self._pending = self._pending, ""
        return self._delta(pending) if pending else None

    def _delta(self, text: str) -> Delta:
        self._emitted.append(text)
        tokens = self.tokens
        if tokens is None:
            return Delta(text, index=self.index) if self.index else Delta(text)
        unsent, self._unsent = self._unsent, len(tokens)
        return Delta(text, tokens[unsent:], index=self.index)

    def result(self, *, count_responses: bool = False) -> GenResult:
        """The whole answer. Without the engine's output count: responses received (count_responses: one per token
        on a decoupled model), else the words of the text."""
        text, completion = self._finished(count_responses)
        req = self._req
        prompt = req.settle(self._n_in, completion)
        reason = finish_reason(self.stopped, completion, req.sampling.max_tokens)
        return GenResult(text, prompt, completion, reason, self.tokens)

    def _finished(self, count_responses: bool) -> tuple[str, int]:
        """The text (a whole answer's stop string cut here) and its output count."""
        text = "".join(self._emitted)
        if not self._stream:
            cut = stop_cut(text, self._stops)
            if cut is not None:
                text, self.stopped = text[:cut], True
        if self._n_out is not None:
            return text, self._n_out
        return text, self.responses if count_responses else len(text.split())

    def choice(self, *, count_responses: bool = False) -> Choice:
        """This sequence's finished choice (Choices.result)."""
        text, completion = self._finished(count_responses)
        reason = finish_reason(self.stopped, completion, self._req.sampling.max_tokens)
        return Choice(text, reason, completion, self.tokens)


class Choices:
    """n > 1: one Assembly per sequence (the engine's sequence_index), counts summed."""

    __slots__ = ("_req", "_stream", "parts")

    def __init__(self, req: GenRequest, *, stream: bool = True, cumulative: bool = False) -> None:
        self._req = req
        self._stream = stream
        self.parts = [
            Assembly(req, stream=stream, cumulative=cumulative, index=i, meter=False) for i in range(req.sampling.n)
        ]

    @property
    def responses(self) -> int:
        return sum(a.responses for a in self.parts)

    @property
    def stopped(self) -> bool:
        return all(a.stopped for a in self.parts)

    def add(
        self, index: int, text: str, n_in: int | None, n_out: int | None, logprobs: Sequence[float] = ()
    ) -> Delta | None:
        if not 0 <= index < len(self.parts):
            raise ValueError(f"sequence_index {index} outside 0..{len(self.parts) - 1}")
        part = self.parts[index]
        if part.stopped:
            return None  # this choice is over (a stop string matched); the others go on
        delta = part.add(text, n_in, n_out, logprobs)
        work = self._req.work
        if n_in is not None:
            work.prompt_tokens = n_in
        work.completion_tokens = sum(a.count for a in self.parts)
        return delta

    def end(self) -> list[Delta]:
        return [d for a in self.parts if (d := a.end()) is not None]

    def result(self, *, count_responses: bool = False) -> GenResult:
        choices = [a.choice(count_responses=count_responses) for a in self.parts]
        n_in = next((a._n_in for a in self.parts if a._n_in is not None), None)
        completion = sum(c.completion_tokens for c in choices)
        prompt = self._req.settle(n_in, completion)
        first = choices[0]
        return GenResult(first.text, prompt, completion, first.finish_reason, first.logprobs, more=choices[1:])
