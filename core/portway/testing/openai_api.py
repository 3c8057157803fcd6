"""A small fake of OpenAI's Responses API (``POST /v1/responses``).

Install it on a :class:`~portway.testing.FakeUpstream` (it is a handler)::

    api = OpenAIResponsesAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key="sk-test")
    with FakeUpstream() as upstream:
        api.install(upstream)   # clients use upstream.url + "/v1"

Each accepted call answers the next turn of the :mod:`script
<portway.testing.script>` (text becomes a ``message`` item with one
``output_text`` part, a tool call a ``function_call`` item) as a
``response`` object or, with ``"stream": true``, as the typed SSE events
the openai SDK and the Agents SDK consume: ``response.created``,
``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta`` (twice) /
``.done``, ``response.content_part.done``,
``response.function_call_arguments.delta`` / ``.done``,
``response.output_item.done``, ``response.completed`` (``response.incomplete``,
with ``incomplete_details.reason: max_output_tokens``, for a truncated
turn), each with its
``sequence_number`` (the event types of openai-python's
``ResponseStreamEvent``).  A script step sees the ``function_call_output``
items as the call's tool results.

It refuses, in OpenAI's error shape (``{"error": {"message", "type",
"param", "code"}}``), a missing or wrong ``Authorization: Bearer`` key
(401) and a body without ``model`` (400); and a call after the script is
used up (400, saying so).  Everything else it takes as sent: it checks the
client's side of the wire no further, and keeps no conversation state
(``previous_response_id`` is recorded, not resolved).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from portway import serialization
from portway.testing.script import Call, Script, Step, ToolCall, ToolResult, Turn, halves, id_maker
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

CREATED_AT = 1767225600  # a fixed clock: answers are reproducible


class OpenAIResponsesAPI:
    """The fake; see the module docstring.  ``api_key``: the only key it
    accepts (any non-empty bearer key when None)."""

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.calls: list[Call] = []
        #: (request, status, message) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, str]] = []
        self._response_id = id_maker("resp_")
        self._item_id = id_maker("item_")
        self._call_id = id_maker("call_")

    def install(self, upstream: FakeUpstream) -> OpenAIResponsesAPI:
        upstream.add("/v1/responses", self)
        return self

    def __call__(self, request: RecordedRequest) -> Reply:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self._refuse(request, 401, "You didn't provide an API key.", "invalid_request_error", None)
        if self.api_key is not None and key.strip() != self.api_key:
            return self._refuse(request, 401, "Incorrect API key provided.", "invalid_request_error",
                                "invalid_api_key")
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("model"):
            return self._refuse(request, 400, "Missing required parameter: 'model'.", "invalid_request_error",
                                "missing_required_parameter")
        seen = Call(request, body, tool_results(body.get("input")))
        turn = self.script.next_turn(seen)
        if turn is None:
            return self._refuse(request, 400, f"fake Responses API: the script has no turn left for call "
                                f"{len(self.calls) + 1}", "invalid_request_error", None)
        seen.answer = turn
        self.calls.append(seen)
        response = self._response(turn, body)
        if body.get("stream"):
            return sse_reply(stream_events(response))
        return json_reply(response)

    def _refuse(self, request: RecordedRequest, status: int, message: str, error_type: str,
                code: str | None) -> Reply:
        self.refusals.append((request, status, message))
        return json_reply({"error": {"message": message, "type": error_type, "param": None, "code": code}}, status)

    def _response(self, turn: Turn, body: dict[str, Any]) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        for part in turn.parts:
            if isinstance(part, ToolCall):
                output.append({"type": "function_call", "id": self._item_id(), "call_id": part.id or self._call_id(),
                               "name": part.name, "arguments": serialization.dumps_str(part.arguments),
                               "status": "completed"})
            else:
                output.append({"type": "message", "id": self._item_id(), "status": "completed", "role": "assistant",
                               "content": [{"type": "output_text", "text": part, "annotations": [], "logprobs": []}]})
        usage = {"input_tokens": turn.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": turn.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": turn.input_tokens + turn.output_tokens}
        return {"id": self._response_id(), "object": "response", "created_at": CREATED_AT,
                "status": "incomplete" if turn.truncated else "completed", "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if turn.truncated else None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"), "model": body["model"], "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": body.get("previous_response_id"), "reasoning": {"effort": None,
                                                                                        "summary": None},
                "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
                "text": body.get("text", {"format": {"type": "text"}}), "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools", []), "top_p": body.get("top_p", 1.0), "truncation": "disabled",
                "usage": usage, "user": None, "metadata": body.get("metadata", {})}


def tool_results(items: Any) -> list[ToolResult]:
    """Every ``function_call_output`` input item, its output flattened to text."""
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item.get("output", "")
            if isinstance(output, list):
                output = "".join(part.get("text", "") for part in output if isinstance(part, dict))
            found.append(ToolResult(str(item.get("call_id")), str(output)))
    return found


def stream_events(response: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``response`` as the Responses API streams it (named, numbered events)."""
    numbers = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(numbers), **fields}

    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "arguments": "", "status": "in_progress"})
            for piece in halves(item["arguments"]):
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where, name=item["name"],
                        arguments=item["arguments"])
        else:
            part = item["content"][0]
            yield event("response.output_item.added", output_index=index,
                        item={**item, "content": [], "status": "in_progress"})
            yield event("response.content_part.added", **where, content_index=0, part={**part, "text": ""})
            for piece in halves(part["text"]):
                yield event("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            yield event("response.output_text.done", **where, content_index=0, text=part["text"], logprobs=[])
            yield event("response.content_part.done", **where, content_index=0, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.incomplete" if response["status"] == "incomplete" else "response.completed",
                response=response)


__all__ = ["OpenAIResponsesAPI", "stream_events", "tool_results"]
