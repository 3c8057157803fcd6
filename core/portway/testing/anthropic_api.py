"""A fake Anthropic Messages API that is as strict as the real one about betas.

Install it on a :class:`~portway.testing.FakeUpstream` (it is a handler) and
point a client or the ``anthropic`` provider at the fake's URL::

    api = AnthropicAPI([call("Write", {...}), say("done")], api_key="sk-ant-test")
    with FakeUpstream() as upstream:
        api.install(upstream)
        ...
    assert api.calls[1].last_tool_result.text == "..."

``POST /v1/messages`` (any query, e.g. Claude Code's ``?beta=true``) answers
the next turn of the :mod:`script <portway.testing.script>`, as a message or,
with ``"stream": true``, as Anthropic's named SSE events (``message_start``,
``content_block_start``, a ``ping``, ``text_delta`` / ``input_json_delta``
deltas, ``content_block_stop``, ``message_delta`` with cumulative
``output_tokens``, ``message_stop``).  Accepted calls are kept in
:attr:`AnthropicAPI.calls`; refused ones in :attr:`AnthropicAPI.refusals`.

What it refuses, in the real API's shapes (``{"type": "error", "error":
{"type", "message"}, "request_id"}``, per Anthropic's errors page
https://docs.claude.com/en/api/errors):

* no key (401 ``authentication_error``, "x-api-key header is required"), or
  one other than ``api_key`` when it is given ("invalid x-api-key"); the key
  comes in ``x-api-key`` or, as the anthropic SDK sends it since 2.14, in
  ``Authorization: Bearer``; no ``anthropic-version`` header (400);
* a missing ``model``, ``max_tokens`` or ``messages`` ("model: Field required");
* a top-level field the API does not know: "<field>: Extra inputs are not
  permitted", the API's pydantic-style message;
* a beta field without the beta that enables it, with the same message, as
  the real API answers Claude Code's requests when a proxy drops the header
  (anthropics/claude-code#14135: "context_management: Extra inputs are not
  permitted"; mirrorange/clove#40 for ``output_config``).  The table is
  :data:`BETA_FIELDS`: ``context_management`` needs
  ``context-management-2025-06-27`` (docs: build-with-claude/context-editing,
  ``betaHeader``), ``mcp_servers`` needs an ``mcp-client-*`` beta, and
  ``output_config.effort`` needs ``effort-2025-11-24`` (the beta of Opus 4.5's
  effort parameter; newer models take ``effort`` without it, so this fake is
  the stricter of the two, which is what a pass-through must survive);
* a ``{"role": "system"}`` message inside ``messages`` when the request
  carries no beta at all: 'messages: Unexpected role "system". The Messages
  API accepts a top-level `system` parameter, not "system" as an input
  message role.' (the real API's words, quoted in
  Maol-1997/cursor-claude-connector#3).  Lenient on purpose: mid-conversation
  system messages (docs: build-with-claude/mid-conversation-system-messages)
  came with betas and Claude Code sends them with a list of betas;
* a ``tool_result`` whose ``tool_use_id`` no earlier assistant ``tool_use``
  carries (the real API's "unexpected `tool_use_id` found in `tool_result`
  blocks"), so a gateway that mangles ids is caught;
* a call after the script is used up (400, saying so: not a real API
  behaviour, a test's failure).

For the conformance kit (:mod:`portway.testing.conformance`) it is a
``WireFake``: :meth:`AnthropicAPI.seen` decodes a call's request,
:meth:`AnthropicAPI.error` renders an error as the API does, streamed answers
are paced by :attr:`~AnthropicAPI.stream_delay` and set
:attr:`~AnthropicAPI.disconnected` when their client leaves early, and a
truncated turn ends with ``stop_reason: max_tokens``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from portway import serialization
from portway.formats.anthropic.common import JSON_OBJECT_INSTRUCTION
from portway.testing.conformance import Seen
from portway.testing.script import Call, Script, Step, ToolCall, ToolResult, Turn, halves, id_maker
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

#: Top-level request fields the API takes without any beta (the anthropic
#: SDK's ``MessageCreateParams``, plus the sampling fields older models take).
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_k",
    "top_p", "tools", "tool_choice", "thinking", "service_tier", "output_config", "container", "inference_geo",
    "cache_control", "diagnostics", "speed",
})

#: Beta fields, as dotted paths into the body, and the betas any one of which enables each.
BETA_FIELDS: dict[str, frozenset[str]] = {
    "context_management": frozenset({"context-management-2025-06-27"}),
    "mcp_servers": frozenset({"mcp-client-2025-04-04", "mcp-client-2025-11-20"}),
    "output_config.effort": frozenset({"effort-2025-11-24"}),
}

#: The error ``type`` the API gives each status (docs: api/errors); other 5xx are ``api_error``.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               529: "overloaded_error"}

UNEXPECTED_SYSTEM_ROLE = ('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                          'parameter, not "system" as an input message role.')


#: The top-level fields of a count_tokens request (the anthropic SDK's ``MessageCountTokensParams``).
COUNT_TOKENS_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers",
                                 "output_config", "context_management", "cache_control", "speed"})
#: What the fake's token counts start from.
COUNT_BASE = 1000


@dataclass(frozen=True)
class Refusal:
    """A request the fake refused, and the error it answered with."""

    request: RecordedRequest
    status: int
    error_type: str
    message: str


class AnthropicAPI:
    """The fake; see the module docstring.  ``api_key``: the only key it
    accepts (any non-empty key when None)."""

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.calls: list[Call] = []
        self.refusals: list[Refusal] = []
        #: The body of every accepted count_tokens request.
        self.counted: list[dict[str, Any]] = []
        #: Set when the client of a streamed answer goes away before its end.
        self.disconnected = threading.Event()
        #: Seconds between streamed events.
        self.stream_delay = 0.0
        self._message_id = id_maker("msg_")
        self._tool_id = id_maker("toolu_")
        self._request_id = id_maker("req_")

    def install(self, upstream: FakeUpstream) -> AnthropicAPI:
        upstream.add("/v1/messages", self)
        upstream.add("/v1/messages/count_tokens", self.count_tokens)
        return self

    def count_tokens(self, request: RecordedRequest) -> Reply:
        """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}`` with
        N = :data:`COUNT_BASE` + the number of messages (a count no
        estimate would give, so a test sees who counted).  Refuses, as the
        API does, what ``MessageCountTokensParams`` has not (``max_tokens``,
        ``stream``, sampling parameters: "Extra inputs are not permitted")
        and a body without ``model`` or ``messages``."""
        problem = self._check_headers(request)
        if problem is not None:
            return self._refuse(request, *problem)
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, "invalid_request_error", "Input should be an object")
        for field in ("model", "messages"):
            if field not in body:
                return self._refuse(request, 400, "invalid_request_error", f"{field}: Field required")
        for field in body:
            if field not in COUNT_TOKENS_FIELDS:
                return self._refuse(request, 400, "invalid_request_error", f"{field}: Extra inputs are not permitted")
        self.counted.append(body)
        return json_reply({"input_tokens": COUNT_BASE + len(body["messages"])}, headers={"request-id": self._request_id()})

    @property
    def betas_seen(self) -> list[list[str]]:
        """The ``anthropic-beta`` list of each accepted call."""
        return [betas(seen.request) for seen in self.calls]

    # -- answering ------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        problem = self._check_headers(request)
        if problem is not None:
            return self._refuse(request, *problem)
        try:
            body = request.json()
        except ValueError:
            return self._refuse(request, 400, "invalid_request_error", "There was an issue with the format or content "
                                "of your request: the body is not valid JSON.")
        if not isinstance(body, dict):
            return self._refuse(request, 400, "invalid_request_error", "Input should be an object")
        message = check_body(body, betas(request))
        if message is not None:
            return self._refuse(request, 400, "invalid_request_error", message)
        seen = Call(request, body, tool_results(body["messages"]))
        turn = self.script.next_turn(seen)
        if turn is None:
            return self._refuse(request, 400, "invalid_request_error",
                                f"fake Anthropic API: the script has no turn left for call {len(self.calls) + 1}")
        seen.answer = turn
        self.calls.append(seen)
        message_body = self._message(turn, body["model"])
        headers = {"request-id": self._request_id()}
        if body.get("stream"):
            return sse_reply(stream_events(message_body), headers=headers, delay=self.stream_delay,
                             disconnected=self.disconnected)
        return json_reply(message_body, headers=headers)

    def seen(self, call: Call) -> Seen:
        return messages_seen(call.body)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """The API's error answer for ``status``, with a ``retry-after``
        header when ``retry_after`` is given (as the API sends on a 429)."""
        return self._error(status, ERROR_TYPES.get(status, "api_error"), message, retry_after)

    def _error(self, status: int, error_type: str, message: str, retry_after: str | None = None) -> Reply:
        request_id = self._request_id()
        headers = {"request-id": request_id}
        if retry_after is not None:
            headers["retry-after"] = retry_after
        return json_reply({"type": "error", "error": {"type": error_type, "message": message},
                           "request_id": request_id}, status, headers=headers)

    def _check_headers(self, request: RecordedRequest) -> tuple[int, str, str] | None:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = request.headers.get("x-api-key") or (bearer.strip() if scheme.lower() == "bearer" else "")
        if not key:
            return 401, "authentication_error", "x-api-key header is required"
        if self.api_key is not None and key != self.api_key:
            return 401, "authentication_error", "invalid x-api-key"
        if not request.headers.get("anthropic-version"):
            return 400, "invalid_request_error", "anthropic-version: header is required"
        return None

    def _refuse(self, request: RecordedRequest, status: int, error_type: str, message: str) -> Reply:
        self.refusals.append(Refusal(request, status, error_type, message))
        return self._error(status, error_type, message)

    def _message(self, turn: Turn, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, ToolCall):
                content.append({"type": "tool_use", "id": part.id or self._tool_id(), "name": part.name,
                                "input": part.arguments})
            else:
                content.append({"type": "text", "text": part})
        return {"id": self._message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": "tool_use" if turn.calls_tools else "max_tokens" if turn.truncated else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def _text(content: Any) -> str:
    """The text of a message's ``content``: a string, or its text blocks joined."""
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "".join(block.get("text", "") for block in blocks if isinstance(block, dict) and block.get("type") == "text")


