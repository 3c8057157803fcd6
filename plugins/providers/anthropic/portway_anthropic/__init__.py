"""Anthropic provider: the Messages API behind the canonical OpenAI format.

All format work lives in :mod:`portway.formats.anthropic` (shared with the
gateway's ``/v1/messages`` endpoint); this module only speaks HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from portway import hookimpl
from portway.config import ProviderConfig
from portway.errors import ProviderError
from portway.formats import MalformedAnswer
from portway.formats.anthropic import (
    SAMPLING_PARAMS,
    anthropic_response_to_openai,
    check_message,
    openai_to_anthropic_request,
)
from portway.formats.anthropic.passthrough import count_tokens_body, read_stream
from portway.native import NativeEvent, canonical_batches
from portway.providers import Provider
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"



class AnthropicConfig(ProviderConfig):
    anthropic_version: str = "2023-06-01"
    #: Anthropic requires max_tokens; used when the client sends none.
    default_max_tokens: int = Field(4096, ge=1)
    #: Beta feature flags, sent as one comma-separated ``anthropic-beta`` header.
    beta: list[str] = Field(default_factory=list)
    #: Send temperature/top_p/top_k.  API version 2023-06-01 takes them; the
    #: anthropic SDK 2.x (API version 2026-10-21) no longer has them at all.
    sampling_params: bool = True


class AnthropicProvider(Provider):
    type = "anthropic"
    native_formats = frozenset({"anthropic"})
    config_model = AnthropicConfig
    default_base_url = "https://api.anthropic.com"
    env_key = "ANTHROPIC_API_KEY"
    env_base_url = "ANTHROPIC_BASE_URL"
    # Context window and maximum output, from docs.anthropic.com's models overview.
    limits = {"claude-opus-4-1*": (200_000, 32_000), "claude-opus-4-0*": (200_000, 32_000),
              "claude-opus-4-2*": (200_000, 32_000), "claude-sonnet-4*": (200_000, 64_000),
              "claude-haiku-4-5*": (200_000, 64_000), "claude-3-7-sonnet*": (200_000, 64_000),
              "claude-3-5-haiku*": (200_000, 8_192)}
    default_models = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")

    @property
    def settings(self) -> AnthropicConfig:
        return self.config  # type: ignore[return-value]

    @property
    def path(self) -> str:
        # The SDK convention is a bare host; accept a base_url that already ends in /v1 too.
        return "/messages" if self.base_url.endswith("/v1") else "/v1/messages"

    def default_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.settings.anthropic_version}
        if self.settings.beta:
            headers["anthropic-beta"] = ",".join(self.settings.beta)
        return headers

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        error = super().error_from_response(response)
        # Anthropic reports an over-long prompt as a plain invalid_request_error;
        # naming it lets the router fall back to a model with a larger window.
        if error.kind == "bad_request" and "prompt is too long" in error.message:
            error.kind = "context_length"
        return error

    def _payload(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """The canonical request as a Messages API body.  Mid-conversation
        system messages stay in place only for an Anthropic client (which
        sent them so, with the beta that allows them)."""
        from_anthropic = getattr(ctx, "client_format", None) == "anthropic"
        payload = openai_to_anthropic_request(body, default_max_tokens=self.settings.default_max_tokens,
                                              system_in_place=from_anthropic)
        payload.pop("stream", None)
        return payload

    def _prepared(self, payload: dict[str, Any], stream: bool) -> dict[str, Any]:
        if not self.settings.sampling_params:
            payload = {k: v for k, v in payload.items() if k not in SAMPLING_PARAMS}
        if stream:
            payload = {**payload, "stream": True}
        else:
            payload.pop("stream", None)
        return payload

    def _headers(self, ctx: Any) -> dict[str, str] | None:
        """Per-request headers: an Anthropic client's ``anthropic-beta``
        flags, merged with the configured ones.  Only ever sent to this
        Anthropic-format upstream; the flags of an OpenAI client's request
        are the configured ones alone."""
        if getattr(ctx, "client_format", None) != "anthropic":
            return None
        asked = ctx.headers.get("anthropic-beta")
        if not asked:
            return None
        flags = list(dict.fromkeys([*self.settings.beta, *(f.strip() for f in asked.split(",") if f.strip())]))
        return {"anthropic-beta": ",".join(flags)}

    # -- the Messages API as it is (pass-through for Anthropic clients) ---------------

    async def native(self, fmt: str, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        response = await self.http.request("POST", self.path, json=self._prepared(body, stream=False),
                                           headers=self._headers(ctx))
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return check_message(self.answer_json(response))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def native_stream(self, fmt: str, body: dict[str, Any], ctx: Any, *,
                            chunks: bool = True) -> AsyncIterator[list[NativeEvent]]:
        """The upstream's events as they came, each with the canonical
        chunks it converts to (which is how each is checked).  With
        ``chunks=False`` only the events that start, end or fail the answer
        are read (usage, the end, errors); the content events go to the client
        as Anthropic sent them, unread."""
        async with self.http.stream("POST", self.path, json=self._prepared(body, stream=True),
                                    headers=self._headers(ctx)) as response:
            async for batch in read_stream(self, response, chunks=chunks):
                yield batch

    async def count_tokens(self, body: dict[str, Any], ctx: Any) -> int | None:
        """Anthropic's own count (``POST /v1/messages/count_tokens``), given
        the request without the keys only a Messages call takes."""
        payload = count_tokens_body(body)
        response = await self.http.request("POST", self.path + "/count_tokens", json=payload,
                                           headers=self._headers(ctx))
        if response.status >= 300:
            raise self.error_from_response(response)
        return self.counted(response, "input_tokens")

    # -- the canonical (OpenAI) view, for every other client ---------------------------

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return anthropic_response_to_openai(await self.native("anthropic", self._payload(body, ctx), ctx))

    def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        return canonical_batches(self.native_stream("anthropic", self._payload(body, ctx), ctx))


@hookimpl
def register_providers(register: Any) -> None:
    register(AnthropicProvider)
