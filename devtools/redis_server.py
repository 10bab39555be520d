"""A real redis-server on a free loopback port, for tests and the soak (Debian's `redis-server`, installed by
./dev test)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time


class RedisServer:
    def __init__(self, tmp_path):
        exe = shutil.which("redis-server")
        assert exe, "redis-server is required: apt-get install -y redis-server (./dev test does)"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.exe, self.dir = exe, tmp_path
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        """A fresh server on the same port (after stop(): a Redis restarted without persistence, its data gone)."""
        exe, tmp_path = self.exe, self.dir
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.resume()  # a stopped process cannot act on SIGTERM
            self.proc.terminate()
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is ever answered (a hung Redis)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
