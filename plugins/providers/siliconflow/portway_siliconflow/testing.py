"""A fake SiliconFlow API, from its reference (docs.siliconflow.cn
``api-reference/chat-completions``, ``faqs/error-code``):

- the chat parameters it lists, and only those: OpenAI's
  ``max_completion_tokens``, ``seed``, ``presence_penalty``, ``logprobs``,
  ``logit_bias``, ``user`` and ``parallel_tool_calls`` are refused here
  (400 naming them);
- ``response_format`` ``text`` or ``json_object``; ``tool_choice`` "auto" or
  "none"; the roles system, user, assistant, tool;
- reasoning comes back as ``reasoning_content``;
- ``POST /v1/rerank`` (``api-reference/rerank``): documents as strings,
  results sorted by score and cut to ``top_n``, each with ``index``,
  ``relevance_score`` and (with ``return_documents``) the document, and a
  ``tokens`` count; scores are :func:`~portway.testing.script.relevance`;
- errors are ``{"code": <number>, "message", "data": null}``; a bad key is a
  401 with a bare text body.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import RerankCall, relevance
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

#: SiliconFlow's business codes per status (20012: "Model does not exist").
CODES = {400: 20015, 403: 30001, 404: 20012, 429: 50603, 500: 50500, 503: 50505}


class SiliconFlowAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens", "seed", "presence_penalty", "logprobs", "top_logprobs",
                                "logit_bias", "user", "parallel_tool_calls"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    response_formats = frozenset({"text", "json_object"})
    tool_choices = frozenset({"auto", "none"})
    reasoning_field = "reasoning_content"

    def install(self, upstream: FakeUpstream) -> SiliconFlowAPI:
        #: The rerank requests it accepted, with the scores it gave.
        self.rerank_calls: list[RerankCall] = []
        upstream.add("/v1/rerank", self._rerank)
        return super().install(upstream)  # type: ignore[return-value]

    def _rerank(self, request: RecordedRequest) -> Reply:
        body = self.authorized_body(request)
        if body is None:
            problem = self.authorize(request)
            return self._refuse(request, 401, problem) if problem else self._refuse(request, 400, "invalid JSON body")
        documents = body.get("documents")
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents) or not documents:
            return self._refuse(request, 400, "documents must be a non-empty list of strings", "documents")
        scores = [relevance(body["query"], document) for document in documents]
        self.rerank_calls.append(RerankCall(body["model"], body["query"], documents, body.get("top_n"), scores,
                                            request))
        order = sorted(range(len(documents)), key=lambda i: -scores[i])[:body.get("top_n") or len(documents)]
        results = [{"index": i, "relevance_score": scores[i],
                    **({"document": {"text": documents[i]}} if body.get("return_documents") else {})} for i in order]
        tokens = sum(len(d.split()) for d in documents) + len(body["query"].split())
        return json_reply({"id": "rerank-fake-1", "results": results,
                           "tokens": {"input_tokens": tokens, "output_tokens": 0}})

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        if status == 401:
            return Reply(status=401, body=message.encode(), content_type="text/plain", headers=headers)
        return json_reply({"code": CODES.get(status, 50500), "message": message, "data": None}, status, headers)


__all__ = ["SiliconFlowAPI"]
