"""Cohere provider: the v2 Chat API (``/v2/chat``, streamed or not), the v2
Embed API (``/v2/embed``) behind the canonical OpenAI format, and the v2
Rerank API (``/v2/rerank``) behind ``/v1/rerank``.

The translation is in :mod:`portway_cohere.request` (canonical to Cohere)
and :mod:`portway_cohere.answer` (Cohere to canonical, whole answers and
typed stream events); this module speaks HTTP.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from portway import hookimpl, serialization, sse
from portway.config import ProviderConfig
from portway.errors import ProviderError
from portway.formats import MalformedAnswer
from portway.formats.openai import completion_to_chunks, is_json, strip_anthropic_extras
from portway.providers import Provider
from portway.upstream import UpstreamResponse
from portway_cohere.answer import CohereStreamToOpenAI, chat_completion, embeddings, rerank
from portway_cohere.request import chat_request, embed_request, rerank_request

PORTWAY_PLUGIN_KIND = "provider"

CHAT_PATH = "/v2/chat"
EMBED_PATH = "/v2/embed"
RERANK_PATH = "/v2/rerank"
#: Cohere's "invalid token" status (cohere-python's ``InvalidTokenError``).
INVALID_TOKEN = 498


class CohereConfig(ProviderConfig):
    #: ``input_type`` of an embeddings request that gives none (Embed v3 and
    #: later require one): documents for a search index.  A request (or an
    #: alias's ``params``) may give its own, e.g. ``search_query``.
    embed_input_type: Literal["search_document", "search_query", "classification", "clustering"] = "search_document"


class CohereProvider(Provider):
    type = "cohere"
    config_model = CohereConfig
    default_base_url = "https://api.cohere.com"
    env_key = "CO_API_KEY"
    env_base_url = "CO_API_URL"
    default_models = ("command-a-03-2025", "command-a-reasoning-08-2025", "command-a-vision-07-2025",
                      "command-r-plus-08-2024", "command-r-08-2024", "command-r7b-12-2024", "embed-v4.0",
                      "embed-english-v3.0", "embed-multilingual-v3.0", "rerank-v3.5", "rerank-english-v3.0",
                      "rerank-multilingual-v3.0")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if self.api_key is None and config.api_key is None:
            # cohere-python reads CO_API_KEY, then COHERE_API_KEY.
            self.api_key = os.environ.get("COHERE_API_KEY") or None
        # The SDK's base URL is the bare host; one copied with an API version on its end works too.
        for suffix in ("/v1", "/v2"):
            if self.base_url.endswith(suffix):
                self.base_url = self.base_url[: -len(suffix)]
                break

    @property
    def settings(self) -> CohereConfig:
        return self.config  # type: ignore[return-value]

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        if response.status == INVALID_TOKEN:
            _, message = self.parse_error_body(response.content)
            return self.make_error(message, kind="authentication", status=INVALID_TOKEN)
        return super().error_from_response(response)

    def _named(self, error: ProviderError) -> ProviderError:
        """An error the translation raised, with this provider's name and redaction."""
        return error if error.provider else self.make_error(error.message, kind=error.kind, status=error.status,
                                                            code=error.code)

    def _payload(self, body: dict[str, Any], ctx: Any, stream: bool) -> dict[str, Any]:
        top_k = thinking = None
        if getattr(ctx, "client_format", None) == "anthropic":
            # /v1/messages keeps Anthropic-only keys in the canonical body: two have a Cohere form.
            top_k, thinking = body.get("top_k"), body.get("thinking")
            body = strip_anthropic_extras(body, self.name)
        payload = chat_request(body, top_k=top_k, anthropic_thinking=thinking)
        if stream:
            payload["stream"] = True
        else:
            payload.pop("stream", None)
        return payload

    def _completion(self, data: Any, model: str) -> dict[str, Any]:
        try:
            return chat_completion(data, model=model, created=int(time.time()))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None
        except ProviderError as exc:
            raise self._named(exc) from None

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        response = await self.http.request("POST", CHAT_PATH, json=self._payload(body, ctx, stream=False))
        if response.status >= 300:
            raise self.error_from_response(response)
        return self._completion(self.answer_json(response), body["model"])

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Each typed event converted as it arrives.  The stream counts as
        finished only at ``message-end``; one that stops before is a
        ``connection`` failure."""
        async with self.http.stream("POST", CHAT_PATH, json=self._payload(body, ctx, stream=True)) as response:
            await self.refuse_failed_stream(response)
            if is_json(response.headers):  # a whole answer to a stream request
                data = self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                yield completion_to_chunks(self._completion(data, body["model"]))
                return
            converter = CohereStreamToOpenAI(model=body["model"], created=int(time.time()))

            def convert(event: sse.Event) -> list[dict[str, Any]] | None:
                if not event.raw or event.raw.startswith(b"[DONE]"):  # cohere-python tolerates a [DONE]
                    return None
                return converter.feed(serialization.loads(event.raw))

            async for batch in self.stream_items(response, convert):
                chunks = [chunk for converted in batch for chunk in converted]
                if chunks:
                    yield chunks
            if not converter.done:
                raise self.make_error("the stream ended before message-end", kind="connection")

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = embed_request(body, self.settings.embed_input_type)
        response = await self.http.request("POST", EMBED_PATH, json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        data = self.answer_json(response)
        try:
            return embeddings(data, kind=payload["embedding_types"][0], count_of=len(payload["texts"]),
                              model=body["model"], as_base64=body.get("encoding_format") == "base64")
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = rerank_request(body)
        response = await self.http.request("POST", RERANK_PATH, json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        data = self.answer_json(response)
        try:
            return rerank(data, count_of=len(payload["documents"]))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


@hookimpl
def register_providers(register: Any) -> None:
    register(CohereProvider)
