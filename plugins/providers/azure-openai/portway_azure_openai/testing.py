"""A fake Azure OpenAI resource, as strict as the real one about what this
adapter gets wrong easily: URLs, ``api-version``, credentials, reasoning
deployments.

Install it on a :class:`~portway.testing.FakeUpstream` and point the
``azure-openai`` provider's ``base_url`` at ``upstream.url``::

    api = AzureOpenAIAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key="azure-key",
                         deployments={"chat": "gpt-4o-2024-08-06", "reasoner": "o4-mini"})
    with FakeUpstream() as upstream:
        api.install(upstream)

Built from Azure's REST reference for API version 2024-10-21 (the
``createChatCompletionResponse`` / ``createChatCompletionStreamResponse``
and error components of ``articles/ai-foundry/openai/includes/api-versions/
latest-inference.md`` in MicrosoftDocs/azure-ai-docs), its content-filter
pages (``concepts/content-filter.md``, ``content-filter-annotations``), the
v1 API page (``api-version-lifecycle.md``) and openai-python's
``lib/azure.py`` (the ``api-key`` header, deployments in the path):

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``
  and ``.../embeddings`` for each deployment given; ``POST
  /openai/v1/chat/completions`` and ``/openai/v1/embeddings`` with the
  deployment as ``model`` and no dated ``api-version``;
- answers carry Azure's annotations: ``prompt_filter_results`` and each
  choice's ``content_filter_results``; a stream opens with Azure's
  prompt-filter chunk (no choices, empty ``id`` and ``model``, ``created:
  0``), then OpenAI's chunks (text in two deltas, tool arguments in two),
  the usage chunk when ``stream_options.include_usage`` asks for it, and
  ``data: [DONE]``;
- it refuses, in Azure's shapes: a missing or wrong ``api-key`` / bearer
  token (401), a missing or other ``api-version`` on the deployments path
  (404 "Resource not found"), a dated one on the v1 path, an unknown v1
  deployment (404 ``DeploymentNotFound``), ``stream_options`` with an API
  version older than 2024-09-01 or without ``stream``, ``max_tokens`` for a
  reasoning model (400 ``unsupported_parameter``), a tool message that
  answers no earlier tool call, and a call after the script is used up.

Embedding calls do not use the script: each input gets a small fixed
vector (base64 float32 when ``encoding_format`` is ``base64``).
"""

from __future__ import annotations

import array
import base64
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from portway import serialization
from portway.testing.script import Call, Script, Step, ToolCall, ToolResult, Turn, halves, id_maker
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply

CREATED = 1767225600
#: What Azure's filters report for harmless text.
SAFE = {category: {"filtered": False, "severity": "safe"} for category in ("hate", "self_harm", "sexual", "violence")}
PROMPT_FILTER_RESULTS = [{"prompt_index": 0, "content_filter_results": {**SAFE, "jailbreak": {"filtered": False,
                                                                                               "detected": False}}}]
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")
RESOURCE_NOT_FOUND = {"error": {"code": "404", "message": "Resource not found"}}


