"""A fake of Mistral's Chat Completions and Embeddings APIs, as strict as
the real one about what an adapter gets wrong easily.

Install it on a :class:`~portway.testing.FakeUpstream` and point the
``mistral`` provider's ``base_url`` at ``upstream.url + "/v1"``::

    api = MistralAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key="mistral-key")
    with FakeUpstream() as upstream:
        api.install(upstream)

Its rules are stated from Mistral's own SDK (``mistralai/client-python``,
``src/mistralai/client/models/``) and from the errors the API answers with,
apart from the adapter's quirks:

- the request's keys are those of ``chatcompletionrequest.py``
  (:data:`CHAT_KEYS`; ``random_seed``, not ``seed``; ``max_tokens``, not
  ``max_completion_tokens``; no ``stream_options``, ``user``, ``logprobs``),
  each message's those of its role's model (:data:`MESSAGE_KEYS`), the roles
  ``system``, ``user``, ``assistant``, ``tool``: anything else is a 422
  ``extra_forbidden``, with the pydantic details in ``message.detail``;
- every tool-call id in the history is nine letters or digits, or a 400
  ``invalid_function_call`` ("Tool call id was … but must be a-z, A-Z, 0-9,
  with a length of 9.");
- ``tool_choice`` is ``auto``, ``none``, ``any``, ``required`` or a named
  function (``toolchoiceenum.py``, ``toolchoice.py``);
- the embeddings request's keys are those of ``embeddingrequest.py``
  (``output_dimension``, not ``dimensions``).

It answers the way Mistral does: tool-call ids of nine letters and digits;
a reasoning turn (Magistral) as a ``thinking`` chunk before a ``text`` chunk
in ``content`` (``thinkchunk.py``), streamed as list deltas; a stream with
each tool call whole in one delta, and the usage on the chunk that carries
the ``finish_reason`` (it takes no ``stream_options``); errors as
``{"object": "error", "message", "type", "param", "code"}``, and a 401 or 429
as the API gateway's ``{"message", "request_id"}``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from portway.testing.conformance import Seen
from portway.testing.openai_chat import OpenAIChatAPI, chat_seen
from portway.testing.script import Call, Step, ToolCall, Turn, halves
from portway.testing.upstream import RecordedRequest, Reply, json_reply

#: The keys of ``ChatCompletionRequest`` (``chatcompletionrequest.py``).
CHAT_KEYS = frozenset({
    "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed", "metadata",
    "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n", "prediction",
    "parallel_tool_calls", "reasoning_effort", "prompt_mode", "guardrails", "prompt_cache_key", "safe_prompt",
})
#: The keys of each message model (``systemmessage.py``, ``usermessage.py``,
#: ``assistantmessage.py``, ``toolmessage.py``).
MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
#: The keys of ``EmbeddingRequest`` (``embeddingrequest.py``; ``inputs`` is ``input`` on the wire).
EMBEDDING_KEYS = frozenset({"model", "input", "metadata", "output_dimension", "output_dtype", "encoding_format"})
TOOL_CALL_ID = re.compile(r"[a-zA-Z0-9]{9}")
CREATED = 1767225600


def mistral_error(message: Any, error_type: str = "invalid_request_error", code: str | None = None,
                  param: str | None = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": error_type, "param": param, "code": code}


def extra_forbidden(loc: list[Any], value: Any) -> dict[str, Any]:
    return {"type": "extra_forbidden", "loc": loc, "msg": "Extra inputs are not permitted", "input": value}


class MistralAPI(OpenAIChatAPI):
    """The fake; see the module docstring.  ``api_key``: the only key it
    accepts (any non-empty bearer key when None)."""

    roles = frozenset(MESSAGE_KEYS)
    tool_choices = frozenset({"auto", "none", "any", "required", "named"})
    takes_stream_options = False
    reasoning_field = None  # reasoning comes as thinking chunks in content, rendered below

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        super().__init__(script, api_key=api_key)
        counter = itertools.count(1)
        self._call_id = lambda: f"T{next(counter):08d}"  # nine letters and digits, like Mistral's
        #: Every 422 the fake answered, with the pydantic details.
        self.validation_errors: list[list[dict[str, Any]]] = []

    # -- the neutral view ------------------------------------------------------------

    def seen(self, call: Call) -> Seen:
        seen = chat_seen(call.body)
        body = call.body
        if "random_seed" in body:
            seen.params["seed"] = body["random_seed"]
        if body.get("tool_choice") == "any":
            seen.params["tool_choice"] = "required"  # the same request, in Mistral's words
        return seen

    # -- errors ------------------------------------------------------------------------

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        return self._error(status, message, None, retry_after)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        if status in (401, 429):  # answered by the API gateway in front of the models
            return json_reply({"message": message, "request_id": "0123456789abcdef0123456789abcdef"}, status,
                              headers)
        error_type = "invalid_request_error" if status < 500 else "internal_server_error"
        return json_reply(mistral_error(message, error_type, str(status * 10), param), status, headers)

    def _invalid(self, request: RecordedRequest, details: list[dict[str, Any]]) -> Reply:
        self.validation_errors.append(details)
        self.refusals.append((request, 422, str(details)))
        return json_reply(mistral_error({"detail": details}), 422)

    # -- the rules -----------------------------------------------------------------------

    def _chat(self, request: RecordedRequest) -> Reply:
        body = self.authorized_body(request)
        if body is not None:
            details = schema_errors(body)
            if details:
                return self._invalid(request, details)
            bad_id = bad_tool_call_id(body.get("messages"))
            if bad_id is not None:
                message = f"Tool call id was {bad_id} but must be a-z, A-Z, 0-9, with a length of 9."
                self.refusals.append((request, 400, message))
                return json_reply(mistral_error(message, "invalid_function_call", "3280"), 400)
        return super()._chat(request)

    def _embeddings(self, request: RecordedRequest) -> Reply:
        body = self.authorized_body(request)
        if body is not None:
            details = [extra_forbidden(["body", key], body[key]) for key in sorted(body) if key not in EMBEDDING_KEYS]
            if details:
                return self._invalid(request, details)
        return super()._embeddings(request)

    # -- answering ------------------------------------------------------------------------

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        completion = super().completion(turn, model)
        message = completion["choices"][0]["message"]
        for key in ("refusal", "annotations"):
            message.pop(key, None)
        message.setdefault("tool_calls", None)
        message["prefix"] = False
        if turn.reasoning is not None:
            message["content"] = [{"type": "thinking", "thinking": [{"type": "text", "text": turn.reasoning}]},
                                  {"type": "text", "text": message["content"] or ""}]
        choice = completion["choices"][0]
        choice.pop("logprobs", None)
        usage = completion["usage"]
        completion["usage"] = {key: usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
        for key in ("system_fingerprint", "service_tier"):
            completion.pop(key, None)
        return completion

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                "model": completion["model"]}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

        yield chunk({"role": "assistant", "content": ""})
        if turn.reasoning is not None:
            for piece in halves(turn.reasoning):
                yield chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": piece}]}]})
        calls = iter(completion["choices"][0]["message"].get("tool_calls") or [])
        for index, part in enumerate(turn.parts):
            if isinstance(part, ToolCall):
                call = next(calls)
                yield chunk({"content": "", "tool_calls": [{**call, "index": index}]})  # whole, in one delta
                continue
            for piece in halves(part):
                yield chunk({"content": piece})
        yield chunk({"content": ""}, completion["choices"][0]["finish_reason"], usage=completion["usage"])


def schema_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Mistral's 422 details for ``body``: every key its schema does not have."""
    details = [extra_forbidden(["body", key], body[key]) for key in sorted(body) if key not in CHAT_KEYS]
    for index, message in enumerate(body.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        allowed = MESSAGE_KEYS.get(role)  # type: ignore[arg-type]
        if allowed is None:
            details.append({"type": "union_tag_invalid", "loc": ["body", "messages", index],
                            "msg": f"Input tag '{role}' found using 'role' does not match any of the expected tags: "
                                   "'system', 'user', 'assistant', 'tool'", "input": message})
            continue
        details += [extra_forbidden(["body", "messages", index, role, key], message[key])
                    for key in sorted(message) if key not in allowed]
    return details


def bad_tool_call_id(messages: Any) -> str | None:
    """The first tool-call id of the history that is not in Mistral's form."""
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        ids = [call.get("id") for call in message.get("tool_calls") or () if isinstance(call, dict)]
        if message.get("role") == "tool":
            ids.append(message.get("tool_call_id"))
        for value in ids:
            if not isinstance(value, str) or not TOOL_CALL_ID.fullmatch(value):
                return str(value)
    return None


__all__ = ["CHAT_KEYS", "EMBEDDING_KEYS", "MESSAGE_KEYS", "MistralAPI", "bad_tool_call_id",
           "mistral_error", "schema_errors"]
