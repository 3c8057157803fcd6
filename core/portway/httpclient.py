"""A small HTTP/1.1 client for the upstream seam: httptools' response
parser under asyncio's transports, with pooled keep-alive connections.

:class:`portway.upstream.Upstream` uses it as its default transport
(``http_client: httptools``).  Measured on the project's machine, one
request to a local upstream costs about 280 µs of CPU through aiohttp's
``ClientSession`` and about 85 µs through this client, system calls
included (docs/performance.md): the difference is Python that a gateway
does not need (cookie jars, proxies, redirects, auth helpers, multidict
request headers, payload registries, tracing signals, per-request
timeout objects).  It is the parser uvicorn already uses for the
gateway's own requests.

What it does: one request at a time per connection; ``Content-Length``,
chunked and close-delimited bodies; keep-alive with idle connections
reused last-in first-out and dropped after :data:`KEEPALIVE_SECONDS`;
``gzip`` and ``deflate`` bodies decoded as they arrive, in bounded pieces;
a read timeout between network reads; a connect timeout; TLS with the
system's trust store; back-pressure (a stream that is not being read stops
reading its socket).  An idempotent request (``GET``, ``DELETE``) on a
reused connection that the server closed before any byte of an answer came
is sent again once, on a new connection; a ``POST`` is not (RFC 9112,
9.3.1: the server may have acted on it), and fails as a connection error,
which the routing layer may retry.

What it does not do, on purpose: follow redirects (the seam refuses a 3xx
anyway), keep cookies (a gateway serves many clients; one's cookies must
never ride on another's request), use proxies from the environment (the
other transports run with ``trust_env`` off too), HTTP/2, ``Expect:
100-continue``, or ``HEAD``.

Errors: :class:`ConnectFailed`, :class:`ConnectTimeout`,
:class:`ReadTimeout`, :class:`Disconnected`, :class:`BadResponse` and
:class:`TLSError` (a :class:`ConnectFailed`), all
:class:`HTTPClientError`; the two timeouts are also
:class:`asyncio.TimeoutError`, as the seam classifies them.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

#: An idle pooled connection older than this is closed rather than reused
#: (servers close idle connections after a while; aiohttp's default too).
KEEPALIVE_SECONDS = 15.0

#: A stream's socket stops being read while this much of its body waits unread.
HIGH_WATER = 4 * 1024 * 1024

#: A compressed body is decoded in pieces of at most this many bytes, so a
#: small compressed read cannot become a huge buffer before the seam's size
#: limits see it.
DECODE_PIECE = 1024 * 1024

#: What every request says it accepts: the encodings decoded here.
ACCEPT_ENCODING = "gzip, deflate"

_NO_BODY_STATUSES = frozenset({204, 304})


class HTTPClientError(Exception):
    """A request that got no complete, well-formed answer."""


class ConnectFailed(HTTPClientError):
    """The connection could not be made (refused, unreachable, TLS failed)."""


class TLSError(ConnectFailed):
    """The TLS handshake failed: most often, the server's certificate is not
    trusted or does not name the host."""


class ConnectTimeout(HTTPClientError, asyncio.TimeoutError):
    """Connecting took longer than the connect timeout."""


class ReadTimeout(HTTPClientError, asyncio.TimeoutError):
    """Nothing arrived from the server for the read timeout."""


class Disconnected(HTTPClientError):
    """The server closed or reset the connection before the answer ended."""


class BadResponse(HTTPClientError):
    """What the server sent is not HTTP/1.1 this client can read."""


_ssl_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, made once per process."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


def _decoder(encoding: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":  # zlib-wrapped as the RFC says; raw deflate is handled on first error
        return _Deflate()
    raise BadResponse(f"the answer is encoded as {encoding!r}, which the gateway did not ask for")


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped (RFC 9110) or, from some
    servers, raw."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj(zlib.MAX_WBITS)
        self._started = False

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        if not self._started:
            self._started = True
            try:
                return self._inner.decompress(data, max_length)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data, max_length)

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail

    def flush(self) -> bytes:
        return self._inner.flush()


class Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one request at a time."""

    def __init__(self, pool: Pool, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.key = key
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request before the current one
        self.in_use = False  # a request is on it (else it is new, or idle in the pool)
        # The answer in progress:
        self.status = 0
        self.headers: CIMultiDictProxy[str] | None = None
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.buffered = 0
        self.received = False  # any byte of the answer has arrived
        self.complete = False
        self.keep_alive = False
        self.until_eof = False  # a body that ends when the connection does
        self.error: BaseException | None = None
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.last_read = 0.0
        self.read_timeout = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_use:  # an idle connection has nothing to say
            self.abort()
            return
        self.last_read = self.loop.time()
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"the server's answer is not valid HTTP/1.1: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.headers is not None and self.until_eof and not self.complete and exc is None:
            self.complete = True  # a close-delimited body ends here
            self.keep_alive = False
            self._wake()
            return
        if not self.complete and self.error is None:
            self.error = Disconnected("the server closed the connection before the answer ended"
                                      + (f" ({type(exc).__name__})" if exc is not None else ""))
            self._wake()

    def pause_writing(self) -> None:  # the request body is written whole; nothing to pause
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # more than one answer to one request: the connection cannot be trusted
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self._raw_headers = []
            return
        self.status = status
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in self._raw_headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        self._raw_headers = []
        self.headers = CIMultiDictProxy(headers)
        self.until_eof = (
            "content-length" not in headers and "transfer-encoding" not in headers
            and status not in _NO_BODY_STATUSES)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers is None:  # the end of an interim answer
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- waiting -----------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not waiter.done():
                waiter.set_result(None)

    def _check_timeout(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        left = self.last_read + self.read_timeout - self.loop.time()
        if left > 0:  # something arrived since the timer was set
            self._timer = self.loop.call_later(left, self._check_timeout)
            return
        self._waiter = None
        self.error = ReadTimeout(f"nothing arrived from the server for {self.read_timeout:g} s")
        waiter.set_result(None)
        self.abort()

    async def wait(self) -> None:
        """Until something changes: headers, body, the end, or a failure."""
        waiter = self._waiter = self.loop.create_future()
        self._timer = self.loop.call_at(self.last_read + self.read_timeout, self._check_timeout)
        try:
            await waiter
        except BaseException:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            raise

    # -- a request ---------------------------------------------------------------------

    def send(self, data: bytes, read_timeout: float) -> None:
        self.status = 0
        self.headers = None
        self.body = []
        self.buffered = 0
        self.received = False
        self.complete = False
        self.keep_alive = False
        self.until_eof = False
        self.error = None
        self.in_use = True
        self.read_timeout = read_timeout
        self.last_read = self.loop.time()
        assert self.transport is not None
        self.transport.write(data)

    def take_body(self) -> bytes:
        """What of the body has arrived and was not yet taken."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.buffered = 0
        if self.paused and not self.closed and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Response:
    """An answer whose status and headers have arrived; its body arrives
    through :meth:`iter_any`.  Hand it back with :meth:`release` (at its
    end: the connection goes back to the pool) or :meth:`close` (the
    connection is dropped)."""

    __slots__ = ("status", "headers", "_conn", "_decoder", "_done")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.status = conn.status
        assert conn.headers is not None
        self.headers: CIMultiDictProxy[str] = conn.headers
        encoding = conn.headers.get("content-encoding")
        self._decoder = _decoder(encoding) if encoding else None
        self._done = False

    def at_eof(self) -> bool:
        """The whole body has arrived and been read."""
        conn = self._conn
        return conn.complete and not conn.body

    def complete_body(self) -> bytes | None:
        """The whole body at once, when it has all arrived and needs no
        decoding (a small answer usually comes with its headers)."""
        conn = self._conn
        if conn.complete and self._decoder is None:
            return conn.take_body() if conn.body else b""
        return None

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body as it arrives: what has come since the last piece."""
        conn = self._conn
        decoder = self._decoder
        while True:
            if conn.body:
                data = conn.take_body()
                if decoder is None:
                    yield data
                    continue
                while data:  # piece by piece, so a reader that stops (too large) stops the decoding
                    try:
                        piece = decoder.decompress(data, DECODE_PIECE)
                    except zlib.error as exc:
                        raise BadResponse(f"the answer's compressed body is corrupt: {exc}") from None
                    data = decoder.unconsumed_tail
                    if piece:
                        yield piece
                continue
            if conn.complete:
                if decoder is not None:
                    try:
                        rest = decoder.flush()
                    except zlib.error as exc:
                        raise BadResponse(f"the answer's compressed body is corrupt: {exc}") from None
                    if rest:
                        yield rest
                return
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool when
        the answer ended and the connection may be kept, else it closes."""
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and not conn.body:
            conn.pool.put(conn)
        else:
            conn.abort()

    def close(self) -> None:
        """Drop the connection (an answer not read to its end)."""
        if not self._done:
            self._done = True
            self._conn.abort()



class Pool:
    """Keep-alive connections to the origins one upstream talks to."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._open: set[Connection] = set()

    def put(self, conn: Connection) -> None:
        conn.idle_since = conn.loop.time()
        conn.used = True
        conn.in_use = False
        self._idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: Connection) -> None:
        """A connection has closed (an idle one stays listed until it is next looked at)."""
        self._open.discard(conn)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def _idle_connection(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS and conn.transport is not None \
                    and not conn.transport.is_closing():
                return conn
            conn.abort()
        return None

    async def _connect(self, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop) -> Connection:
        scheme, host, port = key
        tls = scheme == "https"
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, key, loop), host.strip("[]"), port,
                    ssl=default_ssl_context() if tls else None, server_hostname=host.strip("[]") if tls else None)
        except TimeoutError:
            raise ConnectTimeout(f"could not connect within {self.connect_timeout:g} s") from None
        except ssl.SSLError as exc:  # (an OSError too)
            raise TLSError(f"TLS failed: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise ConnectFailed(f"could not connect: {type(exc).__name__}: {exc}") from exc
        self._open.add(conn)
        return conn

    async def send(self, key: tuple[str, str, int], data: bytes, idempotent: bool = False) -> Response:
        """Send one request (its bytes, whole) and wait for the answer's
        status and headers."""
        loop = asyncio.get_running_loop()
        conn = self._idle_connection(key, loop)
        if conn is None:
            conn = await self._connect(key, loop)
        try:
            conn.send(data, self.read_timeout)
            while conn.headers is None:
                if conn.error is not None:
                    if idempotent and conn.used and not conn.received and isinstance(conn.error, Disconnected):
                        # The server closed this idle connection as the request went out:
                        # once more, on a new connection.
                        conn = await self._connect(key, loop)
                        conn.send(data, self.read_timeout)
                        continue
                    raise conn.error
                await conn.wait()
            return Response(conn)
        except BaseException:
            conn.abort()
            raise

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
