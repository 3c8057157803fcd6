"""A fake of OpenAI's Chat Completions and Embeddings APIs, driven by a script.

Install it on a :class:`~portway.testing.FakeUpstream` and point a client
(or the ``openai`` provider, with ``base_url = upstream.url + "/v1"``) at it::

    api = OpenAIChatAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key="sk-test")
    with FakeUpstream() as upstream:
        api.install(upstream)
        ...
    assert api.seen(api.calls[1]).tool_results == [("call_...", "24 degrees")]

``POST /v1/chat/completions`` answers the next turn of the :mod:`script
<portway.testing.script>` as a ``chat.completion`` or, with ``"stream":
true``, as ``chat.completion.chunk`` events the way OpenAI streams them: a
first chunk with the role, each text part in two ``content`` deltas, each tool
call as a first fragment (``index``, ``id``, ``name``, empty ``arguments``)
then its arguments in two pieces, a chunk with the ``finish_reason``
(``stop``, ``length`` for a truncated turn, ``tool_calls``), the usage chunk
(``choices: []``) only when ``stream_options.include_usage`` is set (every
other chunk then carries ``"usage": null``), and ``data: [DONE]``.

``POST /v1/embeddings`` answers one vector per input (a string, a list of
strings, or token arrays), a deterministic function of the input
(:func:`vector_of`), as float lists or, with ``encoding_format: base64``,
as base64 little-endian float32, the way OpenAI encodes them.

What it refuses, in OpenAI's error shape (``{"error": {"message", "type",
"param", "code"}}``): a missing or wrong bearer key (401), a body without
``model`` or ``messages`` (400), a ``tool`` message that answers no tool
call of the assistant message before it, an assistant's tool call that no
``tool`` message answers (the API's own messages), a parameter listed in
:attr:`OpenAIChatAPI.refused_params` (400 naming it), and a call after the
script is used up.  Anything else it takes as sent.

It is the base for OpenAI-compatible servers' fakes: subclass it and change
the paths (constructor arguments), the rules below (class attributes, each
refusing with a 400 what a server refuses; OpenAI's own defaults refuse
nothing), :meth:`~OpenAIChatAPI.authorize` (another auth header) or
:meth:`~OpenAIChatAPI.check` (any other rule), or the rendering methods:

* :attr:`~OpenAIChatAPI.refused_params`: parameters it refuses outright;
* :attr:`~OpenAIChatAPI.max_n`: the most choices it returns (more is a 400);
* :attr:`~OpenAIChatAPI.roles`: the message roles it knows;
* :attr:`~OpenAIChatAPI.string_content_roles`: roles whose content must be a string;
* :attr:`~OpenAIChatAPI.refuses_reasoning_in_history`: an assistant message
  carrying ``reasoning_content`` back is a 400 (DeepSeek's rule);
* :attr:`~OpenAIChatAPI.response_formats`, :attr:`~OpenAIChatAPI.tool_choices`:
  the ``response_format`` types and ``tool_choice`` forms it takes;
* :attr:`~OpenAIChatAPI.reasoning_field`: where its answers carry a turn's
  ``reasoning`` (None: they do not).

A subclass states them from the server's own documentation, apart from the
adapter's :class:`~portway.quirks.Quirks`, so an adapter that forgets one
sends what the fake refuses, and its tests fail.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from portway import serialization
from portway.testing.conformance import EXTRA_PARAMS, Seen
from portway.testing.script import Call, Script, Step, ToolCall, ToolResult, Turn, halves, id_maker
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

CREATED = 1767225600  # a fixed clock: answers are reproducible

#: OpenAI's error ``type`` and ``code`` for each status the fake answers with.
ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("request_forbidden", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class OpenAIChatAPI:
    """The fake; see the module docstring.  ``api_key``: the only key it
    accepts (any non-empty bearer key when None)."""

    #: Request parameters this server refuses with a 400 naming the parameter.
    refused_params: frozenset[str] = frozenset()
    #: The most choices (``n``) it returns: a larger ``n`` is a 400.
    max_n: int | None = None
    #: The message roles it knows.
    roles: frozenset[str] = frozenset({"system", "developer", "user", "assistant", "tool"})
    #: Roles whose ``content`` must be a string (not a list of parts).
    string_content_roles: frozenset[str] = frozenset()
    #: Whether an assistant message that carries ``reasoning_content`` back is a 400.
    refuses_reasoning_in_history: bool = False
    #: The ``response_format`` types it takes.
    response_formats: frozenset[str] = frozenset({"text", "json_object", "json_schema"})
    #: The ``tool_choice`` forms it takes: "auto", "none", "required", "named" (a function object).
    tool_choices: frozenset[str] = frozenset({"auto", "none", "required", "named"})
    #: Whether it takes ``stream_options``.
    takes_stream_options: bool = True
    #: The field of its answers (and deltas) that carries a turn's reasoning; None: not returned.
    reasoning_field: str | None = None

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None,
                 chat_path: str = "/v1/chat/completions", embeddings_path: str = "/v1/embeddings",
                 refused_params: frozenset[str] | None = None) -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.chat_path = chat_path
        self.embeddings_path = embeddings_path
        if refused_params is not None:
            self.refused_params = refused_params
        self.calls: list[Call] = []
        #: The body of every accepted embeddings request.
        self.embedding_requests: list[dict[str, Any]] = []
        #: (request, status, message) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, str]] = []
        #: Set when the client of a streamed answer goes away before its end.
        self.disconnected = threading.Event()
        #: Seconds between streamed events.
        self.stream_delay = 0.0
        self._completion_id = id_maker("chatcmpl-")
        self._call_id = id_maker("call_")

    def install(self, upstream: FakeUpstream) -> OpenAIChatAPI:
        upstream.add(self.chat_path, self._chat)
        upstream.add(self.embeddings_path, self._embeddings)
        return self

    # -- what a test asks of it ----------------------------------------------

    def seen(self, call: Call) -> Seen:
        return chat_seen(call.body)

    def authorized_body(self, request: RecordedRequest) -> dict[str, Any] | None:
        """The JSON object of a request whose credentials this fake accepts;
        None otherwise (the fake's own handler then answers it: a 401, or a
        400 for a body that is not an object).  For a subclass that checks
        rules of its own before the base's."""
        if self.authorize(request) is not None:
            return None
        try:
            body = request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """OpenAI's error answer: ``{"error": {...}}`` with the type and code
        OpenAI gives ``status``, and a ``retry-after`` header when given."""
        return self._error(status, message, None, retry_after)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        error_type, code = ERROR_TYPES.get(status, ("server_error", None))
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"message": message, "type": error_type, "param": param, "code": code}}, status,
                          headers)

    # -- rules (override for a server's quirks) -------------------------------

    def authorize(self, request: RecordedRequest) -> str | None:
        """Why the request's credentials are refused (a 401), or None."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return ("You didn't provide an API key. You need to provide your API key in an Authorization header "
                    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        if self.api_key is not None and key.strip() != self.api_key:
            return "Incorrect API key provided."
        return None

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        """The 400 a chat body gets, as (message, param), or None."""
        if not body.get("model"):
            return "you must provide a model parameter", "model"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "Missing required parameter: 'messages'.", "messages"
        for name in sorted(self.refused_params):
            if name in body:
                return f"Unsupported parameter: '{name}' is not supported with this model.", name
        n = body.get("n")
        if self.max_n is not None and isinstance(n, int) and n > self.max_n:
            return f"'n' must be at most {self.max_n}", "n"
        if "stream_options" in body and not self.takes_stream_options:
            return "Unsupported parameter: 'stream_options'.", "stream_options"
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") not in self.response_formats:
            return f"response_format type {response_format.get('type')!r} is not supported", "response_format"
        tool_choice = body.get("tool_choice")
        if tool_choice is not None:
            form = "named" if isinstance(tool_choice, dict) else tool_choice
            if form not in self.tool_choices:
                return f"tool_choice {form!r} is not supported", "tool_choice"
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if role not in self.roles:
                return f"messages[{index}].role: unknown role {role!r}", f"messages.[{index}].role"
            if role in self.string_content_roles and not isinstance(message.get("content"), str | None):
                return f"messages[{index}].content must be a string for role {role!r}", f"messages.[{index}].content"
            if self.refuses_reasoning_in_history and role == "assistant" and "reasoning_content" in message:
                return (f"messages[{index}]: reasoning_content is not allowed in input messages",
                        f"messages.[{index}].reasoning_content")
        return check_tool_messages(messages)

    # -- answering --------------------------------------------------------------

    def _chat(self, request: RecordedRequest) -> Reply:
        problem = self.authorize(request)
        if problem is not None:
            return self._refuse(request, 401, problem)
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, "We could not parse the JSON body of your request.")
        refused = self.check(body)
        if refused is not None:
            return self._refuse(request, 400, *refused)
        seen = Call(request, body, tool_results(body["messages"]))
        turn = self.script.next_turn(seen)
        if turn is None:
            return self._refuse(request, 400, f"fake Chat Completions API: the script has no turn left for call "
                                f"{len(self.calls) + 1}")
        seen.answer = turn
        self.calls.append(seen)
        completion = self.completion(turn, body["model"])
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage") is True
            return sse_reply(self.chunks(turn, completion, usage), done=True, delay=self.stream_delay,
                             disconnected=self.disconnected)
        return json_reply(completion)

    def _embeddings(self, request: RecordedRequest) -> Reply:
        problem = self.authorize(request)
        if problem is not None:
            return self._refuse(request, 401, problem)
        try:
            body = request.json()
        except ValueError:
            body = None
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(body, dict) or not body.get("model") or not isinstance(inputs, list) or not inputs:
            return self._refuse(request, 400, "Missing required parameter: 'input'.", "input")
        self.embedding_requests.append(body)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = vector_of(item if isinstance(item, str) else serialization.dumps_str(item))
            encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(item.split()) if isinstance(item, str) else len(item) for item in inputs)
        return json_reply({"object": "list", "data": data, "model": body["model"],
                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _refuse(self, request: RecordedRequest, status: int, message: str, param: str | None = None) -> Reply:
        self.refusals.append((request, status, message))
        return self._error(status, message, param)

    # -- rendering (override for a server that answers differently) -------------

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        """``turn`` as a ``chat.completion``."""
        texts = [part for part in turn.parts if isinstance(part, str)]
        calls = [{"id": part.id or self._call_id(), "type": "function",
                  "function": {"name": part.name, "arguments": serialization.dumps_str(part.arguments)}}
                 for part in turn.parts if isinstance(part, ToolCall)]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                                   "refusal": None, "annotations": []}
        if turn.reasoning is not None and self.reasoning_field is not None:
            message[self.reasoning_field] = turn.reasoning
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else "length" if turn.truncated else "stop"
        usage = {"prompt_tokens": turn.input_tokens, "completion_tokens": turn.output_tokens,
                 "total_tokens": turn.input_tokens + turn.output_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        return {"id": self._completion_id(), "object": "chat.completion", "created": CREATED, "model": model,
                "system_fingerprint": "fp_fake", "service_tier": "default",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage}

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        """``completion`` (of ``turn``) as OpenAI streams it (see the module docstring)."""
        base = {key: completion[key] for key in ("id", "object", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                    **extra}

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if turn.reasoning is not None and self.reasoning_field is not None:
            for piece in halves(turn.reasoning):
                yield chunk({self.reasoning_field: piece})
        message = completion["choices"][0]["message"]
        calls = iter(message.get("tool_calls") or [])
        index = 0
        for part in turn.parts:
            if isinstance(part, str):
                for piece in halves(part):
                    yield chunk({"content": piece})
                continue
            call = next(calls)
            yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for piece in halves(call["function"]["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            index += 1
        yield chunk({}, completion["choices"][0]["finish_reason"])
        if include_usage:
            yield {**base, "choices": [], "usage": completion["usage"]}


def check_tool_messages(messages: list[Any]) -> tuple[str, str | None] | None:
    """The API's 400 for tool messages that answer no call, or calls that no
    tool message answers (as (message, param)), or None.  The messages and
    params are the API's own (typo included), as its 400s quote them."""
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"Invalid type for 'messages[{index}]': expected an object.", f"messages.[{index}]"
        role = message.get("role")
        if role == "tool":
            if str(message.get("tool_call_id")) not in pending:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        "with 'tool_calls'.", f"messages.[{index}].role")
            pending.discard(str(message["tool_call_id"]))
            continue
        if pending:
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(sorted(pending))}", f"messages.[{index}].role")
        if role == "assistant":
            pending = {str(call.get("id")) for call in message.get("tool_calls") or [] if isinstance(call, dict)}
    return None


