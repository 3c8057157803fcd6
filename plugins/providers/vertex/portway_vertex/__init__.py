"""Vertex AI provider: Gemini and Claude models on Google Cloud.

* Gemini models (``gemini-…`` or ``google/…``) go to
  ``…/publishers/google/models/{m}:generateContent`` /
  ``:streamGenerateContent?alt=sse``, in the Gemini format of the ``gemini``
  plugin (this class extends :class:`~portway_gemini.GeminiProvider`).
* Claude models (``claude-…`` or ``anthropic/…``) go to
  ``…/publishers/anthropic/models/{m}:rawPredict`` / ``:streamRawPredict``,
  a Messages API body without ``model`` and with ``anthropic_version``.  An
  Anthropic client's request passes through as it was sent (the client's
  body, with those two changes; ``anthropic-beta`` merged) and the answer or
  stream comes back as Vertex sent it; an OpenAI client's request is
  translated by :mod:`portway.formats.anthropic`.

Every request carries an OAuth2 access token minted from a service-account
key (:mod:`portway_vertex.auth`), through its own pooled client for the
token endpoint.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlencode

from pydantic import Field, field_validator

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError, kind_for_status
from portway.formats import MalformedAnswer
from portway.formats.anthropic import (
    anthropic_response_to_openai,
    check_message,
    openai_to_anthropic_request,
)
from portway.formats.anthropic.passthrough import count_tokens_body, read_stream
from portway.native import NativeEvent, canonical_batches
from portway.upstream import Upstream, UpstreamResponse
from portway_gemini import GeminiProvider, quote_segment
from portway_gemini.request import bad_request
from portway_vertex.auth import GRANT_TYPE, ServiceAccount, TokenCache

PORTWAY_PLUGIN_KIND = "provider"

_LOCATION = re.compile(r"\A[a-z0-9-]+\Z")


class VertexConfig(ProviderConfig):
    #: The Google Cloud project; default: the service account's ``project_id``.
    project: str | None = None
    location: str = "us-central1"
    #: Path to a service-account key file; default: $GOOGLE_APPLICATION_CREDENTIALS.
    credentials: str | None = None
    #: Sent in Claude bodies as ``anthropic_version``.
    anthropic_version: str = "vertex-2023-10-16"
    #: Claude requires max_tokens; used when an OpenAI client sends none.
    default_max_tokens: int = Field(4096, ge=1)
    #: Anthropic beta flags for Claude, sent as one ``anthropic-beta`` header.
    beta: list[str] = Field(default_factory=list)

    @field_validator("api_key")
    @classmethod
    def _no_api_key(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("vertex authenticates with a service account ('credentials'), not an api_key")
        return value

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if not _LOCATION.match(value):
            raise ValueError("must be a Google Cloud location such as us-central1, europe-west4 or global")
        return value


def host_for(location: str) -> str:
    """The regional endpoint, or the global one (no region prefix)."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def publisher(model: str) -> tuple[str, str]:
    """(publisher, model id) by name: a ``google/`` or ``anthropic/`` prefix,
    else ``claude-…`` is Anthropic's and anything else Google's."""
    head, sep, rest = model.partition("/")
    if sep:
        if head not in ("google", "anthropic"):
            raise bad_request(f"Vertex publisher {head!r} is not supported by this provider (google, anthropic)",
                              "model")
        return head, rest
    return ("anthropic" if model.startswith("claude-") else "google"), model


