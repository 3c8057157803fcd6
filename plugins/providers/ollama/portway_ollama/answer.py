"""Ollama's answers as canonical ones: an ``/api/chat`` response as a
``chat.completion``, its NDJSON stream lines as ``chat.completion.chunk``
dicts, and an ``/api/embed`` response as an embeddings ``list``.

Shapes from Ollama's ``api.ChatResponse`` / ``api.Message`` /
``api.EmbedResponse`` (``api/types.go``, ``docs/api.md``) and ollama-python's
``ChatResponse``: ``message`` (``content``, ``thinking``, ``tool_calls`` with
arguments as objects), ``done``, ``done_reason``, ``prompt_eval_count`` and
``eval_count``.  An answer is untrusted: each field read is type-checked
first, and a wrong one is a :class:`MalformedAnswer`.
"""

from __future__ import annotations

import base64
import secrets
import struct
from typing import Any

from portway import serialization
from portway.formats import MalformedAnswer

#: Ollama's ``done_reason`` as OpenAI's ``finish_reason`` (``load`` and
#: ``unload`` answer a request with no messages: nothing was generated).
FINISH_REASONS = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def _is(value: Any, kind: type | tuple[type, ...], where: str, optional: bool = True) -> Any:
    if value is None and optional:
        return value
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MalformedAnswer(f"{where} is not a {getattr(kind, '__name__', 'value')}")
    return value


def count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedAnswer(f"{where} is not a token count")
    return value


def usage(data: dict[str, Any]) -> dict[str, int]:
    """OpenAI usage from the last answer's ``prompt_eval_count`` and ``eval_count``."""
    prompt = count(data.get("prompt_eval_count"), "prompt_eval_count") or 0
    completion = count(data.get("eval_count"), "eval_count") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def new_call_id() -> str:
    """An id for a tool call Ollama gave none (versions before tool-call ids)."""
    return "call_" + secrets.token_hex(12)


def tool_calls(value: Any, where: str, first_index: int = 0) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments as objects) as OpenAI's (arguments as
    JSON strings), each with an id (Ollama's, or a new one)."""
    out = []
    for k, call in enumerate(_is(value, list, where) or ()):
        _is(call, dict, f"{where}[{k}]", optional=False)
        function = _is(call.get("function"), dict, f"{where}[{k}].function", optional=False)
        name = _is(function.get("name"), str, f"{where}[{k}].function.name", optional=False)
        arguments = _is(function.get("arguments"), dict, f"{where}[{k}].function.arguments") or {}
        call_id = _is(call.get("id"), str, f"{where}[{k}].id") or new_call_id()
        out.append({"index": first_index + k, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": serialization.dumps_str(arguments)}})
    return out


def finish_reason(data: dict[str, Any], called: bool) -> str:
    reason = _is(data.get("done_reason"), str, "done_reason")
    if called:
        return "tool_calls"
    return FINISH_REASONS.get(reason or "stop", "stop")


def message_parts(data: dict[str, Any]) -> tuple[str, str, Any]:
    """(content, thinking, tool_calls) of one answer or stream line."""
    message = _is(data.get("message"), dict, "message") or {}
    content = _is(message.get("content"), str, "message.content") or ""
    thinking = _is(message.get("thinking"), str, "message.thinking") or ""
    return content, thinking, message.get("tool_calls")


def chat_completion(data: Any, *, model: str, created: int) -> dict[str, Any]:
    """A whole ``/api/chat`` answer (``stream: false``) as a ``chat.completion``."""
    _is(data, dict, "the answer", optional=False)
    if data.get("done") is not True:
        raise MalformedAnswer("the answer is not done")
    content, thinking, calls = message_parts(data)
    converted = [{k: v for k, v in call.items() if k != "index"} for call in tool_calls(calls, "message.tool_calls")]
    message: dict[str, Any] = {"role": "assistant", "content": content or (None if converted else "")}
    if thinking:
        message["reasoning_content"] = thinking
    if converted:
        message["tool_calls"] = converted
    return {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": created,
            "model": model, "choices": [{"index": 0, "message": message,
                                         "finish_reason": finish_reason(data, bool(converted)), "logprobs": None}],
            "usage": usage(data)}


class OllamaStreamToOpenAI:
    """Ollama's NDJSON stream lines in, ``chat.completion.chunk`` dicts out.

    Each line carries a piece of ``message.content`` or ``message.thinking``,
    or whole tool calls; the last has ``done: true``, ``done_reason`` and the
    counts.  ``done`` tells whether that line arrived, so a cut stream can be
    told from a finished one.  An ``{"error": ...}`` line is the caller's to
    raise (see :func:`stream_error`)."""

    def __init__(self, *, model: str, created: int) -> None:
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.model = model
        self.created = created
        self.done = False
        self._started = False
        self._calls = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: Any) -> list[dict[str, Any]]:
        _is(data, dict, "a stream line", optional=False)
        if self.done:
            raise MalformedAnswer("a stream line after the line with done: true")
        content, thinking, calls = message_parts(data)
        chunks = []
        delta: dict[str, Any] = {}
        if not self._started:
            delta["role"] = "assistant"
            self._started = True
        if thinking:
            delta["reasoning_content"] = thinking
        if content:
            delta["content"] = content
        converted = tool_calls(calls, "message.tool_calls", self._calls)
        if converted:
            delta["tool_calls"] = converted
            self._calls += len(converted)
        if delta:
            chunks.append(self._chunk(delta))
        if data.get("done") is True:
            self.done = True
            chunks.append(self._chunk({}, finish_reason(data, self._calls > 0)))
            chunks.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [], "usage": usage(data)})
        return chunks


def stream_error(data: Any) -> tuple[str, int | None] | None:
    """(message, status) of an ``{"error": "...", "status": N}`` stream line
    (the status only where Ollama relays a cloud model's failure), or None."""
    if isinstance(data, dict) and "error" in data and "message" not in data and "done" not in data:
        error = data["error"]
        status = data.get("status")
        return (error if isinstance(error, str) and error else serialization.dumps_str(error),
                status if isinstance(status, int) and not isinstance(status, bool) else None)
    return None


# -- embeddings ------------------------------------------------------------------------------


def embeddings(data: Any, *, count_of: int, model: str, as_base64: bool) -> dict[str, Any]:
    """An ``/api/embed`` answer (``embeddings``: one vector per input) as an
    OpenAI embeddings ``list``, base64 little-endian float32 when asked;
    usage from ``prompt_eval_count``."""
    _is(data, dict, "the answer", optional=False)
    vectors = _is(data.get("embeddings"), list, "embeddings", optional=False)
    if len(vectors) != count_of:
        raise MalformedAnswer(f"embeddings has {len(vectors)} vectors for {count_of} inputs")
    items = []
    for index, vector in enumerate(vectors):
        if not isinstance(vector, list) or not vector or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
            raise MalformedAnswer(f"embeddings[{index}] is not a list of numbers")
        items.append({"object": "embedding", "index": index,
                      "embedding": base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else
                      [float(x) for x in vector]})
    used = count(data.get("prompt_eval_count"), "prompt_eval_count") or 0
    return {"object": "list", "data": items, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}}
