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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .base import Delta, GenRequest, GenResult, TokenLogprob

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
        "_last",
        "_n_in",
        "_n_out",
        "_pending",
        "_req",
        "_stops",
        "_stream",
        "_unsent",
        "responses",
        "stopped",
        "tokens",
    )

    def __init__(self, req: GenRequest, *, stream: bool = True, cumulative: bool = False) -> None:
        self._req = req
        self._stream = stream
        self._cumulative = cumulative
        self._stops = [s for s in req.sampling.stop if s]
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
            self._n_in = work.prompt_tokens = n_in
        if n_out is not None:
            self._n_out = (self._n_out or 0) + n_out
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
            cut = stop_cut(pending, self._stops)  # a match cannot start in what was emitted (its start was held)
            if cut is not None:
                safe, self._pending, self.stopped = pending[:cut], "", True
            else:
                keep = holdback(pending, self._stops)
                safe, self._pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
        else:
            safe = piece
        return self._delta(safe) if safe else None

    def end(self) -> Delta | None:
        """The engine is done: held-back text was not a stop string after all."""
        pending, self._pending = self._pending, ""
        return self._delta(pending) if pending else None

    def _delta(self, text: str) -> Delta:
        self._emitted.append(text)
        tokens = self.tokens
        if tokens is None:
            return Delta(text)
        unsent, self._unsent = self._unsent, len(tokens)
        return Delta(text, tokens[unsent:])

    def result(self, *, count_responses: bool = False) -> GenResult:
        """The whole answer. Without the engine's output count: responses received (count_responses: one per token
        on a decoupled model), else the words of the text."""
        text = "".join(self._emitted)
        if not self._stream:
            cut = stop_cut(text, self._stops)
            if cut is not None:
                text, self.stopped = text[:cut], True
        if self._n_out is not None:
            completion = self._n_out
        else:
            completion = self.responses if count_responses else len(text.split())
        req = self._req
        prompt = req.settle(self._n_in, completion)
        reason = finish_reason(self.stopped, completion, req.sampling.max_tokens)
        return GenResult(text, prompt, completion, reason, self.tokens)
