"""Test kit for the cache and its backends: an OpenAI-compatible fake
upstream (a real HTTP server) that answers each prompt with its own text,
counts the chat calls it gets, streams when asked, calls a tool when given
tools, and makes bag-of-words embeddings (similar wording, similar vectors),
plus the gateway config that puts a cache in front of it."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from portway.testing import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

KEY = "sk-cache-test-0123456789"
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
#: Width of the fake's embeddings.
DIMENSIONS = 256


def prompt_of(body: dict[str, Any]) -> str:
    content = body["messages"][-1].get("content")
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content)
    return str(content)


def bag_of_words(text: str) -> list[float]:
    """Each word (lower case, punctuation dropped) adds one to a hashed
    dimension: prompts that share most words point the same way."""
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        vector[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class CacheUpstream:
    """The fake: ``answer(prompt)`` is what it says; ``fail`` makes the next
    chat calls answer ``fail`` (a status) instead."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.fail: int | None = None
        #: The finish reason of the answers (None: ``stop``, or ``tool_calls`` with tools).
        self.finish_reason: str | None = None
        upstream.add(CHAT, self._chat)
        upstream.add(EMBED, self._embed)

    @staticmethod
    def answer(prompt: str) -> str:
        return f"Answer to: {prompt}"

    def chat_calls(self) -> int:
        return sum(1 for r in self.upstream.requests if r.path == CHAT)

    def embedding_calls(self) -> int:
        return sum(1 for r in self.upstream.requests if r.path == EMBED)

    def _chat(self, request: RecordedRequest) -> Reply:
        if self.fail is not None:
            return json_reply({"error": {"message": "upstream broke", "type": "server_error", "code": None}},
                              self.fail)
        body = request.json()
        base = {"id": f"chatcmpl-{len(self.upstream.requests)}", "created": 1700000000, "model": body["model"]}
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if body.get("tools"):
            call = {"id": "call_1", "type": "function",
                    "function": {"name": body["tools"][0]["function"]["name"], "arguments": '{"city": "Paris"}'}}
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": self.answer(prompt_of(body))}
            finish = "stop"
        finish = self.finish_reason or finish
        if not body.get("stream"):
            return json_reply({**base, "object": "chat.completion", "usage": usage,
                               "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[Any] = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                    "finish_reason": None}]}]
        if message.get("tool_calls"):
            events.append({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, **message["tool_calls"][0]}]}, "finish_reason": None}]})
        else:
            for word in re.findall(r"\S+\s*", message["content"]):
                events.append({**chunk, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        events.append({**chunk, "choices": [], "usage": usage})
        return sse_reply(events, done=True)

    def _embed(self, request: RecordedRequest) -> Reply:
        body = request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return json_reply({"object": "list", "model": body["model"],
                           "data": [{"object": "embedding", "index": i, "embedding": bag_of_words(text)}
                                    for i, text in enumerate(inputs)],
                           "usage": {"prompt_tokens": 3, "total_tokens": 3}})


def gateway_config(upstream: FakeUpstream, cache: dict[str, Any] | None, *, master_key: str | None = None,
                   models: dict[str, Any] | None = None) -> dict[str, Any]:
    """A gateway with provider ``up`` (the fake), alias ``fast`` (``up/m``),
    alias ``embed`` (``up/e``) and the given ``cache:`` section (None: none)."""
    config: dict[str, Any] = {
        "providers": {"up": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
        "models": {"fast": {"target": {"provider": "up", "model": "m"}},
                   "embed": {"target": {"provider": "up", "model": "e"}}, **(models or {})},
    }
    if cache is not None:
        config["cache"] = cache
    if master_key is not None:
        config["auth"] = {"master_key": master_key}
    return config
