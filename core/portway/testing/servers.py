"""Run an ASGI app on a real socket in a background thread, for tests."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any

import uvicorn

#: Under pytest-xdist, worker N takes only the ports of its own slot (see free_port).
PORT_SLOTS = 16


def port_slot(port: int) -> int:
    """A port's slot: Linux hands out odd ports for ``bind(("", 0))`` (even
    ones are kept for outgoing connections), so the lowest bit says nothing."""
    return (port >> 1) % PORT_SLOTS


def free_port() -> int:
    """A port free now, for a server started later (a subprocess).  Under
    pytest-xdist each worker takes only ports of its own slot (one of
    :data:`PORT_SLOTS`, :func:`port_slot`): two workers could otherwise be handed the same port
    between one releasing it here and its server binding it, and one test's
    ``/health`` be answered by the other's server."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    slot = int(worker[2:]) % PORT_SLOTS if worker.startswith("gw") and worker[2:].isdigit() else None
    for _ in range(PORT_SLOTS * 64):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if slot is None or port_slot(port) == slot:
            break
    return port


class ThreadedServer:
    """uvicorn on 127.0.0.1 in a daemon thread with its own event loop."""

    def __init__(self, app: Any, port: int | None = None, **uvicorn_options: Any) -> None:
        # With no port asked for, the socket is bound here, to a port the system picks, and handed to
        # uvicorn: a port looked up first and bound later can be taken in between by another test.
        self._socket: socket.socket | None = None
        if port is None:
            # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY on accepted connections only when the
            # listening socket's proto says TCP (a plain socket() says 0, and every small answer would
            # then wait for the client's delayed ACK, ~40 ms).
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(("127.0.0.1", 0))
            port = self._socket.getsockname()[1]
        self.port = port
        options = {"log_level": "warning", "lifespan": "on", "loop": "asyncio", "http": "httptools"}
        options.update(uvicorn_options)
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, **options))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"uvicorn:{self.port}")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._server.serve(sockets=[self._socket] if self._socket else None))
        except BaseException as exc:  # surfaced by start()
            self.error = exc
        finally:
            self.loop.close()

    def start(self, timeout: float = 15.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self.error is not None or not self._thread.is_alive():
                cause = repr(self.error) if self.error else "the app's start-up failed (a plugin's startup hook?); see the log"
                raise RuntimeError(f"server failed to start: {cause}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.005)
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop serving.  ``wait=False`` only asks (uvicorn takes a few
        tenths of a second to wind down); :meth:`join` waits for it."""
        self._server.should_exit = True
        if wait:
            self.join()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RawResponse:
    """What :func:`raw_request` read back: the status, the headers (names
    lower-cased) and the body (chunked transfer decoded)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> RawResponse:
    """Send ``head`` (request line and headers, exactly as given, without the
    blank line) and ``body`` over a plain socket, and read the answer.  For
    what an HTTP client library refuses to send: empty or odd header values,
    NUL bytes, lying Content-Lengths."""
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.rstrip(b"\r\n") + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
        header_block, _, rest = data.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            while len(rest) < int(headers["content-length"]):
                more = sock.recv(65536)
                if not more:
                    break
                rest += more
        elif headers.get("transfer-encoding") == "chunked":
            while not rest.endswith(b"0\r\n\r\n"):
                more = sock.recv(65536)
                if not more:
                    break
                rest += more
            decoded, cursor = b"", rest
            while cursor:
                size_line, _, cursor = cursor.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    break
                decoded, cursor = decoded + cursor[:size], cursor[size + 2:]
            rest = decoded
        return RawResponse(status, headers, rest)


class RawUpstream:
    """An upstream that answers every request with ``answer``, bytes written
    as they are, then closes the connection: for answers no HTTP server
    library would produce (a status of 999, broken framing).  ``requests``
    holds the raw request bytes it received."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"raw-upstream:{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        break
                    data += more
                head, _, body = data.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        while len(body) < int(line.split(b":")[1]):
                            more = conn.recv(65536)
                            if not more:
                                break
                            body += more
                self.requests.append(head + b"\r\n\r\n" + body)
                conn.sendall(self.answer)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
