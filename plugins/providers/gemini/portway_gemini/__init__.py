"""Gemini provider: Google AI Studio's Gemini API (``generativelanguage``)
behind the canonical OpenAI format.

The format work is in :mod:`portway_gemini.request`, :mod:`~portway_gemini.response`,
:mod:`~portway_gemini.schema` and :mod:`~portway_gemini.errors`, which the
``vertex`` plugin reuses for Gemini models on Vertex AI; this module speaks
HTTP.  A subclass changes where requests go (:meth:`GeminiProvider.model_path`)
and how they are authorised (:meth:`GeminiProvider.request_headers`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from portway import hookimpl, serialization, sse
from portway.config import ProviderConfig
from portway.errors import ProviderError, is_error_status, kind_for_status
from portway.formats import MalformedAnswer
from portway.formats.openai import is_json, strip_anthropic_extras
from portway.providers import Provider
from portway.upstream import UpstreamResponse
from portway_gemini.errors import is_context_overflow, parse_google_error
from portway_gemini.request import bad_request, embed_inputs, embed_request, to_gemini_request
from portway_gemini.response import GeminiStreamToOpenAI, to_completion, to_embeddings

PORTWAY_PLUGIN_KIND = "provider"

#: Anthropic-only keys of a /v1/messages client's canonical body that Gemini can express.
ANTHROPIC_KEYS_KEPT = ("top_k", "thinking")


class GeminiConfig(ProviderConfig):
    #: The API version in the path (python-genai's default is v1beta).
    api_version: str = "v1beta"


def quote_segment(value: str, param: str) -> str:
    """``value`` as one URL path segment: a model name can hold ``@`` or
    ``:`` but never reaches another path (``/`` is encoded, ``.``/``..``
    refused)."""
    if value in ("", ".", ".."):
        raise bad_request(f"{value!r} is not a usable model name", param)
    return quote(value, safe="@:")


class GeminiProvider(Provider):
    type = "gemini"
    catalog_id = "google"  # genai-prices' id for its models' prices
    config_model = GeminiConfig
    default_base_url = "https://generativelanguage.googleapis.com"
    env_key = "GEMINI_API_KEY"
    #: Tried after ``env_key`` (python-genai reads both, GOOGLE_API_KEY winning
    #: when both are set; here an explicit GEMINI_API_KEY wins).
    env_key_fallback = "GOOGLE_API_KEY"
    # Input and output token limits, from ai.google.dev/gemini-api/docs/models.
    limits = {"gemini-2.5-*": (1_048_576, 65_536), "gemini-2.0-flash*": (1_048_576, 8_192),
              "gemini-embedding-001": (2_048, None)}
    default_models = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-embedding-001")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if self.api_key is None and self.env_key_fallback:
            self.api_key = os.environ.get(self.env_key_fallback) or None

    @property
    def settings(self) -> GeminiConfig:
        return self.config  # type: ignore[return-value]

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key} if self.api_key else {}

    # -- where requests go, and with what credentials (overridden by vertex) ----------

    def model_path(self, model: str, method: str) -> str:
        """The path of ``method`` (``generateContent``, ...) for ``model``."""
        model = model.removeprefix("models/")  # python-genai accepts both spellings
        return f"/{self.settings.api_version}/models/{quote_segment(model, 'model')}:{method}"

    def embedding_model(self, model: str) -> str:
        """How a batch request names its model."""
        return "models/" + model.removeprefix("models/")

    async def request_headers(self) -> dict[str, str] | None:
        """Headers made per request (an access token); None: the pooled ones do."""
        return None

    def rejected_credentials(self) -> None:
        """The upstream refused the credentials (a token to forget, for vertex)."""

    # -- errors -----------------------------------------------------------------------

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        """Google's error shape: the message, the status name as the code, a
        RetryInfo delay as ``Retry-After`` (when no header says it)."""
        error = parse_google_error(response.content)
        if error is None:
            return super().error_from_response(response)
        kind = kind_for_status(response.status)
        message = error.message
        if not is_error_status(response.status):
            message = f"upstream answered with HTTP status {response.status}, not an HTTP error status: {message}"
        elif error.reason == "API_KEY_INVALID" or response.status == 401:
            kind = "authentication"  # Gemini answers a wrong key with a 400 INVALID_ARGUMENT
        elif kind == "bad_request" and is_context_overflow(message):
            kind = "context_length"
        if kind == "authentication":
            self.rejected_credentials()
        return self.make_error(message, kind=kind, status=response.status, code=error.status,
                               retry_after=response.headers.get("retry-after") or error.retry_after)

    def _classified(self, exc: ProviderError) -> ProviderError:
        """An error the format raised (a blocked prompt, an error event), with
        this provider's name and redaction."""
        if exc.provider is not None:
            return exc
        return self.make_error(exc.message, kind=exc.kind, code=exc.code)

    # -- chat ---------------------------------------------------------------------------

    def gemini_body(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """The canonical request as a ``generateContent`` body.  A /v1/messages
        client's Anthropic-only blocks and keys are stripped by the core's
        rule, except those Gemini can express (``top_k``, ``thinking``)."""
        if getattr(ctx, "client_format", None) == "anthropic":
            kept = {key: body[key] for key in ANTHROPIC_KEYS_KEPT if key in body}
            stripped = strip_anthropic_extras(body, self.name)
            # Thinking blocks carry Gemini's own thought signatures back (the
            # rule strips them for OpenAI-format upstreams): keep them.
            stripped["messages"] = [
                {**new, "thinking_blocks": old["thinking_blocks"]} if old.get("thinking_blocks") else new
                for old, new in zip(body.get("messages") or (), stripped["messages"], strict=True)]
            body = {**stripped, **kept}
        return to_gemini_request(body)

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        model = str(body.get("model") or "")
        response = await self.http.request("POST", self.model_path(model, "generateContent"),
                                           json=self.gemini_body(body, ctx), headers=await self.request_headers())
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return to_completion(self.answer_json(response), model)
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None
        except ProviderError as exc:
            raise self._classified(exc) from None

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Each SSE event's chunks as it arrives.  The stream counts as
        finished once every candidate has its finishReason; one that closes
        before is a ``connection`` failure.  Usage goes last, once the
        upstream has closed (its running total may still grow)."""
        model = str(body.get("model") or "")
        payload = self.gemini_body(body, ctx)
        converter = GeminiStreamToOpenAI(model, body.get("n") or 1)
        path = self.model_path(model, "streamGenerateContent") + "?alt=sse"
        async with self.http.stream("POST", path, json=payload, headers=await self.request_headers()) as response:
            await self.refuse_failed_stream(response)
            if is_json(response.headers):
                # Without alt=sse Gemini streams one JSON array; an error comes as one object.
                data = self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                try:
                    chunks = [c for item in (data if isinstance(data, list) else [data]) for c in converter.feed(item)]
                except MalformedAnswer as exc:
                    raise self.malformed(str(exc)) from None
                except ProviderError as exc:
                    raise self._classified(exc) from None
                if chunks:
                    yield chunks
            else:
                def convert(event: sse.Event) -> list[dict[str, Any]] | None:
                    return converter.feed(serialization.loads(event.raw)) if event.raw else None

                async for batch in self.stream_items(response, convert):
                    chunks = [chunk for item in batch for chunk in item]
                    if chunks:
                        yield chunks
            if not converter.done:
                raise self.make_error("the stream ended before every candidate had its finishReason",
                                      kind="connection")
        usage = converter.usage_chunk()
        if usage is not None:
            yield [usage]

    # -- embeddings -----------------------------------------------------------------------

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """One text: ``embedContent``; a list: ``batchEmbedContents``."""
        model = str(body.get("model") or "")
        texts = embed_inputs(body)
        if isinstance(body.get("input"), str):
            path, payload = self.model_path(model, "embedContent"), embed_request(body, texts[0])
        else:
            name = self.embedding_model(model)
            path = self.model_path(model, "batchEmbedContents")
            payload = {"requests": [embed_request(body, text, name) for text in texts]}
        response = await self.http.request("POST", path, json=payload, headers=await self.request_headers())
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            return to_embeddings(self.answer_json(response), model, len(texts), body.get("encoding_format"))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


@hookimpl
def register_providers(register: Any) -> None:
    register(GeminiProvider)
