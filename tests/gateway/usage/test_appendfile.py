"""A full disk never fails a request and never loses or doubles a record: shown with the kernel's own short
writes and EFBIG (RLIMIT_FSIZE in a child process: the write is cut exactly at the limit, as ENOSPC cuts it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gateway.usage.appendfile import read_lines
from gateway.usage.record import Metrics

pytestmark = pytest.mark.e2e  # every test here writes from several processes

CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from gateway.usage.appendfile import AppendFile
    from gateway.usage.record import Metrics
    path, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed, like ENOSPC
    m = Metrics()
    f = AppendFile(path, m, max_buffered=1000)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    line = lambda i: json.dumps({"request_id": f"r{i:04d}", "pad": "x" * 90}).encode() + b"\\n"
    for i in range(20):
        f.append(line(i))                         # never raises
    full_at = (len(f.pending), f.size, m.write_errors.labels("short_write")._value.get(),
               m.write_errors.labels("EFBIG")._value.get(), m.buffered._value.get())
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # disk freed
    f.append(line(20))
    print(json.dumps({"full": full_at, "after": [len(f.pending), m.buffered._value.get()]}))
    f.close()
""")


def test_short_write_and_full_disk_keep_every_record_once(tmp_path):
    path = tmp_path / "usage.jsonl"
    line = len(json.dumps({"request_id": "r0000", "pad": "x" * 90})) + 1
    limit = 8 * line + line // 2  # eight whole lines, then a write the kernel cuts short in the middle
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(limit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    pending, size, short, efbig, buffered = got["full"]
    assert size == 8 * line and pending == 12 and buffered == 12
    assert short == 1 and efbig >= 1  # the kernel cut one write short, then refused the rest
    assert got["after"] == [0, 0]  # once the disk takes writes again, the backlog goes out in order
    raw = path.read_bytes()
    assert len(raw.splitlines()) == 22  # 21 records + the fragment of the short write, on a line of its own
    m = Metrics()
    ids = [r["request_id"] for r in read_lines(str(path), m)]
    assert ids == [f"r{i:04d}" for i in range(21)]  # each once, in order
    assert m.corrupt._value.get() == 1
