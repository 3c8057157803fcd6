"""The one seam between the gateway and provider HTTP APIs.

Every provider instance owns one :class:`Upstream`, created at start-up
with a connection pool, and closed at shut-down.  Adapters call
:meth:`Upstream.request` or :meth:`Upstream.stream` and never touch the
HTTP library, so the transport can change here and nowhere else
(docs/architecture.md records why this one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from portway import serialization
from portway.errors import ProviderError


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return serialization.loads(self.content)


class UpstreamStream:
    """An open streamed response; read it with :meth:`aiter_bytes`."""

    __slots__ = ("status", "headers", "_response", "_upstream")

    def __init__(self, response: httpx.Response, upstream: Upstream) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self._response = response
        self._upstream = upstream

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise self._upstream._error("upstream stream timed out", "timeout") from exc
        except httpx.TransportError as exc:
            raise self._upstream._error(f"upstream stream broke: {type(exc).__name__}", "connection") from exc

    async def aread(self) -> bytes:
        return await self._response.aread()


class Upstream:
    def __init__(
        self,
        base_url: str,
        *,
        name: str = "upstream",
        headers: Mapping[str, str] | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        max_connections: int = 1000,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._client = httpx.AsyncClient(
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            trust_env=False,
        )

    def _error(self, message: str, kind: str) -> ProviderError:
        return ProviderError(f"provider {self.name!r}: {message}", kind=kind, provider=self.name)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _content(self, json: Any, body: bytes | None) -> bytes | None:
        return serialization.dumps(json) if json is not None else body

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        content = self._content(json, body)
        req_headers = {"content-type": "application/json", **(headers or {})} if content is not None else headers
        try:
            response = await self._client.request(method, self.url(path), content=content, headers=req_headers)
        except httpx.TimeoutException as exc:
            raise self._error("upstream request timed out", "timeout") from exc
        except httpx.TransportError as exc:
            raise self._error(f"could not reach upstream: {type(exc).__name__}", "connection") from exc
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
        content = self._content(json, body)
        req_headers = {"content-type": "application/json", **(headers or {})}
        request = self._client.build_request(method, self.url(path), content=content, headers=req_headers)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise self._error("upstream request timed out", "timeout") from exc
        except httpx.TransportError as exc:
            raise self._error(f"could not reach upstream: {type(exc).__name__}", "connection") from exc
        try:
            yield UpstreamStream(response, self)
        finally:
            # Closing mid-stream drops the upstream connection: a client that
            # went away stops the provider generating (and billing) tokens.
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
