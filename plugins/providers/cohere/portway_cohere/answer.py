"""Cohere v2 answers as canonical ones: a ``/v2/chat`` response as a
``chat.completion``, its typed stream events as ``chat.completion.chunk``
dicts, a ``/v2/embed`` response as an embeddings ``list``, and a
``/v2/rerank`` response as the canonical rerank answer.

Shapes from cohere-python's v2 types: ``V2ChatResponse``
(``AssistantMessageResponse``, ``Usage``), ``V2ChatStreamResponse`` (the
``message-start`` ... ``message-end`` union), ``EmbedByTypeResponse``,
``V2RerankResponse``.  An
answer is untrusted: each field read is type-checked first, and a wrong one
is a :class:`MalformedAnswer`.
"""

from __future__ import annotations

import array
import base64
import sys
from typing import Any

from portway.errors import ProviderError
from portway.formats import MalformedAnswer
from portway.formats.rerank import check_rerank

#: Cohere's ``finish_reason`` for an answer that ended normally.
FINISH_REASONS = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
#: Cohere's ``finish_reason`` for an answer that failed: the error kind.
FAILED = {"ERROR": "server_error", "TIMEOUT": "timeout"}


def _is(value: Any, kind: type | tuple[type, ...], where: str, optional: bool = True) -> Any:
    if value is None and optional:
        return value
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MalformedAnswer(f"{where} is not a {getattr(kind, '__name__', 'value')}")
    return value


