"""The one seam between the gateway and provider HTTP APIs.

Every provider instance owns one :class:`Upstream`, created at start-up
with a connection pool, and closed at shut-down.  Adapters call
:meth:`Upstream.request` or :meth:`Upstream.stream` and never touch the
HTTP library, so the transport can change here and nowhere else.

Three transports implement it.  ``httptools`` is the default: Portway's
own small HTTP/1.1 client (:mod:`portway.httpclient`), about a third of
aiohttp's CPU per request.  ``aiohttp`` keeps up under concurrency where
httpx's pool collapses (docs/performance.md has the figures for both).
``httpx`` (the design card's client) and ``aiohttp`` stay available as a
provider's ``http_client``.

An upstream's answer is untrusted, so the seam enforces, on every transport:
no redirect is followed (it would carry the credentials to another host; a
3xx is an error), bodies are decompressed, a whole body is at most
``max_response_bytes`` and a streamed event at most ``max_event_bytes``.
Waiting for a free pooled connection (``pool_timeout``, the gateway's own
overload) is told apart from connecting (``connect_timeout``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import portway
from portway import httpclient, serialization, sse, tracing
from portway.errors import ProviderError

if TYPE_CHECKING:
    import aiohttp
    import httpx
    import yarl


class _LibraryErrors:
    """The exception classes of the libraries behind the ``aiohttp`` and
    ``httpx`` transports, once a provider uses one (:func:`_aiohttp`,
    :func:`_httpx`): the default transport needs neither, and importing them
    costs every start-up about 0.3 s and 0.1 s.  Until then they are empty
    tuples, which an ``except`` clause matches with nothing."""

    pool_timeout: tuple[type[BaseException], ...] = ()
    connect_timeout: tuple[type[BaseException], ...] = ()
    timeout: tuple[type[BaseException], ...] = ()
    transport: tuple[type[BaseException], ...] = ()
    loaded: set[str] = set()


def _httpx() -> Any:
    import httpx

    if "httpx" not in _LibraryErrors.loaded:
        _LibraryErrors.loaded.add("httpx")
        _LibraryErrors.pool_timeout += (httpx.PoolTimeout,)
        _LibraryErrors.connect_timeout += (httpx.ConnectTimeout,)
        _LibraryErrors.timeout += (httpx.TimeoutException,)
        _LibraryErrors.transport += (httpx.TransportError,)
    return httpx


def _aiohttp() -> Any:
    import aiohttp

    if "aiohttp" not in _LibraryErrors.loaded:
        _LibraryErrors.loaded.add("aiohttp")
        _LibraryErrors.connect_timeout += (aiohttp.ConnectionTimeoutError,)
        _LibraryErrors.transport += (aiohttp.ClientError,)
    return aiohttp


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a transport raises for a timeout or a broken connection
    (evaluated only when something was raised)."""
    return (httpclient.HTTPClientError, asyncio.TimeoutError, *_LibraryErrors.transport)


TRANSPORTS = ("httptools", "aiohttp", "httpx")

#: Requests the httptools transport sends again, once, when a reused connection
#: turns out closed before any answer (see portway.httpclient).
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})

#: Sent with every request of the httptools transport unless the provider sets its own.
USER_AGENT = f"portway/{portway.__version__}"

#: What a URL may hold as it is (RFC 3986's reserved and unreserved
#: characters, and ``%`` for the escapes already made).
_URL_CHARACTERS = "!#$%&'()*+,/:;=?@[]~"

#: How long a finished stream's connection may take to deliver the rest of
#: its body (normally just the chunked-encoding trailer) before it is closed
#: rather than returned to the pool.  This happens in the background.
DRAIN_SECONDS = 0.5


#: At most this many URLs are kept ready-made per upstream (an adapter whose
#: paths name the model, as Bedrock's do, has one per model in use).
URL_CACHE_SIZE = 256


