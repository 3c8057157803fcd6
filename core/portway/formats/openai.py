"""The OpenAI Chat Completions wire format, which is also Portway's
canonical format.

:class:`OpenAICompatibleProvider` is the base for every upstream that speaks
it (OpenAI itself, and the many "OpenAI-compatible" servers): a subclass
sets a type, a default base URL and an env var, and overrides a hook or two
for quirks.  :class:`StreamAssembler` and :func:`completion_to_chunks`
convert between a stream and a whole response.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from portway.errors import ProviderError, kind_for_type
from portway.providers import Provider
from portway.upstream import UpstreamResponse


class OpenAICompatibleProvider(Provider):
    chat_path: ClassVar[str] = "/chat/completions"
    embeddings_path: ClassVar[str] = "/embeddings"
    #: Request keys this upstream rejects; removed before sending.
    drop_params: ClassVar[frozenset[str]] = frozenset()
    #: Whether Anthropic-only keys (``top_k``, ``thinking``, ``cache_control``)
    #: that a ``/v1/messages`` client sent may go upstream (vLLM accepts ``top_k``).
    accepts_anthropic_extras: ClassVar[bool] = False

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """Last chance to adapt the canonical body to this upstream."""
        if self.drop_params:
            return {k: v for k, v in body.items() if k not in self.drop_params}
        return body

    def _wire_body(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if not self.accepts_anthropic_extras and getattr(ctx, "client_format", None) == "anthropic":
            body = strip_anthropic_extras(body)
        return self.prepare(body)

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        response = await self.http.request("POST", self.chat_path, json=self._wire_body(body, ctx))
        if response.status >= 400:
            raise self.error_from_response(response)
        return response.json()

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        async with self.http.stream("POST", self.chat_path, json=self._wire_body(body, ctx)) as response:
            if response.status >= 400:
                raise self.error_from_response(UpstreamResponse(response.status, response.headers, await response.aread()))
            async for events in response.aiter_event_batches():
                batch = []
                for event in events:
                    if event.raw.startswith(b"[DONE]"):
                        if batch:
                            yield batch
                        return
                    if not event.raw:
                        continue
                    chunk = event.json()
                    if "error" in chunk and "choices" not in chunk:
                        if batch:
                            yield batch
                        raise self.stream_error(chunk["error"])
                    batch.append(chunk)
                if batch:
                    yield batch


    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        response = await self.http.request("POST", self.embeddings_path, json=body)
        if response.status >= 400:
            raise self.error_from_response(response)
        return response.json()

    def stream_error(self, error: Any) -> ProviderError:
        if not isinstance(error, dict):
            return self.make_error(str(error), kind="server_error")
        code = error.get("code") if isinstance(error.get("code"), str) else None
        kind = kind_for_type(code or error.get("type"))
        return self.make_error(str(error.get("message", "stream error")), kind=kind, code=code)


def strip_anthropic_extras(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` without the Anthropic-only keys that
    ``/v1/messages`` keeps in the canonical form (see
    :data:`portway.formats.anthropic.ANTHROPIC_PASSTHROUGH`): OpenAI rejects
    unknown parameters."""
    from portway.formats.anthropic import ANTHROPIC_PASSTHROUGH

    out = {k: v for k, v in body.items() if k not in ANTHROPIC_PASSTHROUGH}
    messages = []
    for message in body.get("messages") or ():
        message = {k: v for k, v in message.items() if k != "thinking_blocks"}
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [{k: v for k, v in part.items() if k != "cache_control"} for part in content]
        messages.append(message)
    out["messages"] = messages
    if body.get("tools"):
        out["tools"] = [{k: v for k, v in tool.items() if k != "cache_control"} for tool in body["tools"]]
    return out


def completion_to_chunks(response: dict[str, Any], include_usage: bool = True) -> list[dict[str, Any]]:
    """Replay a whole ``chat.completion`` as stream chunks (e.g. a cache hit
    answering a streamed request)."""
    base = {
        "id": response.get("id", "chatcmpl-portway"),
        "object": "chat.completion.chunk",
        "created": response.get("created", int(time.time())),
        "model": response.get("model", ""),
    }
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices", []):
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}]})
    if include_usage and response.get("usage"):
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


class StreamAssembler:
    """Folds ``chat.completion.chunk`` dicts into one ``chat.completion``."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.usage: dict[str, Any] | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        self.created = self.created or chunk.get("created")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            state = self._choices.setdefault(
                choice.get("index", 0), {"content": [], "tool_calls": {}, "finish_reason": None, "extra": {}}
            )
            delta = choice.get("delta") or {}
            if delta.get("content"):
                state["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = state["tool_calls"].setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] += function["name"]
                if function.get("arguments"):
                    slot["function"]["arguments"] += function["arguments"]
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["tool_calls"]:
                message["tool_calls"] = [state["tool_calls"][i] for i in sorted(state["tool_calls"])]
            choices.append({"index": index, "message": message, "finish_reason": state["finish_reason"]})
        return {
            "id": self.id or "chatcmpl-portway",
            "object": "chat.completion",
            "created": self.created or int(time.time()),
            "model": self.model or "",
            "choices": choices,
            "usage": self.usage,
        }
