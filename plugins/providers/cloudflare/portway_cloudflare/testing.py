"""A fake Cloudflare Workers AI account, for the ``cloudflare`` provider's
tests: the OpenAI-compatible ``/ai/v1/chat/completions`` and
``/ai/v1/embeddings`` under ``/client/v4/accounts/{account_id}``, and
``/ai/run/{model}`` for reranker models.

Install it on a :class:`~portway.testing.FakeUpstream`; the provider's
``base_url`` is ``upstream.url + api.root``::

    api = WorkersAI([say("Hi.")], api_token="cf-token", account_id="abc123").install(upstream)

Rules, from Cloudflare's docs (``workers-ai/configuration/open-ai-compatibility.mdx``,
``features/json-mode.mdx``, the reranker's schema in workers-types
``Ai_Cf_Baai_Bge_Reranker_Base_Input`` / ``_Output``) and the API's v4
envelope:

- only the account's own paths exist; another account id is the API's 404
  (code 7003, "Could not route to ...");
- ``Authorization: Bearer <token>``, else 401 (code 10000, "Authentication error");
- JSON mode does not stream: ``response_format`` json with ``stream`` is a 400;
- ``/ai/run/{reranker}`` needs ``query`` and ``contexts`` (``[{"text"}]``),
  takes ``top_k``, and answers ``{"result": {"response": [{"id", "score"}]},
  "success": true, "errors": [], "messages": []}``;
- errors are the v4 envelope: ``{"success": false, "errors": [{"code",
  "message"}], "messages": [], "result": null}``.
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import RerankCall, relevance
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

#: The rerankers the fake serves by ``/ai/run``.
RERANKERS = frozenset({"@cf/baai/bge-reranker-base"})
#: Cloudflare API error codes the fake answers with.
CODES = {400: 5006, 401: 10000, 403: 10000, 404: 7003, 429: 3040, 500: 3043, 503: 3040}


def envelope_error(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


class WorkersAI(OpenAIChatAPI):
    """The fake; see the module docstring."""

    def __init__(self, script: Any = (), *, api_token: str | None = None, account_id: str = "acc0123") -> None:
        self.root = f"/client/v4/accounts/{account_id}/ai"
        super().__init__(script, api_key=api_token, chat_path=self.root + "/v1/chat/completions",
                         embeddings_path=self.root + "/v1/embeddings")
        #: The rerank requests it accepted (the conformance kit reads them).
        self.rerank_calls: list[RerankCall] = []

    def install(self, upstream: FakeUpstream) -> WorkersAI:
        super().install(upstream)
        upstream.add(self.root + "/run/*", self._run)
        upstream.add("/client/v4/*", self._unrouted)
        self.disconnected = upstream.disconnected
        return self

    def authorize(self, request: RecordedRequest) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or (self.api_key is not None and token != self.api_key):
            return "Authentication error"
        return None

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        response_format = body.get("response_format")
        if body.get("stream") and isinstance(response_format, dict) and \
                response_format.get("type") in ("json_object", "json_schema"):
            return "JSON Mode currently doesn't support streaming", "response_format"
        return super().check(body)

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        return self._error(status, message, None, retry_after)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply(envelope_error(CODES.get(status, 3043), message), status, headers)

    def _unrouted(self, request: RecordedRequest) -> Reply:
        return self._refuse(request, 404, f"Could not route to {request.path}, perhaps your object identifier is "
                            "invalid?")

    def _run(self, request: RecordedRequest) -> Reply:
        problem = self.authorize(request)
        if problem is not None:
            return self._refuse(request, 401, problem)
        model = request.path[len(self.root + "/run/"):]
        if model not in RERANKERS:
            return self._refuse(request, 400, f"No such model {model} or task")
        try:
            body = request.json()
        except ValueError:
            body = None
        contexts = body.get("contexts") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not isinstance(contexts, list) \
                or not all(isinstance(c, dict) and isinstance(c.get("text"), str) for c in contexts):
            return self._refuse(request, 400, "AiError: Bad input: must have required properties query, contexts")
        texts = [c["text"] for c in contexts]
        scores = [relevance(body["query"], text) for text in texts]
        self.rerank_calls.append(RerankCall(model, body["query"], texts, body.get("top_k"), scores, request))
        ranked = sorted(range(len(texts)), key=lambda i: -scores[i])
        if body.get("top_k") is not None:
            ranked = ranked[: body["top_k"]]
        return json_reply({"result": {"response": [{"id": i, "score": scores[i]} for i in ranked]},
                           "success": True, "errors": [], "messages": []})


__all__ = ["RERANKERS", "WorkersAI", "envelope_error"]
