"""A fake of NVIDIA NIM's API catalog (Chat Completions and Embeddings), for tests.

Its rules come from NVIDIA's own client, ``langchain-nvidia-ai-endpoints``
(``_common.py``, ``chat_models.py``, ``embeddings.py``), not from the
adapter, so an adapter that forgets a quirk sends what this fake refuses:

- ``max_completion_tokens`` is refused ("remove max_tokens once all models
  support max_completion_tokens": not all do);
- an embeddings request to a retrieval model (``*embedqa*``) without
  ``input_type`` (``query`` or ``passage``) is a 400;
- errors are problem details: ``{"type": "about:blank", "status", "title", "detail"}``.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity",
          429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class NvidiaNimAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens"})

    def _embeddings(self, request: RecordedRequest) -> Reply:
        try:
            body = request.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "embedqa" in str(body.get("model")) and \
                body.get("input_type") not in ("query", "passage"):
            return self._refuse(request, 400, "'input_type' parameter is required for asymmetric models")
        return super()._embeddings(request)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        body = {"type": "about:blank", "status": status, "title": TITLES.get(status, "Error"), "detail": message}
        return json_reply(body, status, headers)


__all__ = ["NvidiaNimAPI"]
