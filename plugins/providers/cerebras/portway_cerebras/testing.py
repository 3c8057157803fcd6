"""A fake of Cerebras Inference's Chat Completions, for tests.

Its rules come from Cerebras's own documentation and SDK, not from the
adapter (see the README for each source), so an adapter that forgets a quirk
sends what this fake refuses:

- ``frequency_penalty``, ``presence_penalty``, ``logit_bias``,
  ``parallel_tool_calls`` and ``service_tier`` are a 400;
- roles are ``system``, ``user``, ``assistant`` and ``tool``
  (``cerebras-cloud-sdk-python`` ``completion_create_params.py``);
- an assistant message has no ``reasoning_content`` (its field is ``reasoning``);
- answers carry a turn's reasoning as ``reasoning``;
- errors are a bare ``{"message", "type", "param", "code"}`` object; a
  request with no ``Authorization`` header is a 403 ``{"detail": "Not authenticated"}``;
- only ``POST /v1/chat/completions`` exists (no embeddings).
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

#: The ``type`` and ``code`` of Cerebras's error object for each status the fake answers with.
ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "wrong_api_key"),
    404: ("not_found_error", "model_not_found"),
    429: ("too_many_requests_error", "request_quota_exceeded"),
}


class CerebrasAPI(OpenAIChatAPI):
    refused_params = frozenset({"frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls",
                                "service_tier"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    refuses_reasoning_in_history = True
    reasoning_field = "reasoning"

    def install(self, upstream: FakeUpstream) -> CerebrasAPI:
        upstream.add(self.chat_path, self._chat)
        return self

    def _chat(self, request: RecordedRequest) -> Reply:
        if not request.headers.get("authorization"):
            self.refusals.append((request, 403, "Not authenticated"))
            return json_reply({"detail": "Not authenticated"}, 403)
        return super()._chat(request)

    def authorize(self, request: RecordedRequest) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or (self.api_key is not None and key.strip() != self.api_key):
            return "Wrong API Key"
        return None

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        error_type, code = ERROR_TYPES.get(status, ("internal_server_error", None))
        if status == 401:
            param = "api_key"
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        body: dict[str, Any] = {"message": message, "type": error_type, "param": param, "code": code}
        return json_reply(body, status, headers)


__all__ = ["CerebrasAPI"]