def vector_of(text: str, dimensions: int = 8) -> list[float]:
    """The fake's embedding of ``text``: stable, and different for different texts."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((byte - 127.5) / 127.5, 4) for byte in digest[:dimensions]]


def text_of(content: Any) -> str:
    """The text of a Chat Completions ``content`` (a string, or the text parts of a list)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str))
    return ""


def tool_results(messages: Any) -> list[ToolResult]:
    """Every ``tool`` message, its content flattened to text."""
    return [ToolResult(str(message.get("tool_call_id")), text_of(message.get("content")))
            for message in messages if isinstance(message, dict) and message.get("role") == "tool"]


def chat_seen(body: dict[str, Any]) -> Seen:
    """A Chat Completions (that is, canonical) request body in the kit's neutral view."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    system = [text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    seen = Seen(model=body.get("model", ""), stream=bool(body.get("stream")), system="\n".join(system) if system
                else None)
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        seen.messages.append((role if role in ("user", "assistant", "tool") else str(role),
                              text_of(message.get("content"))))
        for call in message.get("tool_calls") or [] if role == "assistant" else []:
            function = call.get("function") or {}
            try:
                arguments = serialization.loads(function.get("arguments") or "{}")
            except ValueError:
                arguments = {"<not JSON>": function.get("arguments")}
            seen.tool_calls.append((function.get("name"), arguments))
        if role == "tool":
            seen.tool_results.append((str(message.get("tool_call_id")), text_of(message.get("content"))))
        for part in message.get("content") if isinstance(message.get("content"), list) else []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                seen.images.append("base64:" + url[5:].split(";", 1)[0] if url.startswith("data:") else "url:" + url)
    seen.tool_names = [tool["function"]["name"] for tool in body.get("tools") or []
                       if isinstance(tool, dict) and isinstance(tool.get("function"), dict)]
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        seen.json_mode = "object"
    elif response_format.get("type") == "json_schema":
        seen.json_mode = "schema"
        seen.json_schema = (response_format.get("json_schema") or {}).get("schema")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop")
    for name, value in (("max_tokens", max_tokens), ("stop", [stop] if isinstance(stop, str) else stop),
                        ("temperature", body.get("temperature")), ("top_p", body.get("top_p")),
                        ("seed", body.get("seed"))):
        if value is not None:
            seen.params[name] = value
    for name in EXTRA_PARAMS:
        if name in body:
            seen.params[name] = body[name]
    seen.raw = body
    return seen


__all__ = ["ERROR_TYPES", "OpenAIChatAPI", "chat_seen", "check_tool_messages", "text_of", "tool_results", "vector_of"]
