"""Tool calls and reasoning in a model's raw text, per model family: pure, synchronous and incremental (no I/O).

``Output`` (output.py) turns one choice's text into content, reasoning and tool calls as it arrives; ``calls.py``
parses one call object; ``jsonscan.py`` validates JSON a character at a time. The formats and where each comes from:
output.py's docstring and docs/agents.md.
"""

from .output import FORMATS, MAX_CALL_CHARS, Output, mistral_call_id, openai_call_id

__all__ = ["FORMATS", "MAX_CALL_CHARS", "Output", "mistral_call_id", "openai_call_id"]
