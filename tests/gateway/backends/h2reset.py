"""An HTTP/2 peer that resets every stream it is sent (RST_STREAM with a chosen error code), on a real socket: what
a gRPC client sees when its transport loses a call (a proxy or an engine process dying mid-call), byte for byte
deterministic. It speaks just enough HTTP/2 (RFC 9113): its SETTINGS, the ACK of the client's, RST_STREAM per
HEADERS frame."""

from __future__ import annotations

import socket
import threading

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, HEADERS, RST_STREAM = 4, 1, 3
INTERNAL_ERROR = 2


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


class ResettingPeer:
    def __init__(self, error_code: int = INTERNAL_ERROR):
        self.error_code = error_code
        self.resets = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            conn.sendall(_frame(SETTINGS, 0, 0))
            while data := conn.recv(65536):
                buf += data
                if not buf.startswith(PREFACE[: len(buf)]) and not buf.startswith(PREFACE):
                    return
                if len(buf) < len(PREFACE):
                    continue
                frames, i = buf[len(PREFACE) :], 0
                while i + 9 <= len(frames):
                    length = int.from_bytes(frames[i : i + 3], "big")
                    if i + 9 + length > len(frames):
                        break
                    kind, flags = frames[i + 3], frames[i + 4]
                    stream = int.from_bytes(frames[i + 5 : i + 9], "big") & 0x7FFFFFFF
                    if kind == SETTINGS and not flags & 1:
                        conn.sendall(_frame(SETTINGS, 1, 0))  # ACK
                    elif kind == HEADERS:
                        self.resets += 1
                        conn.sendall(_frame(RST_STREAM, 0, stream, self.error_code.to_bytes(4, "big")))
                    i += 9 + length
                buf = PREFACE + frames[i:]

    def close(self) -> None:
        self._sock.close()
