"""A Gemini ``GenerateContentResponse`` (whole, or streamed chunk by chunk)
as the canonical ``chat.completion`` / ``chat.completion.chunk``, and an
embeddings answer as an OpenAI embeddings list.

Every field read is checked first (an upstream's answer is untrusted):
a wrong type is :class:`~portway.formats.MalformedAnswer`.  Shapes follow
python-genai's ``types.GenerateContentResponse`` / ``Candidate`` / ``Part``.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

from portway import serialization
from portway.errors import ProviderError, kind_for_status
from portway.formats import MalformedAnswer

#: Gemini's finishReason (python-genai ``types.FinishReason``) as OpenAI's;
#: a value not listed (and a future one) is ``stop``.
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def finish_reason(reason: str, called: bool) -> str:
    """Gemini says STOP after a function call too: a turn that called a
    function finished for ``tool_calls``."""
    mapped = FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if called and mapped == "stop" else mapped


def call_id() -> str:
    """An id for a function call Gemini gave none (a result is matched to its
    call by name, so the id only has to stay the same across the conversation,
    which it does: the client sends it back with the call)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """``usageMetadata`` as OpenAI usage.  Thought tokens are not part of
    ``candidatesTokenCount`` and are billed as output, so they count in
    ``completion_tokens`` (and as ``reasoning_tokens``); cached tokens are
    part of ``promptTokenCount`` already, as OpenAI's ``cached_tokens``."""
    prompt = (usage.get("promptTokenCount") or 0) + (usage.get("toolUsePromptTokenCount") or 0)
    thoughts = usage.get("thoughtsTokenCount") or 0
    completion = (usage.get("candidatesTokenCount") or 0) + thoughts
    result: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion,
                              "prompt_tokens_details": {"cached_tokens": usage.get("cachedContentTokenCount") or 0}}
    if thoughts:
        result["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return result


# -- shape checks ---------------------------------------------------------------------------

_USAGE_KEYS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "cachedContentTokenCount",
               "toolUsePromptTokenCount", "totalTokenCount")


def _check_part(part: Any, where: str) -> None:
    if type(part) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    for key in ("text", "thoughtSignature"):
        if not isinstance(part.get(key), (str, type(None))):
            raise MalformedAnswer(f"{where}.{key} is not a string")
    call = part.get("functionCall")
    if call is not None:
        if type(call) is not dict or type(call.get("name")) is not str:
            raise MalformedAnswer(f"{where}.functionCall has no name")
        if not isinstance(call.get("args", {}), (dict, type(None))):
            raise MalformedAnswer(f"{where}.functionCall.args is not an object")
        if not isinstance(call.get("id"), (str, type(None))):
            raise MalformedAnswer(f"{where}.functionCall.id is not a string")


def check_response(data: Any) -> dict[str, Any]:
    """``data`` if it has the shape of a ``GenerateContentResponse`` (every
    field the converters read); else :class:`MalformedAnswer`."""
    if type(data) is not dict:
        raise MalformedAnswer("the answer is not a JSON object")
    candidates = data.get("candidates")
    if candidates is not None and type(candidates) is not list:
        raise MalformedAnswer("candidates is not a list")
    for i, candidate in enumerate(candidates or ()):
        where = f"candidates[{i}]"
        if type(candidate) is not dict:
            raise MalformedAnswer(f"{where} is not an object")
        if not isinstance(candidate.get("finishReason"), (str, type(None))):
            raise MalformedAnswer(f"{where}.finishReason is not a string")
        if type(candidate.get("index", 0)) is not int:
            raise MalformedAnswer(f"{where}.index is not an integer")
        content = candidate.get("content")
        if content is not None:
            if type(content) is not dict or not isinstance(content.get("parts", []), (list, type(None))):
                raise MalformedAnswer(f"{where}.content has no list of parts")
            for j, part in enumerate(content.get("parts") or ()):
                _check_part(part, f"{where}.content.parts[{j}]")
    usage = data.get("usageMetadata")
    if usage is not None:
        if type(usage) is not dict:
            raise MalformedAnswer("usageMetadata is not an object")
        for key in _USAGE_KEYS:
            if not isinstance(usage.get(key), (int, type(None))) or type(usage.get(key)) is bool:
                raise MalformedAnswer(f"usageMetadata.{key} is not an integer")
    feedback = data.get("promptFeedback")
    if feedback is not None and (type(feedback) is not dict
                                 or not isinstance(feedback.get("blockReason"), (str, type(None)))):
        raise MalformedAnswer("promptFeedback.blockReason is not a string")
    for key in ("responseId", "modelVersion"):
        if not isinstance(data.get(key), (str, type(None))):
            raise MalformedAnswer(f"{key} is not a string")
    return data