class _Slots:
    """A counting semaphore for the pool's connections whose free path is
    one method and no await (asyncio's ``Semaphore`` costs two ``locked()``
    checks, a generator and a coroutine per acquire).  A released slot goes
    straight to the longest waiter."""

    __slots__ = ("free", "_waiters")

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Take a free slot now, if there is one and nobody is waiting."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot (cancel this to give up: a slot handed over
        meanwhile is passed on)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot as the wait was given up: pass it on
            elif future in self._waiters:
                self._waiters.remove(future)
            raise

    def release(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    def json(self) -> Any:
        return serialization.loads(self.content)


class UpstreamStream:
    """An open streamed response: ``status``, ``headers`` (case-insensitive),
    the body as bytes (:meth:`aiter_bytes`), as SSE event batches
    (:meth:`aiter_event_batches`) or NDJSON values (:meth:`aiter_ndjson`),
    or whole (:meth:`aread`, for error answers)."""

    __slots__ = ("status", "headers", "_chunks", "_upstream")

    def __init__(self, status: int, headers: Mapping[str, str], chunks: Callable[[], AsyncIterator[bytes]],
                 upstream: Upstream) -> None:
        self.status = status
        self.headers = headers
        self._chunks = chunks
        self._upstream = upstream

    def _reads(self) -> AsyncIterator[bytes]:
        """The body's network reads as they arrive (what :meth:`aiter_bytes`
        and :meth:`aiter_event_batches` read; :func:`portway.testing.split_reads`
        watches them here)."""
        return self._chunks()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        reads = self._reads()
        try:
            with self._upstream._failures("upstream stream timed out", "upstream stream broke"):
                async for chunk in reads:
                    yield chunk
        finally:
            await sse.aclose_reads(reads)

    def aiter_event_batches(self) -> AsyncIterator[list[sse.Event]]:
        """The SSE events each network read completed, one list per read
        (:func:`portway.sse.aiter_event_batches` over the body's reads, with
        this upstream's failure classes: no layer of its own, and none of
        :meth:`aiter_bytes`); an event larger than the provider's
        ``max_event_bytes`` is a classified error."""
        upstream = self._upstream
        return sse.aiter_event_batches(
            self._reads(), upstream.max_event_bytes,
            reading=lambda: upstream._failures("upstream stream timed out", "upstream stream broke"),
            too_large=lambda exc: upstream.too_large("a stream event", "max_event_bytes", exc.limit))

    async def aiter_ndjson(self) -> AsyncIterator[Any]:
        """Newline-delimited JSON values, each line at most ``max_event_bytes``."""
        try:
            async with aclosing(sse.aiter_ndjson(self.aiter_bytes(), self._upstream.max_event_bytes)) as values:
                async for value in values:
                    yield value
        except sse.EventTooLarge as exc:
            raise self._upstream.too_large("a stream line", "max_event_bytes", exc.limit) from None

    async def aread(self) -> bytes:
        """The whole body, at most ``max_response_bytes``."""
        with self._upstream._failures("upstream stream timed out", "upstream stream broke"):
            return await self._upstream._read_body(self._chunks(), self.headers)


class Upstream:
    """A pooled HTTP client for one provider instance."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str = "upstream",
        headers: Mapping[str, str] | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        pool_timeout: float = 30.0,
        max_connections: int = 1000,
        max_response_bytes: int = 64 * 1024 * 1024,
        max_event_bytes: int = 16 * 1024 * 1024,
        transport: str = "httptools",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.transport = transport
        self.max_response_bytes = max_response_bytes
        self.max_event_bytes = max_event_bytes
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._max_connections = max_connections
        self._aiohttp: aiohttp.ClientSession | None = None
        self._httpx: httpx.AsyncClient | None = None
        self._pool: httpclient.Pool | None = None
        #: The pool limit of the httptools and aiohttp transports: a free slot
        #: per connection in use (aiohttp's connector's own limit would count
        #: waiting for one as connecting).
        self._slots: _Slots | None = None
        #: The yarl URL of each path requested (see :meth:`_aiohttp_url`).
        self._urls: dict[str, yarl.URL] = {}
        #: Each path's origin and the start of its request (see :meth:`_target`).
        self._targets: dict[str, tuple[tuple[str, str, int], str]] = {}
        #: The provider's own headers (names in lower case) as the httptools
        #: transport sends them, and as one block of lines (see :meth:`start`).
        self._base_headers: dict[str, str] = {}
        self._header_block = ""
        #: Finished streams whose connection is still reading its last bytes.
        self._drains: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pool (inside the running event loop)."""
        if self.transport == "httptools":
            self._slots = _Slots(self._max_connections)
            self._pool = httpclient.Pool(connect_timeout=self._connect_timeout, read_timeout=self._timeout)
            headers = {"accept": "*/*", "accept-encoding": httpclient.ACCEPT_ENCODING, "user-agent": USER_AGENT}
            headers.update({name.lower(): value for name, value in self._headers.items()})
            try:
                self._header_block = _header_lines(headers)
            except ValueError as exc:
                raise ValueError(f"provider {self.name!r}: {exc}") from None
            self._base_headers = headers
        elif self.transport == "aiohttp":
            aiohttp = _aiohttp()
            self._slots = _Slots(self._max_connections)
            self._aiohttp = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout, sock_read=self._timeout),
                auto_decompress=True,
                trust_env=False,
            )
        else:
            httpx = _httpx()
            self._httpx = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout, connect=self._connect_timeout, pool=self._pool_timeout),
                limits=httpx.Limits(max_connections=self._max_connections,
                                    max_keepalive_connections=self._max_connections),
                follow_redirects=False,
                trust_env=False,
            )

    async def drained(self) -> None:
        """Wait until every finished stream has read the rest of its body and
        handed its connection back to the pool, or closed it (at most
        DRAIN_SECONDS)."""
        await asyncio.gather(*self._drains, return_exceptions=True)

    async def aclose(self) -> None:
        """Let finished streams end their drains (at most DRAIN_SECONDS), then
        close the pool."""
        await self.drained()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._aiohttp is not None:
            await self._aiohttp.close()
            self._aiohttp = None
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None

    # -- figures (for metrics) --------------------------------------------------------

    @property
    def connections_in_use(self) -> int | None:
        """Pooled connections held by requests now (httptools and aiohttp;
        None for httpx, whose pool does not say)."""
        slots = self._slots
        return self._max_connections - slots.free if slots is not None else None

    @property
    def draining(self) -> int:
        """Finished streams still reading their last bytes."""
        return len(self._drains)

    # -- helpers --------------------------------------------------------------------

    def error(self, message: str, kind: str, status: int | None = None) -> ProviderError:
        return ProviderError(f"provider {self.name!r}: {message}", kind=kind, status=status, provider=self.name)

    def pool_full(self) -> ProviderError:
        return ProviderError(
            f"the gateway's own connection pool for provider {self.name!r} is full "
            f"(max_connections={self._max_connections}; none came free within pool_timeout={self._pool_timeout:g} s)",
            kind="pool_exhausted", provider=self.name)

    def too_large(self, what: str, key: str, limit: int) -> ProviderError:
        return self.error(f"{what} from the upstream is larger than {key} ({limit} bytes)", "server_error", 502)

    @contextmanager
    def _failures(self, timed_out: str = "upstream request timed out",
                  broken: str = "could not reach upstream") -> Iterator[None]:
        """Either transport's timeouts and connection failures, as classified
        errors (:meth:`_classified`)."""
        try:
            yield
        except _transport_errors() as exc:
            raise self._classified(exc, timed_out, broken) from exc

    def _classified(self, exc: BaseException, timed_out: str = "upstream request timed out",
                    broken: str = "could not reach upstream") -> ProviderError:
        """A transport failure (one of :func:`_transport_errors`) as the error the gateway reports."""
        if isinstance(exc, _LibraryErrors.pool_timeout):
            return self.pool_full()
        if isinstance(exc, (httpclient.ConnectTimeout, *_LibraryErrors.connect_timeout)):
            return self.error(f"could not connect to upstream within connect_timeout ({self._connect_timeout:g} s)",
                              "timeout")
        if isinstance(exc, (asyncio.TimeoutError, *_LibraryErrors.timeout)):
            return self.error(timed_out, "timeout")
        return self.error(f"{broken}: {type(exc).__name__}", "connection")

    async def _acquire(self) -> None:
        """A slot in the pool, waiting at most ``pool_timeout``."""
        slots = self._slots
        if slots is None:
            raise self.error("the HTTP pool is not open (Upstream.start() was not awaited)", "unavailable")
        if slots.take():
            return
        try:
            async with asyncio.timeout(self._pool_timeout):
                await slots.wait()
        except TimeoutError:
            raise self.pool_full() from None

    def _release(self) -> None:
        assert self._slots is not None
        self._slots.release()

    def _refuse_redirect(self, status: int, headers: Mapping[str, str]) -> None:
        """A 3xx is an error: following it would send the credentials to
        wherever the upstream points.  The message names the target's origin
        only (never its user-info, path or query)."""
        if not 300 <= status < 400:
            return
        where = ""
        try:
            target = urlsplit(headers.get("location", ""))
            if target.scheme and target.hostname:
                port = f":{target.port}" if target.port else ""
                where = f" to {target.scheme}://{target.hostname}{port}"
        except ValueError:
            pass
        raise self.error(f"upstream answered HTTP {status}, a redirect{where}; the gateway does not follow "
                         "redirects (they would carry its credentials elsewhere): check base_url",
                         "server_error", 502)

    async def _read_body(self, chunks: AsyncIterator[bytes], headers: Mapping[str, str]) -> bytes:
        """A whole (decompressed) body, refused past ``max_response_bytes``."""
        limit = self.max_response_bytes
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > limit and not headers.get("content-encoding"):
            raise self.too_large("the response body", "max_response_bytes", limit)
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise self.too_large("the response body", "max_response_bytes", limit)
            parts.append(chunk)
        return b"".join(parts)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _aiohttp_url(self, path: str) -> yarl.URL:
        """The URL exactly as the adapter wrote it, as httpx sends it: the
        escapes it made are kept (yarl would otherwise decode ``%3A`` to
        ``:``, and a request signed over its encoded path, as SigV4 signs
        Bedrock's model ids, would no longer match), and only characters that
        cannot appear in a URL at all are escaped."""
        url = self._urls.get(path)
        if url is None:
            import yarl  # (aiohttp's, imported with it)

            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[path] = yarl.URL(quote(self.url(path), safe=_URL_CHARACTERS), encoded=True)
        return url

    def _target(self, path: str) -> tuple[tuple[str, str, int], str]:
        """A path's origin (scheme, host, port) and its request line's target
        with the ``host`` header, kept escaped as :meth:`_aiohttp_url` keeps them."""
        target = self._targets.get(path)
        if target is None:
            url = urlsplit(quote(self.url(path), safe=_URL_CHARACTERS))
            scheme = url.scheme.lower()
            if scheme not in ("http", "https") or not url.hostname:
                raise self.error(f"cannot send a request to {scheme or 'a relative'} URL; check base_url", "unavailable")
            default = 443 if scheme == "https" else 80
            port = url.port or default
            host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
            authority = host if port == default else f"{host}:{port}"
            start = f" {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1\r\nhost: {authority}\r\n"
            if len(self._targets) >= URL_CACHE_SIZE:
                self._targets.clear()
            target = self._targets[path] = ((scheme, host, port), start)
        return target

    def _wire_request(self, method: str, path: str, content: bytes | None,
                      headers: dict[str, str]) -> tuple[httpclient.Pool, tuple[str, str, int], bytes]:
        """The httptools transport's pool, the request's origin, and the
        request's line, headers and body as they go on the wire."""
        pool = self._pool
        if pool is None:
            raise self.error("the HTTP pool is not open (Upstream.start() was not awaited)", "unavailable")
        key, start = self._target(path)
        block = self._header_block
        base = self._base_headers
        if any(name.lower() in base for name in headers):  # the request's own value wins
            own = {name.lower() for name in headers}
            block = _header_lines({name: value for name, value in base.items() if name not in own})
        try:
            extra = _header_lines(headers)
        except ValueError:
            raise self.error("a request header holds a line break or a NUL; it was not sent", "bad_request",
                             400) from None
        if content is not None:
            extra += f"content-length: {len(content)}\r\n"
        data = f"{method}{start}{block}{extra}\r\n".encode()
        return pool, key, data + content if content else data

    @staticmethod
    def _prepare(json: Any, body: bytes | None, headers: Mapping[str, str] | None) -> tuple[bytes | None, dict[str, str]]:
        content = serialization.dumps(json) if json is not None else body
        merged = dict(headers or {})
        tracing.inject(merged)  # the attempt's traceparent, when one is current
        if content is not None:
            merged.setdefault("content-type", "application/json")
        return content, merged

    def _session(self) -> aiohttp.ClientSession:
        if self._aiohttp is None:
            raise self.error("the HTTP pool is not open (Upstream.start() was not awaited)", "unavailable")
        return self._aiohttp

    def _client(self) -> httpx.AsyncClient:
        if self._httpx is None:
            raise self.error("the HTTP pool is not open (Upstream.start() was not awaited)", "unavailable")
        return self._httpx

    # -- requests -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        content, merged = self._prepare(json, body, headers)
        try:  # (what _failures() does, without a generator per request)
            if self.transport == "httptools":
                return await self._request(method, path, content, merged)
            if self.transport == "aiohttp":
                session = self._session()
                await self._acquire()
                try:
                    async with session.request(method, self._aiohttp_url(path), data=content, headers=merged,
                                               allow_redirects=False) as resp:
                        self._refuse_redirect(resp.status, resp.headers)
                        return UpstreamResponse(resp.status, resp.headers,
                                                await self._read_body(resp.content.iter_any(), resp.headers))
                finally:
                    self._release()
            client = self._client()
            hx = await client.send(client.build_request(method, self.url(path), content=content, headers=merged),
                                   stream=True)
            try:
                self._refuse_redirect(hx.status_code, hx.headers)
                return UpstreamResponse(hx.status_code, hx.headers, await self._read_body(hx.aiter_bytes(), hx.headers))
            finally:
                await hx.aclose()
        except _transport_errors() as exc:
            raise self._classified(exc) from exc

    async def _request(self, method: str, path: str, content: bytes | None, headers: dict[str, str]) -> UpstreamResponse:
        """:meth:`request` on the httptools transport."""
        pool, key, data = self._wire_request(method, path, content, headers)
        await self._acquire()
        try:
            resp = await pool.send(key, data, method in _IDEMPOTENT)
            try:
                self._refuse_redirect(resp.status, resp.headers)
                whole = resp.complete_body()  # (a small answer came with its headers)
                if whole is None:
                    whole = await self._read_body(resp.iter_any(), resp.headers)
                elif len(whole) > self.max_response_bytes:
                    raise self.too_large("the response body", "max_response_bytes", self.max_response_bytes)
                return UpstreamResponse(resp.status, resp.headers, whole)
            finally:
                resp.release()
        finally:
            self._release()

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[UpstreamStream]:
        content, merged = self._prepare(json, body, headers)
        if self.transport == "httptools":
            pool, key, data = self._wire_request(method, path, content, merged)
            with self._failures():
                await self._acquire()
                try:
                    resp = await pool.send(key, data, method in _IDEMPOTENT)
                except BaseException:
                    self._release()
                    raise
            try:
                self._refuse_redirect(resp.status, resp.headers)
                yield UpstreamStream(resp.status, resp.headers, resp.iter_any, self)
            except BaseException:
                # As below: a stream left unfinished drops its connection.
                resp.close()
                self._release()
                raise
            self._finish(resp)
        elif self.transport == "aiohttp":
            with self._failures():
                session = self._session()
                await self._acquire()
                try:
                    aio = await session.request(method, self._aiohttp_url(path), data=content, headers=merged,
                                                allow_redirects=False)
                except BaseException:
                    self._release()
                    raise
            try:
                self._refuse_redirect(aio.status, aio.headers)
                yield UpstreamStream(aio.status, aio.headers, aio.content.iter_any, self)
            except BaseException:
                # The client went away or the stream failed: drop the connection,
                # so the provider stops generating (and billing) at once.
                aio.close()
                self._release()
                raise
            self._finish(aio)
        else:
            with self._failures():
                client = self._client()
                hx = await client.send(client.build_request(method, self.url(path), content=content, headers=merged),
                                       stream=True)
            try:
                self._refuse_redirect(hx.status_code, hx.headers)
                yield UpstreamStream(hx.status_code, hx.headers, hx.aiter_bytes, self)
            finally:
                await hx.aclose()  # an unfinished body closes the connection rather than wait for it

    def _finish(self, aio: aiohttp.ClientResponse | httpclient.Response) -> None:
        """The caller is done with a stream (at its end marker).  What is left
        of the body is read in the background, so the caller's own end of
        stream never waits for an upstream that keeps its body open."""
        if aio.at_eof() if isinstance(aio, httpclient.Response) else aio.content.at_eof():
            aio.release()  # back to the pool for the next request
            self._release()
            return
        task = asyncio.get_running_loop().create_task(self._drain(aio))
        self._drains.add(task)  # a reference, so the task is not garbage-collected
        task.add_done_callback(self._drains.discard)

    async def _drain(self, aio: aiohttp.ClientResponse | httpclient.Response) -> None:
        """Read the rest of a finished stream for at most DRAIN_SECONDS: then
        its connection goes back to the pool, else it is closed."""
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                if isinstance(aio, httpclient.Response):
                    async with aclosing(aio.iter_any()) as rest:
                        async for _ in rest:
                            pass
                else:
                    while await aio.content.readany():
                        pass
        except (TimeoutError, httpclient.HTTPClientError, *_LibraryErrors.transport):
            aio.close()
        except asyncio.CancelledError:  # the event loop is closing
            aio.close()
            raise
        else:
            aio.release()
        finally:
            self._release()


def _header_lines(headers: Mapping[str, str]) -> str:
    """``headers`` as request lines; a ``ValueError`` if a name or value
    holds a line break or a NUL (it would end the line and forge another)."""
    block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if block.count("\n") != len(headers) or block.count("\r") != len(headers) or "\0" in block:
        raise ValueError("a header holds a line break or a NUL")
    return block