def azure_error(message: str, *, code: str | None = None, error_type: str | None = "invalid_request_error",
                param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class AzureOpenAIAPI:
    """The fake; see the module docstring.  ``deployments`` maps each
    deployment name to the model it serves (a list: each serves a model of
    its own name); ``api_key`` / ``ad_token``: the credentials it accepts
    (any non-empty ``api-key`` when both are None)."""

    def __init__(self, script: Sequence[Step] = (), *, api_key: str | None = None, ad_token: str | None = None,
                 deployments: Mapping[str, str] | Sequence[str] = ("test-model",),
                 api_version: str = "2024-10-21") -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.ad_token = ad_token
        self.deployments = dict(deployments) if isinstance(deployments, Mapping) else {d: d for d in deployments}
        self.api_version = api_version
        self.calls: list[Call] = []
        #: (request, status, body) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, dict[str, Any]]] = []
        self.disconnected = threading.Event()
        #: Seconds between streamed events.
        self.stream_delay = 0.0
        self._completion_id = id_maker("chatcmpl-")
        self._call_id = id_maker("call_")

    def install(self, upstream: FakeUpstream) -> AzureOpenAIAPI:
        for deployment in self.deployments:
            for operation in ("chat/completions", "embeddings"):
                upstream.add(f"/openai/deployments/{quote(deployment, safe='')}/{operation}", self)
        upstream.add("/openai/v1/chat/completions", self)
        upstream.add("/openai/v1/embeddings", self)
        self.disconnected = upstream.disconnected
        return self

    # -- answering ----------------------------------------------------------------

    def __call__(self, request: RecordedRequest) -> Reply:
        refused = self._check_auth(request)
        if refused is not None:
            return refused
        query = parse_qs(request.query)
        versions = query.get("api-version", [])
        v1 = request.path.startswith("/openai/v1/")
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._refuse(request, 400, azure_error("We could not parse the JSON body of your request."))
        if v1:
            if versions and versions[0] not in ("preview", "latest"):
                return self._refuse(request, 400, {"error": {"code": "BadRequest",
                                                             "message": "API version not supported"}})
            deployment = body.get("model")
            if not isinstance(deployment, str) or not deployment:
                return self._refuse(request, 400, azure_error("Missing required parameter: 'model'.", param="model",
                                                              code="missing_required_parameter"))
            if deployment not in self.deployments:
                return self._refuse(request, 404, {"error": {"code": "DeploymentNotFound", "message": (
                    "The API deployment for this resource does not exist. If you created the deployment within the "
                    "last 5 minutes, please wait a moment and try again.")}})
            version = "v1"
        else:
            deployment = unquote(request.path.split("/")[3])
            if versions != [self.api_version]:
                return self._refuse(request, 404, RESOURCE_NOT_FOUND)
            version = versions[0]
        model = self.deployments[deployment]
        if request.path.endswith("/embeddings"):
            return self._embeddings(body, model)
        problem = check_chat(body, model, version)
        if problem is not None:
            return self._refuse(request, 400, problem)
        seen = Call(request, body, tool_results(body["messages"]))
        step = self.script.next_turn(seen)
        if step is None:
            return self._refuse(request, 400, azure_error(
                f"fake Azure OpenAI: the script has no turn left for call {len(self.calls) + 1}"))
        if isinstance(step, Reply):  # a scripted failure (see error())
            return step
        seen.answer = step
        self.calls.append(seen)
        completion = self._completion(step, model)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return sse_reply(stream_chunks(completion, include_usage), done=True, delay=self.stream_delay)
        return json_reply(completion, headers={"apim-request-id": "fake-apim-request"})

    def _check_auth(self, request: RecordedRequest) -> Reply | None:
        key = request.headers.get("api-key")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        anything = self.api_key is None and self.ad_token is None
        if token and not key:
            if token == self.ad_token or anything:
                return None
            return self._refuse(request, 401, {"statusCode": 401, "message": (
                "Unauthorized. Access token is missing, invalid, audience is incorrect "
                "(https://cognitiveservices.azure.com), or have expired.")})
        if not key:
            return self._refuse(request, 401, {"error": {"code": "401", "message": (
                "Access denied due to missing subscription key. Make sure to include subscription key when making "
                "requests to an API.")}})
        if not anything and key != self.api_key:
            return self._refuse(request, 401, {"error": {"code": "401", "message": (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource.")}})
        return None

    def _refuse(self, request: RecordedRequest, status: int, body: dict[str, Any]) -> Reply:
        self.refusals.append((request, status, body))
        return json_reply(body, status)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """An error answer in Azure's shape (a script step may return it):
        a 429 as Azure's rate limiter sends it, with ``retry-after`` and
        ``retry-after-ms``; other statuses in OpenAI's error object."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers = {"retry-after": retry_after, "retry-after-ms": str(int(float(retry_after) * 1000))}
        if status == 429:
            return json_reply({"error": {"code": "429", "message": message}}, status, headers)
        codes = {400: "BadRequest", 401: "401", 403: "PermissionDenied", 404: "DeploymentNotFound"}
        if status >= 500:
            return json_reply(azure_error(message, error_type="server_error"), status, headers)
        return json_reply({"error": {"code": codes.get(status, str(status)), "message": message}}, status, headers)

    def _completion(self, turn: Turn, model: str) -> dict[str, Any]:
        text = "".join(part for part in turn.parts if isinstance(part, str))
        calls = [{"id": part.id or self._call_id(), "type": "function",
                  "function": {"name": part.name, "arguments": serialization.dumps_str(part.arguments)}}
                 for part in turn.parts if isinstance(part, ToolCall)]
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        usage = {"prompt_tokens": turn.input_tokens, "completion_tokens": turn.output_tokens,
                 "total_tokens": turn.input_tokens + turn.output_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        return {"id": self._completion_id(), "object": "chat.completion", "created": CREATED, "model": model,
                "system_fingerprint": "fp_azure", "prompt_filter_results": PROMPT_FILTER_RESULTS,
                "choices": [{"index": 0, "finish_reason": finish_reason(turn, bool(calls)), "logprobs": None,
                             "message": message, "content_filter_results": SAFE}],
                "usage": usage}

    @staticmethod
    def _embeddings(body: dict[str, Any], model: str) -> Reply:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
        data = []
        for index, _ in enumerate(texts):
            vector = [0.5, -0.25, 0.125 * (index + 1)]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(float32_le(vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return json_reply({"object": "list", "data": data, "model": model,
                           "usage": {"prompt_tokens": 2 * len(texts), "total_tokens": 2 * len(texts)}})

    # -- the neutral view, for the conformance kit --------------------------------------

    def seen(self, call: Call) -> Any:
        """``call`` as :class:`portway.testing.conformance.Seen`."""
        from portway.testing.conformance import Seen

        return Seen(**seen_fields(call))


def finish_reason(turn: Turn, calls_tools: bool) -> str:
    if calls_tools:
        return "tool_calls"
    return "length" if getattr(turn, "truncated", False) else "stop"  # a turn cut at the token limit


def float32_le(vector: list[float]) -> bytes:
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def check_chat(body: dict[str, Any], model: str, version: str) -> dict[str, Any] | None:
    """Azure's refusal of a chat ``body`` for a deployment of ``model`` at
    API ``version``, or None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return azure_error("'messages' is a required property", param="messages")
    if "stream_options" in body:
        if version != "v1" and version[:10] < "2024-09-01":
            return azure_error("Unrecognized request argument supplied: stream_options")
        if not body.get("stream"):
            return azure_error("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                               param="stream_options", code="invalid_value")
    if "max_tokens" in body and model.startswith(REASONING_MODELS):
        return azure_error("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                           "'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    answered: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return azure_error(f"messages[{index}] is not an object", param=f"messages[{index}]")
        for tool_call in message.get("tool_calls") or ():
            if isinstance(tool_call, dict):
                answered.add(str(tool_call.get("id")))
        if message.get("role") == "tool" and message.get("tool_call_id") not in answered:
            return azure_error("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                               "message with 'tool_calls'.", param=f"messages.[{index}].role")
    return None


def stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """``completion`` as Azure streams it (see the module docstring)."""
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"], "system_fingerprint": completion["system_fingerprint"]}
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None,
                                     "content_filter_results": SAFE if delta.get("content") else {}}],
                "usage": None}

    chunks = [{"choices": [], "created": 0, "id": "", "model": "", "object": "",
               "prompt_filter_results": completion["prompt_filter_results"]},
              chunk({"role": "assistant", "content": "", "refusal": None})]
    for piece in halves(message["content"]) if message["content"] else ():
        chunks.append(chunk({"content": piece}))
    for index, tool_call in enumerate(message.get("tool_calls") or ()):
        chunks.append(chunk({"tool_calls": [{"index": index, "id": tool_call["id"], "type": "function",
                                             "function": {"name": tool_call["function"]["name"],
                                                          "arguments": ""}}]}))
        for piece in halves(tool_call["function"]["arguments"]):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    return ""


def tool_results(messages: Any) -> list[ToolResult]:
    """The ``role: tool`` messages of an OpenAI-format conversation."""
    return [ToolResult(str(m.get("tool_call_id")), text_of(m.get("content")))
            for m in messages if isinstance(m, dict) and m.get("role") == "tool"] if isinstance(messages, list) else []


def seen_fields(call: Call) -> dict[str, Any]:
    """What an OpenAI-format chat request asked for, in the conformance
    kit's neutral terms."""
    body = call.body
    path = call.request.path
    model = body.get("model") if path.startswith("/openai/v1/") else unquote(path.split("/")[3])
    system = [text_of(m.get("content")) for m in body["messages"] if m.get("role") in ("system", "developer")]
    messages, images, calls = [], [], []
    for message in body["messages"]:
        role = message.get("role")
        if role in ("user", "assistant", "tool"):
            messages.append((role, text_of(message.get("content"))))
        for part in message.get("content") if isinstance(message.get("content"), list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part["image_url"]["url"]
                images.append(f"base64:{url[5:].split(';')[0]}" if url.startswith("data:") else f"url:{url}")
        for tool_call in message.get("tool_calls") or ():
            calls.append((tool_call["function"]["name"], serialization.loads(tool_call["function"]["arguments"] or "{}")))
    response_format = body.get("response_format") or {}
    stop = body.get("stop")
    params = {"max_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
              "stop": [stop] if isinstance(stop, str) else stop, "temperature": body.get("temperature"),
              "top_p": body.get("top_p"), "seed": body.get("seed")}
    return {
        "model": model, "stream": bool(body.get("stream")), "system": "\n".join(system) if system else None,
        "messages": messages, "tool_names": [t["function"]["name"] for t in body.get("tools") or ()],
        "tool_calls": calls, "tool_results": [(r.call_id, r.text) for r in call.tool_results], "images": images,
        "json_mode": response_format.get("type") if response_format.get("type") != "text" else None,
        "json_schema": (response_format.get("json_schema") or {}).get("schema"),
        "params": {k: v for k, v in params.items() if v is not None},
    }


__all__ = ["AzureOpenAIAPI", "check_chat", "seen_fields", "stream_chunks"]
