"""Fakes of Hugging Face's inference servers, for the ``huggingface``
provider's tests: the Inference Providers router / a TGI endpoint
(OpenAI-compatible chat) and a TEI endpoint (``POST /embed``).

Install on a :class:`~portway.testing.FakeUpstream`; point the provider's
``base_url`` at ``upstream.url + "/v1"`` and ``embeddings_url`` at
``upstream.url``::

    api = HuggingFaceAPI([say("Hi.")], api_key="hf_test").install(upstream)

The chat rules are the chat-completion request spec that the router and
TGI's Messages API share (huggingface.js
``packages/tasks/src/tasks/chat-completion/spec/input.json``, rendered in
hub-docs ``docs/inference-providers/tasks/chat-completion.md``): the fields
``frequency_penalty``, ``logprobs``, ``max_tokens``, ``messages``,
``model``, ``presence_penalty``, ``response_format`` (``text``,
``json_object``, ``json_schema``), ``seed``, ``stop`` (at most 4),
``stream``, ``stream_options``, ``temperature``, ``tool_choice``,
``tool_prompt``, ``tools``, ``top_logprobs``, ``top_p``; roles ``system``,
``user``, ``assistant``, ``tool``.  Any other field is refused (422, as
TGI's strict deserialisation does; the router passes providers' own 400s),
so ``n``, ``max_completion_tokens``, ``user`` or a ``developer`` message
that leak through are caught.  Errors are TGI's ``{"error", "error_type"}``.

``POST /embed`` follows TEI's OpenAPI (``docs/openapi.json``:
``EmbedRequest`` with ``inputs``, ``normalize``, ``truncate``,
``truncation_direction``, ``prompt_name``), answering a list of vectors and
the ``x-compute-tokens`` header.
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI, vector_of
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

#: The request fields of the chat-completion spec.
CHAT_FIELDS = frozenset({"frequency_penalty", "logprobs", "max_tokens", "messages", "model", "presence_penalty",
                         "response_format", "seed", "stop", "stream", "stream_options", "temperature", "tool_choice",
                         "tool_prompt", "tools", "top_logprobs", "top_p"})
EMBED_FIELDS = frozenset({"inputs", "normalize", "truncate", "truncation_direction", "prompt_name"})
MAX_STOP = 4
#: TGI's ``error_type`` by status (``ErrorResponse`` in TGI's and TEI's OpenAPI).
ERROR_TYPES = {413: "validation", 422: "validation", 424: "generation", 429: "overloaded", 503: "unhealthy"}


class HuggingFaceAPI(OpenAIChatAPI):
    """The router / TGI fake, with TEI's ``/embed`` beside it."""

    roles = frozenset({"system", "user", "assistant", "tool"})

    def __init__(self, script: Any = (), *, api_key: str | None = None) -> None:
        super().__init__(script, api_key=api_key)
        #: The body of every accepted ``/embed`` request.
        self.embed_requests: list[dict[str, Any]] = []

    def install(self, upstream: FakeUpstream) -> HuggingFaceAPI:
        super().install(upstream)
        upstream.add("/embed", self._embed)
        self.disconnected = upstream.disconnected
        return self

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        unknown = sorted(set(body) - CHAT_FIELDS)
        if unknown:
            return f"Failed to deserialize the JSON body into the target type: unknown field `{unknown[0]}`", \
                unknown[0]
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > MAX_STOP:
            return f"Input validation error: `stop` supports up to {MAX_STOP} stop sequences", "stop"
        return super().check(body)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        status = 422 if status == 400 and param is not None else status
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": message, "error_type": ERROR_TYPES.get(status, "http")}, status, headers)

    def _embed(self, request: RecordedRequest) -> Reply:
        problem = self.authorize(request)
        if problem is not None:
            return self._refuse(request, 401, problem)
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "inputs" not in body:
            return self._refuse(request, 422, "Failed to deserialize the JSON body into the target type: "
                                "missing field `inputs`", "inputs")
        unknown = sorted(set(body) - EMBED_FIELDS)
        if unknown:
            return self._refuse(request, 422, f"Failed to deserialize the JSON body into the target type: "
                                f"unknown field `{unknown[0]}`", unknown[0])
        inputs = [body["inputs"]] if isinstance(body["inputs"], str) else body["inputs"]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
            return self._refuse(request, 422, "inputs must be a string or a list of strings", "inputs")
        self.embed_requests.append(body)
        tokens = sum(len(text.split()) for text in inputs)
        return json_reply([vector_of(text) for text in inputs], headers={"x-compute-tokens": str(tokens)})


__all__ = ["CHAT_FIELDS", "HuggingFaceAPI"]
