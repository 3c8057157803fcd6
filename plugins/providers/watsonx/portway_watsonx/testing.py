"""A fake of IBM watsonx.ai's chat API and of IBM Cloud IAM's token endpoint.

Install it on a :class:`~portway.testing.FakeUpstream`; point the
``watsonx`` provider's ``base_url`` at ``upstream.url`` and its ``iam_url``
at ``upstream.url + IAM_PATH``::

    api = WatsonxAPI([say("Hello.")], api_key="ibm-api-key-123", project_id="p-1")
    with FakeUpstream() as upstream:
        api.install(upstream)

Its rules come from IBM's documentation and SDKs, not from the adapter
(``IBM/watsonx-ai-node-sdk`` ``src/vml_v1.ts`` ``textChat``: the body's keys;
``src/types/messages.ts``: the messages; ``src/types/vml_v1.ts``: answers,
``TextChatResponseFormat``, ``ToolChoiceOption``, ``ApiErrorResponse``; IBM
Cloud IAM's "Get an IAM token by using an API key"):

- ``POST /identity/token`` takes ``grant_type=urn:ibm:params:oauth:grant-type:
  apikey&apikey=<key>`` form-encoded and answers ``{access_token, refresh_token:
  "not_supported", token_type, expires_in, expiration, scope}`` (each token new;
  :attr:`WatsonxAPI.token_exchanges` counts them; :attr:`WatsonxAPI.iam_delay`
  slows them); a wrong key is IAM's 400 ``BXNIM0415E``;
- ``POST /ml/v1/text/chat`` and ``/ml/v1/text/chat_stream`` need the
  ``version`` query parameter, a bearer token IAM issued (a 401 otherwise),
  ``model_id`` and exactly one of ``project_id`` / ``space_id`` (the one the
  fake was given); every other key must be one of ``textChat``'s
  (:data:`CHAT_KEYS`: no ``model``, ``stream``, ``stream_options``, ``user``),
  ``tool_choice`` only in its named form, ``tool_choice_option`` ``none``,
  ``auto`` or ``required``, ``response_format`` ``json_object`` only, roles
  ``system``, ``user``, ``assistant``, ``tool``, ``control``, and string content
  except a user's;
- it answers ``{id, model_id, model_version, choices, created, created_at,
  usage, system}`` (no ``model``, no ``object``), and streams SSE events
  ``id: n`` / ``event: message`` / ``data: {...}``, tool calls whole in one
  delta, the usage on the last event (the one with the ``finish_reason``),
  and no ``[DONE]``; ``POST /ml/v1/text/embeddings`` (``embedText``: ``model_id``,
  ``inputs``, the scope) answers ``{model_id, results: [{embedding}],
  created_at, input_token_count}``; errors as ``{"errors": [{"code", "message",
  "more_info"}], "trace", "status_code"}``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs

from portway import serialization
from portway.testing.conformance import Seen
from portway.testing.openai_chat import OpenAIChatAPI, chat_seen, check_tool_messages, tool_results, vector_of
from portway.testing.script import Call, Step, ToolCall, Turn, halves
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

IAM_PATH = "/identity/token"
CHAT_PATH = "/ml/v1/text/chat"
STREAM_PATH = "/ml/v1/text/chat_stream"
EMBEDDINGS_PATH = "/ml/v1/text/embeddings"
#: The keys ``embedText`` sends.
EMBEDDING_KEYS = frozenset({"model_id", "inputs", "space_id", "project_id", "parameters"})
#: The keys ``textChat`` sends.
CHAT_KEYS = frozenset({
    "model_id", "messages", "space_id", "project_id", "tools", "tool_choice_option", "tool_choice",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "max_tokens", "max_completion_tokens", "n",
    "presence_penalty", "response_format", "seed", "stop", "temperature", "top_p", "guided_choice", "guided_regex",
    "guided_grammar", "guided_json", "repetition_penalty", "length_penalty", "include_reasoning", "reasoning_effort",
    "time_limit",
})
STRING_CONTENT_ROLES = frozenset({"system", "assistant", "tool", "control"})
ROLES = STRING_CONTENT_ROLES | {"user"}
ERROR_CODES = {400: "json_validation_error", 401: "authentication_token_not_valid", 403: "authorization_rejected",
               404: "model_not_supported", 429: "token_quota_reached", 500: "internal_error",
               503: "service_unavailable"}


def watsonx_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {"errors": [{"code": code or ERROR_CODES.get(status, "error"), "message": message,
                        "more_info": "https://cloud.ibm.com/apidocs/watsonx-ai"}],
            "trace": "0123456789abcdef0123456789abcdef", "status_code": status}


class WatsonxAPI(OpenAIChatAPI):
    """The fake; see the module docstring.  ``api_key``: the key IAM takes;
    ``project_id`` / ``space_id``: the scope the requests must name."""

    def __init__(self, script: Sequence[Step], *, api_key: str, project_id: str | None = None,
                 space_id: str | None = None, token_lifetime: int = 3600) -> None:
        super().__init__(script, api_key=api_key)
        self.scope = {"space_id": space_id} if space_id else {"project_id": project_id}
        self.token_lifetime = token_lifetime
        #: Every token IAM issued, in order.
        self.tokens: list[str] = []
        #: Seconds IAM takes to answer.
        self.iam_delay = 0.0
        self._lock = threading.Lock()
        counter = itertools.count(1)
        self._call_id = lambda: f"chatcmpl-tool-{next(counter):012d}"

    @property
    def token_exchanges(self) -> int:
        return len(self.tokens)

    def install(self, upstream: FakeUpstream) -> WatsonxAPI:
        upstream.add(IAM_PATH, self._iam)
        upstream.add(CHAT_PATH, self._chat)
        upstream.add(STREAM_PATH, self._chat)
        upstream.add(EMBEDDINGS_PATH, self._embed)
        return self

    # -- IAM ----------------------------------------------------------------------------------

    def _iam(self, request: RecordedRequest) -> Reply:
        form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded" \
                or form.get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey":
            return json_reply({"errorCode": "BXNIM0109E", "errorMessage": "Property missing or empty.",
                               "context": {}}, 400)
        if form.get("apikey") != self.api_key:
            return json_reply({"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found.",
                               "context": {}}, 400)
        with self._lock:
            token = f"iam-access-token-{len(self.tokens) + 1:04d}-0123456789"
            self.tokens.append(token)
        now = int(time.time())
        body = serialization.dumps({"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer",
                                    "expires_in": self.token_lifetime, "expiration": now + self.token_lifetime,
                                    "scope": "ibm openid"})
        if self.iam_delay:
            return Reply(chunks=[b"", body], delay=self.iam_delay)
        return Reply(body=body)

    # -- the rules ------------------------------------------------------------------------------

    def authorize(self, request: RecordedRequest) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            return "Failed to authenticate the request due to invalid token"
        return None

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        extra = sorted(key for key in body if key not in CHAT_KEYS)
        if extra:
            return f"Json document validation error: unexpected field(s) {', '.join(extra)}", extra[0]
        if not isinstance(body.get("model_id"), str) or not body["model_id"]:
            return "Json document validation error: 'model_id' is required", "model_id"
        scope = {key: body[key] for key in ("project_id", "space_id") if key in body}
        if scope != self.scope:
            return f"Either 'project_id' or 'space_id' must be given, and it must be {self.scope}", "project_id"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "Json document validation error: 'messages' is required", "messages"
        if isinstance(body.get("tool_choice"), str):
            return "Json document validation error: 'tool_choice' must be an object", "tool_choice"
        if body.get("tool_choice_option") not in (None, "none", "auto", "required"):
            return "Json document validation error: invalid 'tool_choice_option'", "tool_choice_option"
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") != "json_object":
            return f"response_format type {response_format.get('type')!r} is not supported", "response_format"
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return f"messages[{index}]: unknown role", f"messages[{index}].role"
            if message["role"] in STRING_CONTENT_ROLES and not isinstance(message.get("content"), str | None):
                return f"messages[{index}].content must be a string", f"messages[{index}].content"
            if message["role"] == "assistant" and "reasoning_content" in message:
                return f"messages[{index}]: unexpected field reasoning_content", f"messages[{index}]"
        return check_tool_messages(messages)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        return self._error(status, message, None, retry_after)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply(watsonx_error(status, message), status, headers)

    # -- answering ----------------------------------------------------------------------------------

    def _admit(self, request: RecordedRequest) -> dict[str, Any] | Reply:
        """The JSON body of a request with a token IAM issued and a ``version``; else the refusal."""
        problem = self.authorize(request)
        if problem is not None:
            return self._refuse(request, 401, problem)
        if not parse_qs(request.query).get("version"):
            return self._refuse(request, 400, "Missing query parameter 'version'")
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, "Json document validation error: the body is not an object")
        return body

    def _chat(self, request: RecordedRequest) -> Reply:
        body = self._admit(request)
        if isinstance(body, Reply):
            return body
        problem_param = self.check(body)
        if problem_param is not None:
            return self._refuse(request, 400, *problem_param)
        seen = Call(request, body, tool_results(body["messages"]))
        turn = self.script.next_turn(seen)
        if turn is None:
            return self._refuse(request, 400, f"fake watsonx: the script has no turn left for call {len(self.calls) + 1}")
        seen.answer = turn
        self.calls.append(seen)
        answer = self.completion(turn, body["model_id"])
        if request.path == STREAM_PATH:
            events = [f"id: {i}\nevent: message\ndata: {serialization.dumps_str(c)}\n\n".encode()
                      for i, c in enumerate(self.chunks(turn, answer, True), start=1)]
            return Reply(chunks=events, delay=self.stream_delay, content_type="text/event-stream",
                         disconnected=self.disconnected)
        return json_reply(answer)

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        openai = super().completion(turn, model)
        message = openai["choices"][0]["message"]
        for key in ("refusal", "annotations"):
            message.pop(key, None)
        usage = openai["usage"]
        return {"id": openai["id"], "model_id": model, "model_version": "3.3.0", "choices": [
                    {"index": 0, "message": message, "finish_reason": openai["choices"][0]["finish_reason"]}],
                "created": openai["created"], "created_at": "2026-01-01T00:00:00.000Z",
                "usage": {key: usage[key] for key in ("completion_tokens", "prompt_tokens", "total_tokens")},
                "system": {"warnings": []}}

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        base = {key: completion[key] for key in ("id", "model_id", "model_version", "created", "created_at")}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "finish_reason": finish, "delta": delta}], **extra}

        yield chunk({"role": "assistant", "content": ""})
        calls = iter(completion["choices"][0]["message"].get("tool_calls") or [])
        for index, part in enumerate(turn.parts):
            if isinstance(part, ToolCall):
                yield chunk({"tool_calls": [{"index": index, **next(calls)}]})
                continue
            for piece in halves(part):
                yield chunk({"content": piece})
        yield chunk({}, completion["choices"][0]["finish_reason"], usage=completion["usage"])

    def _embed(self, request: RecordedRequest) -> Reply:
        body = self._admit(request)
        if isinstance(body, Reply):
            return body
        inputs = body.get("inputs")
        if sorted(set(body) - EMBEDDING_KEYS) or not body.get("model_id") \
                or not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            return self._refuse(request, 400, "Json document validation error: expected model_id, inputs (strings) "
                                "and project_id or space_id only", "inputs")
        if {key: body[key] for key in ("project_id", "space_id") if key in body} != self.scope:
            return self._refuse(request, 400, f"Either 'project_id' or 'space_id' must be given: {self.scope}")
        self.embedding_requests.append(body)
        return json_reply({"model_id": body["model_id"], "results": [{"embedding": vector_of(text)} for text in inputs],
                           "created_at": "2026-01-01T00:00:00.000Z",
                           "input_token_count": sum(len(text.split()) for text in inputs)})

    # -- the neutral view ---------------------------------------------------------------------------------

    def seen(self, call: Call) -> Seen:
        body = call.body
        view = chat_seen({**body, "model": body.get("model_id", ""), "stream": call.request.path == STREAM_PATH})
        option = body.get("tool_choice_option")
        if option is not None:
            view.params["tool_choice"] = option
        return view


__all__ = ["CHAT_KEYS", "CHAT_PATH", "EMBEDDINGS_PATH", "EMBEDDING_KEYS", "IAM_PATH", "STREAM_PATH", "WatsonxAPI",
           "watsonx_error"]