def prompt_blocked(data: dict[str, Any]) -> ProviderError | None:
    """Gemini refused the prompt itself (``promptFeedback.blockReason``, no
    candidates): a ``content_filter`` error, as Azure reports a filtered prompt."""
    if data.get("candidates"):
        return None
    reason = (data.get("promptFeedback") or {}).get("blockReason")
    if not reason:
        return None
    message = (data.get("promptFeedback") or {}).get("blockReasonMessage")
    text = f"Gemini blocked the prompt ({reason})" + (f": {message}" if isinstance(message, str) else "")
    return ProviderError(text, kind="content_filter", code="content_filter")


# -- parts ------------------------------------------------------------------------------------


class _Parts:
    """What one candidate's parts say, in OpenAI's terms."""

    __slots__ = ("text", "reasoning", "calls", "signatures")

    def __init__(self, parts: list[dict[str, Any]] | None) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.signatures: list[dict[str, Any]] = []
        for part in parts or ():
            text = part.get("text")
            if part.get("thought"):
                if text:
                    self.reasoning.append(text)
            elif text:
                self.text.append(text)
            call = part.get("functionCall")
            if call is not None:
                self.calls.append({"id": call.get("id") or call_id(), "type": "function", "function": {
                    "name": call["name"], "arguments": serialization.dumps_str(call.get("args") or {})}})
            if part.get("thoughtSignature"):
                # Carried as Anthropic carries its signed thinking: the client sends the
                # assistant message back with it, and the request puts it back on its part.
                self.signatures.append({"type": "thinking", "thinking": "", "signature": part["thoughtSignature"]})
        # Executable code, code results and generated media have no Chat Completions shape: dropped.


def to_completion(data: Any, model: str) -> dict[str, Any]:
    """A whole ``GenerateContentResponse`` as a ``chat.completion``.  A
    blocked prompt raises its ``content_filter`` :class:`ProviderError`."""
    check_response(data)
    blocked = prompt_blocked(data)
    if blocked is not None:
        raise blocked
    candidates = data.get("candidates")
    if not candidates:
        raise MalformedAnswer("the answer has no candidates")
    choices = []
    for position, candidate in enumerate(candidates):
        parts = _Parts((candidate.get("content") or {}).get("parts"))
        message: dict[str, Any] = {"role": "assistant", "content": "".join(parts.text) if parts.text else None}
        if parts.calls:
            message["tool_calls"] = parts.calls
        if parts.reasoning:
            message["reasoning_content"] = "".join(parts.reasoning)
        if parts.signatures:
            message["thinking_blocks"] = parts.signatures
        choices.append({"index": candidate.get("index", position), "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason") or "STOP", bool(parts.calls))})
    completion = {"id": data.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                  "created": int(time.time()), "model": data.get("modelVersion") or model, "choices": choices}
    if data.get("usageMetadata"):
        completion["usage"] = openai_usage(data["usageMetadata"])
    return completion


