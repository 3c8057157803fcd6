"""A fake Cohere v2 API, driven by a script, for the ``cohere`` provider's
tests (and anyone testing against Cohere's wire format).

Install it on a :class:`~portway.testing.FakeUpstream` and point the
provider's ``base_url`` at ``upstream.url``::

    api = CohereAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key="co-test")
    with FakeUpstream() as upstream:
        api.install(upstream)

Built from cohere-python's v2 client (``v2/raw_client.py``: the request
fields of ``chat``, ``chat_stream`` and ``embed``, the statuses it maps) and
types (``V2ChatResponse``, ``V2ChatStreamResponse``, ``ChatMessageV2``,
``EmbedByTypeResponse``, ``Usage``), and Cohere's v2 API reference for the
limits (``p`` in [0.01, 0.99], ``k`` in [0, 500], at most 5 stop sequences,
``response_format`` not with ``tools``):

- ``POST /v2/chat`` answers the next turn as a ``V2ChatResponse`` or, with
  ``"stream": true``, as the typed SSE events (``event: <type>`` and
  ``data: {"type": <type>, ...}``): ``message-start``; for text,
  ``content-start``, two ``content-delta``, ``content-end``; for tool calls,
  the text before them as ``tool-plan-delta`` events (Cohere writes a plan
  where OpenAI writes content), then per call ``tool-call-start`` (empty
  arguments), two ``tool-call-delta``, ``tool-call-end``; ``message-end``
  with ``finish_reason`` (``COMPLETE``, ``TOOL_CALL``, ``MAX_TOKENS``) and
  ``usage`` (``billed_units`` and ``tokens``).  Tool-call ids are Cohere's
  style (``get_weather_<n>``).
- ``POST /v2/embed`` answers one vector per text for each asked
  ``embedding_types`` entry (float or integer types), with ``meta``.
- ``POST /v2/rerank`` (``V2Client.rerank``: ``model``, ``query``,
  ``documents`` as strings, ``top_n``, ``max_tokens_per_doc``, ``priority``)
  answers a ``V2RerankResponse``: ``results`` of ``{index,
  relevance_score}`` sorted by score and cut to ``top_n``, ``meta`` with
  one billed search unit per 100 documents.  Scores are
  :func:`portway.testing.script.relevance`; each accepted request is kept
  in ``rerank_calls``.
- It refuses, as ``{"id", "message"}`` bodies: a missing or wrong bearer key
  (401); a body without ``model`` or ``messages``; a top-level field the v2
  API does not have (stricter than documented, so an OpenAI key that leaks
  through is caught); ``p``, ``k`` or ``stop_sequences`` out of range; a
  ``tool_choice`` without ``tools`` or other than ``REQUIRED`` / ``NONE``;
  ``response_format`` with ``tools``; a role or content part the v2 types do
  not have; a tool message answering no earlier tool call; an embed request
  without ``input_type`` or ``texts``; a rerank request without ``model``,
  ``query`` or ``documents``, with a document that is not a string (v2 takes
  strings only), more than 10,000 documents, a field v2 does not have
  (``return_documents``, ``rank_fields`` and ``max_chunks_per_doc`` were
  v1's), or ``top_n`` / ``max_tokens_per_doc`` below 1; and a call after the
  script is used up.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from portway import serialization
from portway.testing.openai_chat import vector_of
from portway.testing.script import Call, RerankCall, Script, Step, ToolCall, ToolResult, Turn, halves, relevance
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

#: The request fields of cohere-python's ``V2Client.chat`` / ``chat_stream``.
CHAT_FIELDS = frozenset({
    "model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format", "safety_mode",
    "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty", "presence_penalty", "k", "p",
    "logprobs", "tool_choice", "thinking", "priority", "stream",
})
#: The request fields of ``V2Client.embed``.
EMBED_FIELDS = frozenset({"model", "input_type", "texts", "images", "inputs", "max_tokens", "output_dimension",
                          "embedding_types", "truncate", "priority"})
#: The request fields of ``V2Client.rerank``.
RERANK_FIELDS = frozenset({"model", "query", "documents", "top_n", "max_tokens_per_doc", "priority"})
#: The most documents one rerank request may hold.
MAX_RERANK_DOCUMENTS = 10_000
#: Tokens of the prompt template Cohere adds (``usage.tokens`` counts them, ``billed_units`` does not).
TEMPLATE_TOKENS = 66


class CohereAPI:
    """The fake; see the module docstring.  ``api_key``: the only key it
    accepts (any non-empty bearer key when None)."""

    def __init__(self, script: Sequence[Step] = (), *, api_key: str | None = None) -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.calls: list[Call] = []
        #: The rerank requests accepted, with the scores given.
        self.rerank_calls: list[RerankCall] = []
        #: (request, status, message) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, str]] = []
        self.disconnected = threading.Event()
        #: Seconds between streamed events.
        self.stream_delay = 0.0
        self._ids = itertools.count(1)

    def install(self, upstream: FakeUpstream) -> CohereAPI:
        upstream.add("/v2/chat", self)
        upstream.add("/v2/embed", self)
        upstream.add("/v2/rerank", self)
        self.disconnected = upstream.disconnected
        return self

    def _id(self) -> str:
        return f"c0e1a5e2-0000-4000-8000-{next(self._ids):012d}"

    # -- answering ----------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self._refuse(request, 401, "no api key supplied")
        if self.api_key is not None and key.strip() != self.api_key:
            return self._refuse(request, 401, "invalid api token")
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, "invalid request: the body is not a JSON object")
        if request.path == "/v2/embed":
            problem = check_embed(body)
            return self._refuse(request, 400, problem) if problem else self._embed(body)
        if request.path == "/v2/rerank":
            problem = check_rerank(body)
            return self._refuse(request, 400, problem) if problem else self._rerank(request, body)
        problem = check_chat(body)
        if problem is not None:
            return self._refuse(request, 400, problem)
        seen = Call(request, body, tool_results(body["messages"]))
        step = self.script.next_turn(seen)
        if step is None:
            return self._refuse(request, 400, f"fake Cohere API: the script has no turn left for call "
                                f"{len(self.calls) + 1}")
        if isinstance(step, Reply):  # a scripted failure (see error())
            return step
        seen.answer = step
        self.calls.append(seen)
        response = self._response(step)
        if body.get("stream"):
            return sse_reply(stream_events(response), delay=self.stream_delay)
        return json_reply(response)

    def _refuse(self, request: RecordedRequest, status: int, message: str) -> Reply:
        self.refusals.append((request, status, message))
        return json_reply({"id": self._id(), "message": message}, status)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """An error answer in Cohere's shape (a script step may return it)."""
        return json_reply({"id": self._id(), "message": message}, status,
                          {"retry-after": retry_after} if retry_after is not None else None)

    def _response(self, turn: Turn) -> dict[str, Any]:
        texts = [part for part in turn.parts if isinstance(part, str)]
        calls = [part for part in turn.parts if isinstance(part, ToolCall)]
        message: dict[str, Any] = {"role": "assistant"}
        if calls:
            message["tool_plan"] = "".join(texts) or "I will call the tools."
            message["tool_calls"] = [{"id": call.id or f"{call.name}_{next(self._ids)}", "type": "function",
                                      "function": {"name": call.name,
                                                   "arguments": serialization.dumps_str(call.arguments)}}
                                     for call in calls]
        else:
            message["content"] = [{"type": "text", "text": "".join(texts)}]
        finish = "TOOL_CALL" if calls else "MAX_TOKENS" if getattr(turn, "truncated", False) else "COMPLETE"
        return {"id": self._id(), "finish_reason": finish, "message": message, "usage": {
            # What the model processed (the adapter reports it); billed units leave out Cohere's template.
            "billed_units": {"input_tokens": max(turn.input_tokens - TEMPLATE_TOKENS, 1),
                             "output_tokens": turn.output_tokens},
            "tokens": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens}}}

    def _embed(self, body: dict[str, Any]) -> Reply:
        texts = body["texts"]
        floats = [vector_of(str(text)) for text in texts]
        by_type: dict[str, Any] = {}
        for kind in body.get("embedding_types") or ["float"]:
            by_type[kind] = floats if kind == "float" else [[round(v * 100) for v in vector] for vector in floats]
        return json_reply({"id": self._id(), "embeddings": by_type, "texts": texts, "response_type":
                           "embeddings_by_type", "meta": {"api_version": {"version": "2"},
                                                          "billed_units": {"input_tokens": 2 * len(texts)}}})

    def _rerank(self, request: RecordedRequest, body: dict[str, Any]) -> Reply:
        documents = body["documents"]
        scores = [relevance(body["query"], document) for document in documents]
        self.rerank_calls.append(RerankCall(body["model"], body["query"], documents, body.get("top_n"), scores,
                                            request))
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[:body.get("top_n") or len(documents)]
        return json_reply({"id": self._id(), "results": [{"index": i, "relevance_score": scores[i]} for i in order],
                           "meta": {"api_version": {"version": "2"},
                                    "billed_units": {"search_units": -(-len(documents) // 100)}}})

    # -- the neutral view, for the conformance kit --------------------------------------

    def seen(self, call: Call) -> Any:
        """``call`` as :class:`portway.testing.conformance.Seen`."""
        from portway.testing.conformance import Seen

        return Seen(**seen_fields(call))


def check_chat(body: dict[str, Any]) -> str | None:
    """The v2 API's refusal of a chat ``body``, or None."""
    for required in ("model", "messages"):
        if required not in body:
            return f"invalid request: {required} must be specified"
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        return f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"
    if body.get("p") is not None and not 0.01 <= body["p"] <= 0.99:
        return "invalid request: p must be between 0.01 and 0.99"
    if body.get("k") is not None and not 0 <= body["k"] <= 500:
        return "invalid request: k must be between 0 and 500"
    if len(body.get("stop_sequences") or ()) > 5:
        return "invalid request: stop_sequences can have at most 5 items"
    if "tool_choice" in body and (not body.get("tools") or body["tool_choice"] not in ("REQUIRED", "NONE")):
        return "invalid request: tool_choice must be REQUIRED or NONE, and requires tools"
    if body.get("response_format") and body.get("tools"):
        return "invalid request: response_format is not supported with tools"
    calls: set[str] = set()
    for i, message in enumerate(body["messages"] if isinstance(body["messages"], list) else [None]):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system", "tool"):
            return f"invalid request: messages[{i}]: role must be one of user, assistant, system, tool"
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            allowed = ("text", "image_url") if message["role"] == "user" else ("text", "thinking", "document")
            if not isinstance(part, dict) or part.get("type") not in allowed:
                return f"invalid request: messages[{i}]: invalid content type"
        for tool_call in message.get("tool_calls") or ():
            if not isinstance((tool_call.get("function") or {}).get("arguments"), str):
                return f"invalid request: messages[{i}]: tool call arguments must be a string"
            calls.add(tool_call.get("id"))
        if message["role"] == "tool" and message.get("tool_call_id") not in calls:
            return f"invalid request: messages[{i}]: tool_call_id {message.get('tool_call_id')!r} matches no tool call"
    return None


def check_embed(body: dict[str, Any]) -> str | None:
    for required in ("model", "input_type"):
        if required not in body:
            return f"invalid request: {required} must be specified"
    unknown = sorted(set(body) - EMBED_FIELDS)
    if unknown:
        return f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"
    if not isinstance(body.get("texts"), list) or not body["texts"]:
        return "invalid request: one of texts, images or inputs must be specified"
    return None


def check_rerank(body: dict[str, Any]) -> str | None:
    for required in ("model", "query", "documents"):
        if required not in body:
            return f"invalid request: {required} must be specified"
    unknown = sorted(set(body) - RERANK_FIELDS)
    if unknown:
        return f"invalid request: unknown field: parameter {unknown[0]} is not a valid field"
    documents = body["documents"]
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return "invalid request: documents must be a non-empty list of strings"
    if len(documents) > MAX_RERANK_DOCUMENTS:
        return f"invalid request: too many documents, max is {MAX_RERANK_DOCUMENTS}"
    for key in ("top_n", "max_tokens_per_doc"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return f"invalid request: {key} must be at least 1"
    return None


def stream_events(response: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``response`` as the v2 API streams it (see the module docstring)."""

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, **fields}

    message = response["message"]
    yield event("message-start", id=response["id"], delta={"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}})
    for piece in halves(message.get("tool_plan", "")) if message.get("tool_plan") else ():
        yield event("tool-plan-delta", delta={"message": {"tool_plan": piece}})
    for index, call in enumerate(message.get("tool_calls") or ()):
        yield event("tool-call-start", index=index, delta={"message": {"tool_calls": {
            "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}}})
        for piece in halves(call["function"]["arguments"]):
            yield event("tool-call-delta", index=index, delta={"message": {"tool_calls": {
                "function": {"arguments": piece}}}})
        yield event("tool-call-end", index=index)
    for index, item in enumerate(message.get("content") or ()):
        yield event("content-start", index=index, delta={"message": {"content": {"type": "text", "text": ""}}})
        for piece in halves(item["text"]):
            yield event("content-delta", index=index, delta={"message": {"content": {"text": piece}}})
        yield event("content-end", index=index)
    yield event("message-end", delta={"finish_reason": response["finish_reason"], "usage": response["usage"]})


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or () if isinstance(part, dict)
                   and part.get("type") == "text")


def tool_results(messages: Any) -> list[ToolResult]:
    return [ToolResult(str(m.get("tool_call_id")), text_of(m.get("content")))
            for m in messages if isinstance(m, dict) and m.get("role") == "tool"] if isinstance(messages, list) else []


def seen_fields(call: Call) -> dict[str, Any]:
    """What a ``/v2/chat`` request asked for, in the conformance kit's neutral terms."""
    body = call.body
    system = [text_of(m.get("content")) for m in body["messages"] if m.get("role") == "system"]
    messages, images, calls = [], [], []
    for message in body["messages"]:
        if message.get("role") in ("user", "assistant", "tool"):
            messages.append((message["role"], text_of(message.get("content"))))
        for part in message.get("content") if isinstance(message.get("content"), list) else ():
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                images.append(f"base64:{url[5:].split(';')[0]}" if url.startswith("data:") else f"url:{url}")
        for tool_call in message.get("tool_calls") or ():
            calls.append((tool_call["function"]["name"], serialization.loads(tool_call["function"]["arguments"])))
    response_format = body.get("response_format") or {}
    json_mode = None
    if response_format.get("type") == "json_object":
        json_mode = "schema" if "json_schema" in response_format else "object"
    params = {"max_tokens": body.get("max_tokens"), "stop": body.get("stop_sequences"),
              "temperature": body.get("temperature"), "top_p": body.get("p"), "seed": body.get("seed")}
    return {
        "model": body["model"], "stream": bool(body.get("stream")), "system": "\n".join(system) if system else None,
        "messages": messages, "tool_names": [t["function"]["name"] for t in body.get("tools") or ()],
        "tool_calls": calls, "tool_results": [(r.call_id, r.text) for r in call.tool_results], "images": images,
        "json_mode": json_mode, "json_schema": response_format.get("json_schema"),
        "params": {k: v for k, v in params.items() if v is not None},
    }


__all__ = ["CHAT_FIELDS", "RERANK_FIELDS", "CohereAPI", "check_chat", "check_rerank", "seen_fields", "stream_events"]
