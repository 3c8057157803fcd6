"""The one seam between the gateway and provider HTTP APIs.

Every provider instance owns one :class:`Upstream`, created at start-up
with a connection pool, and closed at shut-down.  Adapters call
:meth:`Upstream.request` or :meth:`Upstream.stream` and never touch the
HTTP library, so the transport can change here and nowhere else.

Two transports implement it.  ``aiohttp`` is the default: measured on
this machine its pool keeps up under concurrency where httpx's collapses
(docs/performance.md has the figures).  ``httpx`` (the design card's
client) stays available as ``server.http_client: httpx``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from portway import serialization
from portway.errors import ProviderError

TRANSPORTS = ("aiohttp", "httpx")


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    def json(self) -> Any:
        return serialization.loads(self.content)


class UpstreamStream:
    """An open streamed response: ``status``, ``headers`` (case-insensitive),
    :meth:`aiter_bytes` and :meth:`aread`."""

    __slots__ = ("status", "headers", "_chunks", "_read", "_upstream")

    def __init__(self, status: int, headers: Mapping[str, str], chunks: Any, read: Any, upstream: Upstream) -> None:
        self.status = status
        self.headers = headers
        self._chunks = chunks
        self._read = read
        self._upstream = upstream

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        with self._upstream._failures("upstream stream timed out", "upstream stream broke"):
            async for chunk in self._chunks():
                yield chunk

    async def aread(self) -> bytes:
        return await self._read()


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
        max_connections: int = 1000,
        transport: str = "aiohttp",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.transport = transport
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._aiohttp: aiohttp.ClientSession | None = None
        self._httpx: httpx.AsyncClient | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pool (inside the running event loop)."""
        if self.transport == "aiohttp":
            self._aiohttp = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout, sock_read=self._timeout),
                auto_decompress=True,
                trust_env=False,
            )
        else:
            self._httpx = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout, connect=self._connect_timeout),
                limits=httpx.Limits(max_connections=self._max_connections,
                                    max_keepalive_connections=self._max_connections),
                follow_redirects=False,
                trust_env=False,
            )

    async def aclose(self) -> None:
        if self._aiohttp is not None:
            await self._aiohttp.close()
            self._aiohttp = None
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None

    # -- helpers --------------------------------------------------------------------

    def error(self, message: str, kind: str) -> ProviderError:
        return ProviderError(f"provider {self.name!r}: {message}", kind=kind, provider=self.name)

    @contextmanager
    def _failures(self, timed_out: str = "upstream request timed out",
                  broken: str = "could not reach upstream") -> Iterator[None]:
        """Either transport's timeouts and connection failures, as classified errors."""
        try:
            yield
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            raise self.error(timed_out, "timeout") from exc
        except (aiohttp.ClientError, httpx.TransportError) as exc:
            raise self.error(f"{broken}: {type(exc).__name__}", "connection") from exc

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    @staticmethod
    def _prepare(json: Any, body: bytes | None, headers: Mapping[str, str] | None) -> tuple[bytes | None, dict[str, str]]:
        content = serialization.dumps(json) if json is not None else body
        merged = dict(headers or {})
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
        with self._failures():
            if self.transport == "aiohttp":
                async with self._session().request(method, self.url(path), data=content, headers=merged) as resp:
                    return UpstreamResponse(resp.status, resp.headers, await resp.read())
            response = await self._client().request(method, self.url(path), content=content, headers=merged)
            return UpstreamResponse(response.status_code, response.headers, response.content)

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
        with self._failures():
            if self.transport == "aiohttp":
                aio = await self._session().request(method, self.url(path), data=content, headers=merged)
            else:
                client = self._client()
                hx = await client.send(client.build_request(method, self.url(path), content=content, headers=merged),
                                       stream=True)
        if self.transport == "aiohttp":
            try:
                yield UpstreamStream(aio.status, aio.headers, aio.content.iter_any, aio.read, self)
            except BaseException:
                # The client went away or the stream failed: drop the connection,
                # so the provider stops generating (and billing) at once.
                aio.close()
                raise
            if aio.content.at_eof() or await _drained(aio.content.read):
                aio.release()  # back to the pool for the next request
            else:
                aio.close()
        else:
            try:
                yield UpstreamStream(hx.status_code, hx.headers, hx.aiter_raw, hx.aread, self)
            finally:
                await hx.aclose()


#: How long to wait for the rest of a body after the stream's own end marker
#: (``[DONE]``, ``message_stop``): normally just the chunked-encoding trailer.
DRAIN_SECONDS = 0.5


async def _drained(read: Any) -> bool:
    """Read what is left of a finished stream so its connection can be reused."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            await read()
        return True
    except (asyncio.TimeoutError, aiohttp.ClientError):
        return False
