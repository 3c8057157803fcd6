"""``POST /v1/rerank`` (also ``/v2/rerank``, where Cohere's v2 client sends
it): rank documents by relevance to a query, in Cohere's and Jina's shape,
on any provider whose adapter implements ``rerank``.  A target without one
answers a 400 naming the provider (and an alias falls back to a target
that has one)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portway.context import RequestContext
from portway.endpoints.common import JSONResponse, handle, route_headers
from portway.formats.rerank import finish_rerank
from portway.gateway import Gateway
from portway.schemas.rerank import RerankRequest
from portway.streaming import unless_disconnected


async def rerank(request: Request) -> Response:
    return await handle(request, "rerank", RerankRequest, _rerank)


async def _rerank(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    answer = await unless_disconnected(request.receive, gateway.rerank(ctx))
    return JSONResponse(finish_rerank(answer, ctx.body), headers=route_headers(ctx))