class GeminiStreamToOpenAI:
    """Streamed ``GenerateContentResponse`` chunks in, ``chat.completion.chunk``
    dicts out, one per delta as it arrives (a function call arrives whole, so
    its arguments are one delta).

    Gemini's stream has no end marker: it ends when every candidate has its
    ``finishReason`` (:attr:`done`).  ``usageMetadata`` is a running total
    on each chunk; :meth:`usage_chunk` gives the last one, for the end."""

    def __init__(self, model: str, candidates: int = 1) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.expected = max(candidates, 1)
        self.finished: set[int] = set()
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index -> function calls so far
        self._usage: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return len(self.finished) >= self.expected

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: Any) -> list[dict[str, Any]]:
        """Raises :class:`MalformedAnswer` for a chunk without the shape, and
        :class:`ProviderError` for an error event or a blocked prompt."""
        if type(data) is dict and "error" in data and "candidates" not in data:
            raise stream_error(data["error"])
        check_response(data)
        if not self.id:
            self.id = data.get("responseId") or f"chatcmpl-{uuid.uuid4().hex}"
            self.model = data.get("modelVersion") or self.model
        if data.get("usageMetadata"):
            self._usage = data["usageMetadata"]
        blocked = prompt_blocked(data)
        if blocked is not None:
            raise blocked
        out: list[dict[str, Any]] = []
        for position, candidate in enumerate(data.get("candidates") or ()):
            index = candidate.get("index", position)
            if index not in self._started:
                self._started.add(index)
                out.append(self._chunk(index, {"role": "assistant", "content": ""}))
            parts = _Parts((candidate.get("content") or {}).get("parts"))
            if parts.reasoning:
                out.append(self._chunk(index, {"reasoning_content": "".join(parts.reasoning)}))
            if parts.signatures:  # before what they sign: a thinking block leads its turn
                out.append(self._chunk(index, {"thinking_blocks": parts.signatures}))
            if parts.text:
                out.append(self._chunk(index, {"content": "".join(parts.text)}))
            if parts.calls:
                first = self._calls.get(index, 0)
                self._calls[index] = first + len(parts.calls)
                out.append(self._chunk(index, {"tool_calls": [{"index": first + k, **call}
                                                              for k, call in enumerate(parts.calls)]}))
            if candidate.get("finishReason") and index not in self.finished:
                self.finished.add(index)
                out.append(self._chunk(index, {}, finish_reason(candidate["finishReason"], index in self._calls)))
        return out

    def usage_chunk(self) -> dict[str, Any] | None:
        if self._usage is None:
            return None
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": openai_usage(self._usage)}


def stream_error(error: Any) -> ProviderError:
    """An ``{"error": {...}}`` event inside a 200 stream, classified by its
    HTTP code."""
    if type(error) is not dict:
        return ProviderError(str(error), kind="server_error", status=502)
    code = error.get("code")
    status = error.get("status") if isinstance(error.get("status"), str) else None
    kind = kind_for_status(code) if type(code) is int else "server_error"
    return ProviderError(str(error.get("message") or "the upstream stream failed"), kind=kind, code=status)


# -- embeddings ---------------------------------------------------------------------------------


def _vector(embedding: Any, where: str) -> list[float]:
    values = embedding.get("values") if type(embedding) is dict else None
    if type(values) is not list or not all(isinstance(v, (int, float)) and type(v) is not bool for v in values):
        raise MalformedAnswer(f"{where}.values is not a list of numbers")
    return values


def to_embeddings(data: Any, model: str, count: int, encoding: str | None) -> dict[str, Any]:
    """An ``embedContent`` (``{"embedding"}``) or ``batchEmbedContents``
    (``{"embeddings": [...]}``) answer as an OpenAI embeddings list.  Gemini
    reports no token usage: the counts are 0.  ``encoding="base64"`` packs
    each vector as little-endian float32, as OpenAI does."""
    if type(data) is not dict:
        raise MalformedAnswer("the answer is not a JSON object")
    if "embeddings" in data:
        items = data["embeddings"]
        if type(items) is not list:
            raise MalformedAnswer("embeddings is not a list")
        vectors = [_vector(item, f"embeddings[{i}]") for i, item in enumerate(items)]
    else:
        vectors = [_vector(data.get("embedding"), "embedding")]
    if len(vectors) != count:
        raise MalformedAnswer(f"{len(vectors)} embeddings answer {count} inputs")
    out = []
    for i, vector in enumerate(vectors):
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        out.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": out, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
