"""Ollama provider: the native chat API (``/api/chat``, NDJSON streaming)
and embed API (``/api/embed``) behind the canonical OpenAI format.

Not Ollama's OpenAI-compatible ``/v1``: the native API takes ``options``
(``num_ctx`` above all, which ``/v1`` cannot set), ``keep_alive``, ``think``
and JSON schemas in ``format``, and reports ``done_reason``.  The
translation is in :mod:`portway_ollama.request` and
:mod:`portway_ollama.answer`; this module speaks HTTP.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from pydantic import Field

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import ProviderError, is_error_status, kind_for_status
from portway.formats import MalformedAnswer
from portway.formats.openai import completion_to_chunks, is_json, strip_anthropic_extras
from portway.providers import Provider
from portway.upstream import UpstreamResponse
from portway_ollama.answer import OllamaStreamToOpenAI, chat_completion, embeddings, stream_error
from portway_ollama.request import chat_request, embed_request

PORTWAY_PLUGIN_KIND = "provider"

CHAT_PATH = "/api/chat"
EMBED_PATH = "/api/embed"
DEFAULT_PORT = 11434


class OllamaConfig(ProviderConfig):
    #: How long Ollama keeps the model loaded after a request (``"5m"``,
    #: ``"1h"``, seconds, ``-1`` for ever, ``0`` to unload): sent as
    #: ``keep_alive`` unless the request gives its own.  None: Ollama's default.
    keep_alive: str | float | None = None
    #: The context window (``options.num_ctx``) for every chat request that
    #: does not set one in its ``options``.  None: the model's default
    #: (Ollama's is small; set it for long conversations).
    num_ctx: int | None = Field(None, ge=1)


def parse_host(host: str) -> str:
    """``OLLAMA_HOST`` as a base URL, as ollama-python's ``_parse_host``
    reads it: a bare host gets ``http://`` and port 11434, an explicit
    scheme its default port, and a trailing ``/`` goes."""
    host = host.strip()
    scheme, sep, rest = host.partition("://")
    port = DEFAULT_PORT
    if not sep:
        scheme, rest = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{rest}")
    hostname = split.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    try:
        port = split.port or port
    except ValueError:
        pass
    path = split.path.rstrip("/")
    return f"{scheme}://{hostname}:{port}{path}"


class OllamaProvider(Provider):
    type = "ollama"
    config_model = OllamaConfig
    default_base_url = f"http://127.0.0.1:{DEFAULT_PORT}"
    #: No key locally.  ``api_key`` (or ``OLLAMA_API_KEY``, read as
    #: ollama-python does) is sent as a bearer token, for ollama.com's API.
    env_key = None
    env_base_url = "OLLAMA_HOST"
    default_models = ("llama3.2", "llama3.1", "qwen3", "gemma3", "mistral", "deepseek-r1", "llava", "gpt-oss",
                      "nomic-embed-text", "mxbai-embed-large", "all-minilm")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if config.base_url is None and os.environ.get("OLLAMA_HOST", "").strip():
            self.base_url = parse_host(os.environ["OLLAMA_HOST"])
        # The native API lives at the root: a base URL copied from the OpenAI-compatible setup works too.
        for suffix in ("/v1", "/api"):
            if self.base_url.endswith(suffix):
                self.base_url = self.base_url[: -len(suffix)]
                break
        if self.api_key is None and config.api_key is None:
            self.api_key = os.environ.get("OLLAMA_API_KEY") or None

    @property
    def settings(self) -> OllamaConfig:
        return self.config  # type: ignore[return-value]

    def _payload(self, body: dict[str, Any], ctx: Any, stream: bool) -> dict[str, Any]:
        anthropic: dict[str, Any] = {}
        if getattr(ctx, "client_format", None) == "anthropic":
            # /v1/messages keeps Anthropic-only keys in the canonical body: two have an Ollama form.
            anthropic = {"top_k": body.get("top_k"), "thinking": body.get("thinking")}
            body = strip_anthropic_extras(body, self.name)
        return chat_request(body, stream=stream, keep_alive=self.settings.keep_alive, num_ctx=self.settings.num_ctx,
                            anthropic=anthropic)

    def _completion(self, data: Any, model: str) -> dict[str, Any]:
        try:
            return chat_completion(data, model=model, created=int(time.time()))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        response = await self.http.request("POST", CHAT_PATH, json=self._payload(body, ctx, stream=False))
        if response.status >= 300:
            raise self.error_from_response(response)
        return self._completion(self.answer_json(response), body["model"])

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Each NDJSON line converted as it arrives.  The stream counts as
        finished only at the line with ``done: true``; one that stops before
        is a ``connection`` failure, and an ``{"error": ...}`` line (Ollama's
        mid-stream error) a server error with its message."""
        async with self.http.stream("POST", CHAT_PATH, json=self._payload(body, ctx, stream=True)) as response:
            await self.refuse_failed_stream(response)
            if is_json(response.headers):  # a whole answer to a stream request
                data = self.answer_json(UpstreamResponse(response.status, response.headers, await response.aread()))
                yield completion_to_chunks(self._completion(data, body["model"]))
                return
            converter = OllamaStreamToOpenAI(model=body["model"], created=int(time.time()))
            async with aclosing(response.aiter_ndjson()) as lines:
                while True:
                    try:
                        line = await anext(lines)
                    except StopAsyncIteration:
                        break
                    except serialization.JSONDecodeError:
                        raise self.malformed("a stream line is not JSON") from None
                    failure = stream_error(line)
                    if failure is not None:
                        raise self.stream_failure(*failure)
                    try:
                        chunks = converter.feed(line)
                    except MalformedAnswer as exc:
                        raise self.malformed(str(exc)) from None
                    if chunks:
                        yield chunks
            if not converter.done:
                raise self.make_error("the stream ended before its last line (done: true)", kind="connection")

    def stream_failure(self, message: str, status: int | None) -> ProviderError:
        """An ``{"error": ...}`` line mid-stream: the status Ollama put beside
        it (a cloud model's failure), else a server error."""
        if status is not None and is_error_status(status):
            return self.make_error(message, kind=kind_for_status(status), status=status)
        return self.make_error(message, kind="server_error", status=502)

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = embed_request(body, self.settings.keep_alive)
        response = await self.http.request("POST", EMBED_PATH, json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        data = self.answer_json(response)
        try:
            return embeddings(data, count_of=len(payload["input"]), model=body["model"],
                              as_base64=body.get("encoding_format") == "base64")
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


@hookimpl
def register_providers(register: Any) -> None:
    register(OllamaProvider)