class VertexProvider(GeminiProvider):
    type = "vertex"
    catalog_id = "google"  # genai-prices' id for its models' prices
    config_model = VertexConfig
    default_base_url = None
    env_key = None
    env_key_fallback = None
    native_formats = frozenset({"anthropic"})
    default_models = ("gemini-2.5-flash", "gemini-2.5-pro", "claude-sonnet-4-5@20250929", "claude-haiku-4-5@20251001")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        settings: VertexConfig = config  # type: ignore[assignment]
        path = settings.credentials or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if not path:
            raise PortwayError(f"provider {name!r} needs 'credentials' (a service-account key file) or "
                               "GOOGLE_APPLICATION_CREDENTIALS", kind="bad_request")
        self.account = ServiceAccount.load(path)
        project = settings.project or self.account.project_id
        if not project:
            raise PortwayError(f"provider {name!r} needs a 'project' (the key file names none)", kind="bad_request")
        self.project = project
        self.default_base_url = host_for(settings.location)  # type: ignore[misc]
        super().__init__(name, config)
        self.tokens: TokenCache | None = None
        self._token_http: Upstream | None = None

    @property
    def vertex(self) -> VertexConfig:
        return self.config  # type: ignore[return-value]

    # -- lifecycle: a second pool, for the token endpoint --------------------------------

    async def start(self) -> None:
        await super().start()
        config = self.config
        token_http = Upstream(self.account.token_uri, name=self.name, timeout=config.timeout,
                              connect_timeout=config.connect_timeout, pool_timeout=config.pool_timeout,
                              max_connections=config.max_connections, transport=config.http_client)
        await token_http.start()
        self._token_http = token_http
        self.tokens = TokenCache(self._mint)

    async def close(self) -> None:
        if self._token_http is not None:
            await self._token_http.aclose()
            self._token_http = None
        await super().close()

    # -- credentials ------------------------------------------------------------------------

    async def _mint(self) -> tuple[str, float]:
        """Exchange a fresh assertion for an access token (and its lifetime)."""
        if self._token_http is None:
            raise PortwayError(f"provider {self.name!r} is not started", kind="unavailable")
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": self.account.assertion(int(time.time()))})
        response = await self._token_http.request("POST", self.account.token_uri, body=form.encode(),
                                                  headers={"content-type": "application/x-www-form-urlencoded"})
        try:
            data = response.json() if response.content else None
        except serialization.JSONDecodeError:
            data = None
        if response.status != 200:
            detail = ""
            if isinstance(data, dict):
                detail = str(data.get("error_description") or data.get("error") or "")
            kind = kind_for_status(response.status)
            if kind in ("bad_request", "authentication", "permission", "not_found"):
                kind = "authentication"  # the key was refused: no retry fixes that
            raise self.make_error(f"the token endpoint refused the service account {self.account.client_email} "
                                  f"(HTTP {response.status}): {detail or 'no reason given'}", kind=kind)
        token = data.get("access_token") if isinstance(data, dict) else None
        lifetime = data.get("expires_in", 3600) if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or type(lifetime) not in (int, float) or lifetime <= 0:
            raise self.malformed("the token endpoint's answer has no access_token and expires_in")
        return token, float(lifetime)

    async def request_headers(self) -> dict[str, str]:
        if self.tokens is None:
            raise PortwayError(f"provider {self.name!r} is not started", kind="unavailable")
        return {"authorization": f"Bearer {await self.tokens.get()}"}

    def rejected_credentials(self) -> None:
        if self.tokens is not None:
            self.tokens.forget()

    def secrets(self) -> list[str]:
        """The access tokens minted (the current one, and the one before it)."""
        recent = list(self.tokens.recent) if self.tokens is not None else []
        return [*super().secrets(), *recent]

    # -- paths ------------------------------------------------------------------------------

    def _model_base(self, publisher_name: str, model: str) -> str:
        return (f"/v1/projects/{quote_segment(self.project, 'project')}/locations/{self.vertex.location}"
                f"/publishers/{publisher_name}/models/{quote_segment(model, 'model')}")

    def model_path(self, model: str, method: str) -> str:
        return f"{self._model_base('google', publisher(model)[1])}:{method}"

    def speaks_natively(self, fmt: str, model: str) -> bool:
        """Anthropic clients pass through to Claude, not to Gemini."""
        return fmt in self.native_formats and publisher(model)[0] == "anthropic"

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (Vertex AI embedding models are not mapped yet)")

    # -- errors -------------------------------------------------------------------------------

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        """Google's error shape from Vertex's front end, Anthropic's from Claude."""
        error = super().error_from_response(response)
        if error.kind == "bad_request" and "prompt is too long" in error.message:
            error.kind = "context_length"
        return error

    # -- Claude ---------------------------------------------------------------------------------

    def _claude(self, body: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any]]:
        """(path, body) for a Messages API body: its model goes to the URL,
        ``anthropic_version`` into the body; everything else as it is."""
        payload = dict(body)
        model = publisher(str(payload.pop("model", "") or ""))[1]
        payload["anthropic_version"] = self.vertex.anthropic_version
        if stream:
            payload["stream"] = True
        else:
            payload.pop("stream", None)
        method = "streamRawPredict" if stream else "rawPredict"
        return f"{self._model_base('anthropic', model)}:{method}", payload

    async def _claude_headers(self, ctx: Any) -> dict[str, str]:
        """The token, and the configured betas merged with an Anthropic
        client's own (each once), as the anthropic plugin merges them."""
        headers = await self.request_headers()
        flags = list(self.vertex.beta)
        if getattr(ctx, "client_format", None) == "anthropic":
            asked = (getattr(ctx, "headers", None) or {}).get("anthropic-beta") or ""
            flags += [flag.strip() for flag in asked.split(",") if flag.strip()]
        if flags:
            headers["anthropic-beta"] = ",".join(dict.fromkeys(flags))
        return headers

    async def native(self, fmt: str, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if fmt != "anthropic" or publisher(str(body.get("model") or ""))[0] != "anthropic":
            raise self.unsupported(f"{fmt} requests as they are for this model")
        path, payload = self._claude(body, stream=False)
        response = await self.http.request("POST", path, json=payload, headers=await self._claude_headers(ctx))
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return check_message(self.answer_json(response))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def count_tokens(self, body: dict[str, Any], ctx: Any) -> int | None:
        """Claude's token count on Vertex: ``…/publishers/anthropic/models/
        count-tokens:rawPredict`` with the model in the body (as the anthropic
        SDK's Vertex client sends it).  Gemini models: None (the gateway estimates)."""
        kind, model = publisher(str(body.get("model") or ""))
        if kind != "anthropic":
            return None
        payload = {**count_tokens_body(body), "model": model, "anthropic_version": self.vertex.anthropic_version}
        response = await self.http.request("POST", f"{self._model_base('anthropic', 'count-tokens')}:rawPredict",
                                           json=payload, headers=await self._claude_headers(ctx))
        if response.status >= 300:
            raise self.error_from_response(response)
        return self.counted(response, "input_tokens")

    async def native_stream(self, fmt: str, body: dict[str, Any], ctx: Any, *,
                            chunks: bool = True) -> AsyncIterator[list[NativeEvent]]:
        """Vertex's events as they came, each with the canonical chunks it
        converts to (which is how each is checked)."""
        if fmt != "anthropic" or publisher(str(body.get("model") or ""))[0] != "anthropic":
            raise self.unsupported(f"{fmt} streams as they are for this model")
        path, payload = self._claude(body, stream=True)
        async with self.http.stream("POST", path, json=payload, headers=await self._claude_headers(ctx)) as response:
            async for batch in read_stream(self, response, chunks=chunks):
                yield batch

    def _claude_body(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """The canonical request as a Messages API body; mid-conversation system
        messages stay in place only for an Anthropic client."""
        return openai_to_anthropic_request(body, default_max_tokens=self.vertex.default_max_tokens,
                                           system_in_place=getattr(ctx, "client_format", None) == "anthropic")

    # -- the canonical (OpenAI) view: Gemini or Claude by model ------------------------------------

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if publisher(str(body.get("model") or ""))[0] == "anthropic":
            return anthropic_response_to_openai(await self.native("anthropic", self._claude_body(body, ctx), ctx))
        return await super().chat(body, ctx)

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        if publisher(str(body.get("model") or ""))[0] != "anthropic":
            async with aclosing(super().chat_stream_batches(body, ctx)) as batches:
                async for chunks in batches:
                    yield chunks
            return
        async with aclosing(canonical_batches(self.native_stream("anthropic", self._claude_body(body, ctx), ctx))) \
                as batches:
            async for chunks in batches:
                yield chunks


@hookimpl
def register_providers(register: Any) -> None:
    register(VertexProvider)