def count(value: Any, where: str) -> int | None:
    """A token count: Cohere's types say float; a whole number is expected."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise MalformedAnswer(f"{where} is not a token count")
    return int(value)


def finish_reason(value: Any, error: Any = None) -> str:
    """Cohere's finish reason as OpenAI's.  ``ERROR`` and ``TIMEOUT`` are
    failures, raised with the message Cohere gave (``delta.error`` in a
    stream); an unknown reason is ``stop``."""
    _is(value, str, "finish_reason", optional=False)
    if value in FAILED:
        detail = f": {error}" if isinstance(error, str) and error else ""
        raise ProviderError(f"the model stopped with finish_reason {value}{detail}", kind=FAILED[value],
                            status=502 if value == "ERROR" else 504)
    return FINISH_REASONS.get(value, "stop")


def usage(data: Any) -> dict[str, Any] | None:
    """OpenAI usage from Cohere's: the tokens the model processed
    (``usage.tokens``), else the billed ones (``usage.billed_units``), and
    ``cached_tokens`` as ``prompt_tokens_details.cached_tokens``."""
    if data is None:
        return None
    _is(data, dict, "usage")
    tokens = _is(data.get("tokens"), dict, "usage.tokens") or {}
    billed = _is(data.get("billed_units"), dict, "usage.billed_units") or {}
    prompt = count(tokens.get("input_tokens"), "usage.tokens.input_tokens")
    completion = count(tokens.get("output_tokens"), "usage.tokens.output_tokens")
    if prompt is None:
        prompt = count(billed.get("input_tokens"), "usage.billed_units.input_tokens")
    if completion is None:
        completion = count(billed.get("output_tokens"), "usage.billed_units.output_tokens")
    out: dict[str, Any] = {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0,
                           "total_tokens": (prompt or 0) + (completion or 0)}
    cached = count(data.get("cached_tokens"), "usage.cached_tokens")
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def tool_call(call: Any, where: str, no_arguments: str = "{}") -> dict[str, Any]:
    """A ``ToolCallV2`` as OpenAI's tool call; ``no_arguments`` stands for
    absent or empty arguments."""
    _is(call, dict, where, optional=False)
    function = _is(call.get("function"), dict, f"{where}.function") or {}
    return {"id": _is(call.get("id"), str, f"{where}.id", optional=False), "type": "function",
            "function": {"name": _is(function.get("name"), str, f"{where}.function.name", optional=False),
                         "arguments": _is(function.get("arguments"), str, f"{where}.function.arguments")
                         or no_arguments}}


def chat_completion(data: Any, *, model: str, created: int) -> dict[str, Any]:
    """A ``V2ChatResponse`` as a ``chat.completion``: text items joined into
    ``content``; thinking items, then the ``tool_plan``, as
    ``reasoning_content``; ``citations`` kept on the message as Cohere sent
    them."""
    _is(data, dict, "the answer", optional=False)
    message = _is(data.get("message"), dict, "message", optional=False)
    texts, thoughts = [], []
    for i, item in enumerate(_is(message.get("content"), list, "message.content") or ()):
        _is(item, dict, f"message.content[{i}]", optional=False)
        if item.get("type") == "text":
            texts.append(_is(item.get("text"), str, f"message.content[{i}].text", optional=False))
        elif item.get("type") == "thinking":
            thoughts.append(_is(item.get("thinking"), str, f"message.content[{i}].thinking", optional=False))
    plan = _is(message.get("tool_plan"), str, "message.tool_plan")
    if plan:
        thoughts.append(plan)
    calls = [tool_call(call, f"message.tool_calls[{i}]")
             for i, call in enumerate(_is(message.get("tool_calls"), list, "message.tool_calls") or ())]
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = calls
    if thoughts:
        out["reasoning_content"] = "\n\n".join(thoughts)
    citations = _is(message.get("citations"), list, "message.citations")
    if citations:
        out["citations"] = citations
    return {"id": _is(data.get("id"), str, "id") or "", "object": "chat.completion", "created": created,
            "model": model, "choices": [{"index": 0, "message": out, "finish_reason": finish_reason(data.get(
                "finish_reason")), "logprobs": None}], "usage": usage(data.get("usage"))}


class CohereStreamToOpenAI:
    """Cohere's typed stream events in, ``chat.completion.chunk`` dicts out,
    one event at a time (nothing waits for the whole answer).

    ``done`` tells whether ``message-end`` arrived, so a stream that was cut
    can be told from one that finished.  A failed answer (``message-end``
    with ``finish_reason`` ``ERROR`` / ``TIMEOUT``) raises
    :class:`ProviderError`; an event without its type's shape raises
    :class:`MalformedAnswer`."""

    def __init__(self, *, model: str, created: int) -> None:
        self.id = ""
        self.model = model
        self.created = created
        self.done = False
        self._tools: dict[Any, int] = {}  # Cohere's tool-call index -> OpenAI's tool_calls index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def feed(self, data: Any) -> list[dict[str, Any]]:
        _is(data, dict, "a stream event", optional=False)
        kind = _is(data.get("type"), str, "a stream event's type", optional=False)
        delta = _is(data.get("delta"), dict, f"{kind}.delta") or {}
        message = _is(delta.get("message"), dict, f"{kind}.delta.message") or {}
        if kind == "content-delta":  # the hot path first
            content = _is(message.get("content"), dict, "content-delta.delta.message.content") or {}
            return self._content(content, "content-delta")
        if kind == "message-start":
            self.id = _is(data.get("id"), str, "message-start.id") or ""
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-start":
            content = _is(message.get("content"), dict, "content-start.delta.message.content") or {}
            return self._content(content, "content-start")
        if kind == "tool-plan-delta":
            plan = _is(message.get("tool_plan"), str, "tool-plan-delta.delta.message.tool_plan")
            return [self._chunk({"reasoning_content": plan})] if plan else []
        if kind == "tool-call-start":
            # The arguments follow in tool-call-delta events (the start usually has "").
            call = tool_call(message.get("tool_calls"), "tool-call-start.delta.message.tool_calls", no_arguments="")
            index = self._tools.setdefault(data.get("index"), len(self._tools))
            return [self._chunk({"tool_calls": [{"index": index, **call}]})]
        if kind == "tool-call-delta":
            call = _is(message.get("tool_calls"), dict, "tool-call-delta.delta.message.tool_calls") or {}
            function = _is(call.get("function"), dict, "tool-call-delta.delta.message.tool_calls.function") or {}
            piece = _is(function.get("arguments"), str, "tool-call-delta.delta.message.tool_calls.function.arguments")
            if data.get("index") not in self._tools:
                raise MalformedAnswer("a tool-call-delta event for a tool call that did not start")
            return [self._chunk({"tool_calls": [{"index": self._tools[data.get("index")],
                                                 "function": {"arguments": piece}}]})] if piece else []
        if kind == "message-end":
            self.done = True
            reason = finish_reason(delta.get("finish_reason"), delta.get("error"))
            chunks = [self._chunk({}, reason)]
            used = usage(delta.get("usage"))
            if used is not None:
                chunks.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "choices": [], "usage": used})
            return chunks
        return []  # content-end, tool-call-end, citation-start/-end, debug, and types added later

    def _content(self, content: dict[str, Any], where: str) -> list[dict[str, Any]]:
        text = _is(content.get("text"), str, f"{where}.delta.message.content.text")
        thinking = _is(content.get("thinking"), str, f"{where}.delta.message.content.thinking")
        delta = {}
        if text:
            delta["content"] = text
        if thinking:
            delta["reasoning_content"] = thinking
        return [self._chunk(delta)] if delta else []


# -- embeddings ------------------------------------------------------------------------------


def embeddings(data: Any, *, kind: str, count_of: int, model: str, as_base64: bool) -> dict[str, Any]:
    """An ``EmbedByTypeResponse`` as an OpenAI embeddings ``list``: the
    vectors of embedding type ``kind`` (one per input, ``count_of`` of
    them), base64 little-endian float32 when ``as_base64``; usage from
    ``meta.tokens`` or ``meta.billed_units``."""
    _is(data, dict, "the answer", optional=False)
    by_type = _is(data.get("embeddings"), dict, "embeddings", optional=False)
    vectors = _is(by_type.get(kind), list, f"embeddings.{kind}", optional=False)
    if len(vectors) != count_of:
        raise MalformedAnswer(f"embeddings.{kind} has {len(vectors)} vectors for {count_of} inputs")
    items = []
    for index, vector in enumerate(vectors):
        if not isinstance(vector, list) or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                                   for x in vector):
            raise MalformedAnswer(f"embeddings.{kind}[{index}] is not a list of numbers")
        items.append({"object": "embedding", "index": index,
                      "embedding": base64.b64encode(float32_le(vector)).decode() if as_base64 else vector})
    meta = _is(data.get("meta"), dict, "meta") or {}
    tokens = _is(meta.get("tokens"), dict, "meta.tokens") or {}
    billed = _is(meta.get("billed_units"), dict, "meta.billed_units") or {}
    used = count(tokens.get("input_tokens"), "meta.tokens.input_tokens")
    if used is None:
        used = count(billed.get("input_tokens"), "meta.billed_units.input_tokens") or 0
    return {"object": "list", "data": items, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}}


def float32_le(vector: list[float]) -> bytes:
    """The bytes OpenAI's base64 embeddings encode (and its SDK decodes)."""
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


# -- rerank --------------------------------------------------------------------------------------


def rerank(data: Any, *, count_of: int) -> dict[str, Any]:
    """A ``V2RerankResponse`` (``{id, results: [{index, relevance_score}],
    meta}``) as the canonical rerank answer for ``count_of`` documents, its
    usage the billed ``search_units`` (how Cohere counts rerank)."""
    _is(data, dict, "the answer", optional=False)
    results = _is(data.get("results"), list, "results", optional=False)
    meta = _is(data.get("meta"), dict, "meta") or {}
    billed = _is(meta.get("billed_units"), dict, "meta.billed_units") or {}
    units = count(billed.get("search_units"), "meta.billed_units.search_units")
    answer: dict[str, Any] = {"results": [{"index": item.get("index"), "relevance_score": item.get("relevance_score")}
                                          if isinstance(item, dict) else item for item in results]}
    if isinstance(data.get("id"), str):
        answer["id"] = data["id"]
    if units is not None:
        answer["usage"] = {"search_units": units}
    return check_rerank(answer, count_of)