def messages_seen(body: dict[str, Any]) -> Seen:
    """A Messages API request body in the conformance kit's neutral view.
    JSON mode: ``output_config.format`` json_schema is "schema"; a system
    prompt that ends with the instruction Portway appends for
    ``response_format: json_object`` (the API has no JSON-object mode) is
    "object"."""
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(block.get("text", "") for block in system if isinstance(block, dict))
    seen = Seen(model=body.get("model", ""), stream=bool(body.get("stream")), system=system or None)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
        results = tool_results([message])
        role = message.get("role")
        if results and all(block.get("type") == "tool_result" for block in blocks):
            seen.messages.append(("tool", "\n".join(result.text for result in results)))
        else:
            seen.messages.append((str(role), _text(content)))
        seen.tool_results += [(result.call_id, result.text) for result in results]
        for block in blocks:
            if block.get("type") == "tool_use" and role == "assistant":
                seen.tool_calls.append((block.get("name"), block.get("input")))
            elif block.get("type") == "image":
                source = block.get("source") or {}
                seen.images.append("url:" + source.get("url", "") if source.get("type") == "url"
                                   else "base64:" + source.get("media_type", ""))
    seen.tool_names = [tool.get("name") for tool in body.get("tools") or [] if isinstance(tool, dict)]
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") == "json_schema":
        seen.json_mode, seen.json_schema = "schema", output_format.get("schema")
    elif seen.system and seen.system.endswith(JSON_OBJECT_INSTRUCTION):
        seen.json_mode = "object"
    for name, key in (("max_tokens", "max_tokens"), ("stop", "stop_sequences"), ("temperature", "temperature"),
                      ("top_p", "top_p")):
        if body.get(key) is not None:
            seen.params[name] = body[key]
    return seen


