"""HTTP/1.1 over a plain socket, for tests that need what no client library sends: a head
that never ends, a trickle of bytes, a request on a connection the server is about to close.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from tests.api.server import Server

GUARD_TIMEOUT = 20.0  # only so a broken server fails a test instead of hanging it


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error_code(self) -> str:
        code: str = json.loads(self.body)["error"]["code"]
        return code


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawConnection:
    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=GUARD_TIMEOUT)
        self.buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> Answer:
        """The next response; AssertionError if the connection closes before one is complete."""
        while b"\r\n\r\n" not in self.buffer:
            self._read_more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read_more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection within `seconds`, with nothing more sent."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                return True
            finally:
                self.sock.settimeout(GUARD_TIMEOUT)
            if not data:
                return True
            self.buffer += data
        return False

    def _read_more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError(f"closed without a complete answer; received {self.buffer!r}")
        self.buffer += data
