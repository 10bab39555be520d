"""`python -m bench.hotpath`: every row measured against its baseline, and the paths it names taken (the template
learnt, the responses read from their bytes): a harness that silently measured the general path would fail."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import hotpath

pytestmark = pytest.mark.e2e  # runs the stand-in engine

ROOT = Path(__file__).resolve().parents[2]


def test_every_row_prints_both_sides_and_a_ratio():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.hotpath", "--answers", "5", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = re.findall(r"^  (.+?)\s+([\d.]+)\s+(.+?):\s+([\d.]+)\s+ratio ([\d.]+)$", proc.stdout, re.M)
    assert len(rows) == 4, proc.stdout
    for _, ours, _, theirs, ratio in rows:
        assert float(ours) > 0 and float(theirs) > 0
        assert abs(float(ratio) - float(ours) / float(theirs)) < 0.01


async def test_the_measured_paths_are_the_ones_named(monkeypatch):
    parsed_chunks = []
    parse = hotpath._Answer._parsed

    def spy(self, payload):
        parsed_chunks.append(payload)
        return parse(self, payload)

    monkeypatch.setattr(hotpath._Answer, "_parsed", spy)
    hotpath.openai_take(1, True)()
    assert len(parsed_chunks) == 1  # the first chunk; from the second on, through the template
    parsed_chunks.clear()
    hotpath.openai_take(1, False)()
    assert len(parsed_chunks) == 24

    messages, inst = await hotpath.triton_messages()
    assert len(messages) == 23
    parsed = []
    monkeypatch.setattr(hotpath.wire, "decode_llm", lambda r, layout: parsed.append(1) or (b"x", 1, 1))
    hotpath.triton_reads(messages, inst, 1, "template")()
    assert len(parsed) == 1  # the first response; the others read from their bytes
    parsed.clear()
    hotpath.triton_reads(messages, inst, 1, "protobuf")()
    assert len(parsed) == len(messages)