def betas(request: RecordedRequest) -> list[str]:
    return [name.strip() for name in request.headers.get("anthropic-beta", "").split(",") if name.strip()]


def check_body(body: dict[str, Any], enabled: list[str]) -> str | None:
    """The real API's 400 message for ``body`` sent with the betas
    ``enabled``, or None if it would accept it."""
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            return f"{required}: Field required"
    for name in body:
        if name not in KNOWN_FIELDS and name not in BETA_FIELDS:
            return f"{name}: Extra inputs are not permitted"
    for path, enabling in BETA_FIELDS.items():
        if _has_path(body, path) and not enabling.intersection(enabled):
            return f"{path}: Extra inputs are not permitted"
    messages = body["messages"]
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    tool_use_ids: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{index}: Input should be a valid dictionary"
        if message.get("role") == "system" and not enabled:
            return UNEXPECTED_SYSTEM_ROLE
        blocks = message.get("content")
        for number, block in enumerate(blocks if isinstance(blocks, list) else []):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use" and message.get("role") == "assistant":
                tool_use_ids.add(block.get("id"))
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in tool_use_ids:
                return (f"messages.{index}.content.{number}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in the previous message.")
    return None


def _has_path(body: dict[str, Any], path: str) -> bool:
    node: Any = body
    for name in path.split("."):
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def tool_results(messages: Any) -> list[ToolResult]:
    """Every ``tool_result`` block of the user turns, its content flattened to text."""
    found = []
    for message in messages if isinstance(messages, list) else []:
        blocks = message.get("content") if isinstance(message, dict) and message.get("role") == "user" else None
        for block in blocks if isinstance(blocks, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content", "")
                if isinstance(content, list):
                    content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
                found.append(ToolResult(str(block.get("tool_use_id")), str(content), bool(block.get("is_error"))))
    return found


def stream_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``message`` as the API streams it: named events, a ``ping`` after the
    first block starts, text and tool input each in two deltas (so a client
    must accumulate), and the cumulative ``output_tokens`` at the end."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            empty, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": piece}
                                                           for piece in halves(block["text"])]
        else:
            empty = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in halves(serialization.dumps_str(block["input"]))]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}
        if index == 0:
            yield "ping", {"type": "ping"}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                               "stop_sequence": None},
                            "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


__all__ = ["BETA_FIELDS", "ERROR_TYPES", "KNOWN_FIELDS", "AnthropicAPI", "Refusal", "check_body", "messages_seen",
           "stream_events", "tool_results"]
