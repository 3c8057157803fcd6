"""IBM watsonx.ai provider: chat (``/ml/v1/text/chat`` and ``/chat_stream``)
and embeddings (``/ml/v1/text/embeddings``).

Requests carry an IAM bearer token exchanged from the API key
(:mod:`portway_watsonx.iam`), the API ``version`` as a query parameter, and
the project or space in the body; the wire format is mapped in
:mod:`portway_watsonx.wire`.  The region picks the host
(``https://{region}.ml.cloud.ibm.com``) unless ``base_url`` is given.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import model_validator

from portway import hookimpl, serialization, sse
from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError, is_error_status, kind_for_status
from portway.formats import MalformedAnswer
from portway.formats.openai import check_chunk, check_completion, completion_to_chunks, is_json, strip_anthropic_extras
from portway.providers import Provider, StreamEnd, retry_after
from portway.quirks import check_capabilities
from portway.upstream import Upstream, UpstreamResponse
from portway_watsonx import wire
from portway_watsonx.iam import DEFAULT_IAM_URL, GRANT_TYPE, IAMTokens, Token

PORTWAY_PLUGIN_KIND = "provider"

#: The API version date sent when the config names none: the one IBM's Node SDK sends
#: (``src/version.ts`` ``VERSION_DATE``).
DEFAULT_VERSION = "2026-06-10"


class WatsonxConfig(ProviderConfig):
    #: Picks the host, ``https://{region}.ml.cloud.ibm.com``, when ``base_url`` is not given.
    region: str = "us-south"
    #: The project or the deployment space the requests run in (exactly one; the project
    #: defaults to ``$WATSONX_PROJECT_ID``).
    project_id: str | None = None
    space_id: str | None = None
    #: The ``version`` query parameter: the API version date.
    api_version: str = DEFAULT_VERSION
    #: IAM's token endpoint (another for a private or staging IAM, or a test).
    iam_url: str = DEFAULT_IAM_URL

    @model_validator(mode="after")
    def _one_scope(self) -> WatsonxConfig:
        if self.project_id and self.space_id:
            raise ValueError("give project_id or space_id, not both")
        return self


class WatsonxProvider(Provider):
    type = "watsonx"
    config_model = WatsonxConfig
    env_key = "WATSONX_APIKEY"
    env_base_url = "WATSONX_URL"
    default_models = ("ibm/granite-3-3-8b-instruct", "ibm/granite-3-8b-instruct", "meta-llama/llama-3-3-70b-instruct",
                      "meta-llama/llama-3-2-11b-vision-instruct", "mistralai/mistral-large")
    #: The models whose abilities are certain from IBM's model list: Granite 3 instruct and Llama 3.3
    #: read text; the Llama 3.2 vision models read images.  Others are not checked.
    capabilities = {
        "ibm/granite-3-*-instruct": ("tools", "json"),
        "meta-llama/llama-3-3-70b-instruct": ("tools", "json"),
        "meta-llama/llama-3-2-*-vision-instruct": ("tools", "vision", "json"),
    }

    def __init__(self, name: str, config: ProviderConfig) -> None:
        settings: WatsonxConfig = config  # type: ignore[assignment]
        self.default_base_url = f"https://{settings.region}.ml.cloud.ibm.com"  # type: ignore[misc]
        super().__init__(name, config)
        if settings.space_id:
            self.scope = {"space_id": settings.space_id}
        else:
            project = settings.project_id or os.environ.get("WATSONX_PROJECT_ID")
            if not project:
                raise PortwayError(f"provider {name!r} needs a project_id (or $WATSONX_PROJECT_ID) or a space_id",
                                   kind="bad_request")
            self.scope = {"project_id": project}
        if not self.api_key:
            raise PortwayError(f"provider {name!r} needs an api_key (or $WATSONX_APIKEY)", kind="bad_request")
        self.tokens: IAMTokens | None = None
        self._iam: Upstream | None = None

    @property
    def settings(self) -> WatsonxConfig:
        return self.config  # type: ignore[return-value]

    # -- lifecycle: a second pool, for IAM ------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {}  # the key goes to IAM only; requests carry the token (request_headers)

    async def start(self) -> None:
        await super().start()
        config = self.settings
        iam = Upstream(config.iam_url, name=self.name, timeout=config.timeout, connect_timeout=config.connect_timeout,
                       pool_timeout=config.pool_timeout, max_connections=config.max_connections,
                       transport=config.http_client)
        await iam.start()
        self._iam = iam
        self.tokens = IAMTokens(self._exchange)

    async def close(self) -> None:
        if self._iam is not None:
            await self._iam.aclose()
            self._iam = None
        await super().close()

    # -- credentials ---------------------------------------------------------------------------

    async def _exchange(self) -> Token:
        """The API key exchanged for an IAM access token."""
        if self._iam is None:
            raise PortwayError(f"provider {self.name!r} is not started", kind="unavailable")
        form = urlencode({"grant_type": GRANT_TYPE, "apikey": self.api_key or ""})
        response = await self._iam.request("POST", self.settings.iam_url, body=form.encode(), headers={
            "content-type": "application/x-www-form-urlencoded", "accept": "application/json"})
        if response.status != 200:
            kind = kind_for_status(response.status)
            if kind in ("bad_request", "authentication", "permission", "not_found"):
                kind = "authentication"  # IAM refused the key (a 400 BXNIM0415E): no retry fixes that
            raise self.make_error(f"IAM refused the API key (HTTP {response.status}): "
                                  f"{wire.iam_error(response.content)}", kind=kind,
                                  retry_after=retry_after(response.headers))
        try:
            data = serialization.loads(response.content)
        except serialization.JSONDecodeError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        expiration = data.get("expiration") if isinstance(data, dict) else None
        lifetime = data.get("expires_in") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or type(expiration) not in (int, float) \
                or type(lifetime) not in (int, float) or lifetime <= 0:
            raise self.malformed("IAM's token answer has no access_token, expiration and expires_in")
        return Token(token, float(expiration), float(lifetime))

    async def request_headers(self) -> dict[str, str]:
        if self.tokens is None:
            raise PortwayError(f"provider {self.name!r} is not started", kind="unavailable")
        return {"authorization": f"Bearer {await self.tokens.get()}"}

    def secrets(self) -> list[str]:
        """The API key and the IAM tokens handed out (the current one and the one before)."""
        recent = list(self.tokens.recent) if self.tokens is not None else []
        return [*super().secrets(), *recent]

    # -- errors ------------------------------------------------------------------------------------

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        """watsonx's ``{"errors": [...], "trace", "status_code"}``; a 401
        also drops the token, so the next request exchanges the key again."""
        if response.status == 401 and self.tokens is not None:
            self.tokens.forget()
        parsed = wire.parse_error(response.content)
        if parsed is None:
            return super().error_from_response(response)
        code, message = parsed
        if not is_error_status(response.status):
            message = f"upstream answered with HTTP status {response.status}, not an HTTP error status: {message}"
        return self.make_error(message, kind=kind_for_status(response.status), status=response.status, code=code,
                               retry_after=retry_after(response.headers))

    def _stream_error(self, data: Any) -> ProviderError:
        parsed = wire.parse_error(serialization.dumps(data))
        code, message = parsed if parsed is not None else (None, str(data))
        return self.make_error(message, kind="server_error", code=code, status=502)

    # -- chat ----------------------------------------------------------------------------------------

    def _wire(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if getattr(ctx, "client_format", None) == "anthropic":
            body = strip_anthropic_extras(body, self.name)
        model = body.get("model")
        if self.capabilities and isinstance(model, str):
            capabilities = self.model_capabilities(model)
            if capabilities is not None:
                check_capabilities(body, capabilities, self.name, model)
        return wire.chat_body(body, self.name, self.scope)

    def _path(self, operation: str) -> str:
        return f"/ml/v1/text/{operation}?version={quote(self.settings.api_version, safe='')}"

    def _completion(self, data: Any, model: str) -> dict[str, Any]:
        try:
            return check_completion(wire.completion(data, model))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        model = str(body.get("model") or "")
        response = await self.http.request("POST", self._path("chat"), json=self._wire(body, ctx),
                                           headers=await self.request_headers())
        if response.status >= 300:
            raise self.error_from_response(response)
        return self._completion(self.answer_json(response), model)

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """The SSE events of ``/chat_stream`` (``id:``, ``event: message``,
        ``data:``) as chunks.  The usage, which watsonx may put on any chunk,
        comes last in a chunk of its own; a stream that closes before every
        choice has its ``finish_reason`` is a ``connection`` failure."""
        model = str(body.get("model") or "")
        headers = {**await self.request_headers(), "accept": "text/event-stream"}
        async with self.http.stream("POST", self._path("chat_stream"), json=self._wire(body, ctx),
                                    headers=headers) as response:
            await self.refuse_failed_stream(response)
            if is_json(response.headers):
                data = self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                yield completion_to_chunks(self._completion(data, model))
                return
            ended = False
            last: dict[str, Any] = {}

            def convert(event: sse.Event) -> dict[str, Any] | None:
                nonlocal ended
                if event.raw.startswith(b"[DONE]"):
                    ended = True
                    raise StreamEnd
                if not event.raw:
                    return None
                data = serialization.loads(event.raw)
                if event.event == "error" or (isinstance(data, dict) and "errors" in data and "choices" not in data):
                    raise self._stream_error(data)
                item = wire.chunk(data, model)
                if isinstance(item, dict) and item.get("usage") is not None:
                    last["usage"] = item.pop("usage")
                if check_chunk(item):
                    ended = True
                last["base"] = item
                return item

            async for batch in self.stream_items(response, convert):
                yield batch
            if not ended:
                raise self.make_error("the stream ended before it finished (no finish_reason)", kind="connection")
        usage, base = last.get("usage"), last.get("base")
        if usage is not None and isinstance(base, dict):
            try:
                check_chunk({"usage": usage})
            except MalformedAnswer as exc:
                raise self.malformed(str(exc)) from None
            yield [{key: base[key] for key in ("id", "object", "created", "model") if key in base}
                   | {"choices": [], "usage": usage}]

    # -- embeddings ------------------------------------------------------------------------------------

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = wire.embeddings_body(body, self.name, self.scope)
        response = await self.http.request("POST", self._path("embeddings"), json=payload,
                                           headers=await self.request_headers())
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return wire.embeddings(self.answer_json(response), len(payload["inputs"]),
                                   body.get("encoding_format") == "base64")
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


@hookimpl
def register_providers(register: Any) -> None:
    register(WatsonxProvider)
