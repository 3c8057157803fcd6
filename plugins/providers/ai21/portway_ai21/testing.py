"""A fake of AI21's Jamba chat API (``POST /studio/v1/chat/completions``).

Install it on a :class:`~portway.testing.FakeUpstream` and point the ``ai21``
provider's ``base_url`` at ``upstream.url + "/studio/v1"``.

Its rules come from AI21's OpenAPI schema (mirrored in ``tryAGI/AI21``,
``src/libs/AI21/openapi.json``: ``ChatRequest``, the message models,
``ResponseFormat``, ``ChatCompletion``, ``ChatCompletionVllmStreamingMessage``)
and the API reference (docs.ai21.com/reference/jamba-1-6-api-ref,
/jamba-api-response), not from the adapter:

- the request's keys are ``ChatRequest``'s (:data:`CHAT_KEYS`): no ``seed``,
  ``tool_choice``, ``stream_options``, penalties, ``logprobs``, ``user``,
  ``max_completion_tokens``.  The schema does not say whether AI21 refuses
  other keys or ignores them; the fake refuses them (422, FastAPI's
  ``{"detail": [...]}``), so that an adapter handles each on purpose;
- messages are ``system``, ``user``, ``assistant``, ``tool`` with string
  ``content`` and only their model's keys (``reasoning_content`` is one of
  the assistant's);
- ``n`` is 1 to 16, and 1 with ``stream``; ``response_format`` is ``text`` or
  ``json_object``.

It answers as AI21 does: ``{id, choices, usage, meta}`` with no ``object``,
``created`` or ``model``; a stream opening with ``{"role": "assistant"}``,
tool calls as a first delta (id, index, type, name) then argument deltas,
the usage on the last chunk (the one with the ``finish_reason``), then
``data: [DONE]``; errors as ``{"detail": "..."}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step, ToolCall, Turn, halves
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

#: ``ChatRequest``'s properties.
CHAT_KEYS = frozenset({"model", "messages", "tools", "n", "max_tokens", "temperature", "top_p", "stop", "stream",
                       "mock_response", "documents", "response_format"})
#: The keys of each message model.
MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "reasoning_content"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def detail(loc: list[Any], msg: str, error_type: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": error_type}


class AI21API(OpenAIChatAPI):
    """The fake; see the module docstring."""

    roles = frozenset(MESSAGE_KEYS)
    string_content_roles = frozenset(MESSAGE_KEYS)
    max_n = 16
    response_formats = frozenset({"text", "json_object"})
    tool_choices: frozenset[str] = frozenset()
    takes_stream_options = False

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        super().__init__(script, api_key=api_key, chat_path="/studio/v1/chat/completions")

    def install(self, upstream: FakeUpstream) -> AI21API:
        upstream.add(self.chat_path, self._chat)  # no embeddings in this API
        return self

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        return self._error(status, message, None, retry_after)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"detail": message}, status, headers)

    def _chat(self, request: RecordedRequest) -> Reply:
        body = self.authorized_body(request)
        details = schema_errors(body) if body is not None else []
        if details:
            self.refusals.append((request, 422, str(details)))
            return json_reply({"detail": details}, 422)
        return super()._chat(request)

    # -- answering --------------------------------------------------------------------------

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        completion = super().completion(turn, model)
        message = completion["choices"][0]["message"]
        for key in ("refusal", "annotations"):
            message.pop(key, None)
        usage = completion["usage"]
        return {"id": completion["id"], "choices": completion["choices"],
                "usage": {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")},
                "meta": {"requestDurationMillis": 42}}

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {"id": completion["id"], "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                         "finish_reason": finish}], **extra}

        yield chunk({"role": "assistant"})
        calls = iter(completion["choices"][0]["message"].get("tool_calls") or [])
        index = 0
        for part in turn.parts:
            if isinstance(part, ToolCall):
                call = next(calls)
                yield chunk({"tool_calls": [{"id": call["id"], "index": index, "type": "function",
                                             "function": {"name": call["function"]["name"]}}]})
                for piece in halves(call["function"]["arguments"]):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                index += 1
                continue
            for piece in halves(part):
                yield chunk({"content": piece})
        yield chunk({}, completion["choices"][0]["finish_reason"], usage=completion["usage"])


def schema_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The 422 details for what ``ChatRequest`` does not have, and ``n`` with a stream."""
    details = [detail(["body", key], "Extra inputs are not permitted", "extra_forbidden")
               for key in sorted(body) if key not in CHAT_KEYS]
    n = body.get("n")
    if body.get("stream") and isinstance(n, int) and n > 1:
        details.append(detail(["body", "n"], "n must be 1 when stream is true", "value_error"))
    for index, message in enumerate(body.get("messages") or ()):
        allowed = MESSAGE_KEYS.get(message.get("role")) if isinstance(message, dict) else None
        if allowed is None:
            continue  # the base's role check answers it
        details += [detail(["body", "messages", index, key], "Extra inputs are not permitted", "extra_forbidden")
                    for key in sorted(message) if key not in allowed]
    return details


__all__ = ["AI21API", "CHAT_KEYS", "MESSAGE_KEYS", "schema_errors"]
