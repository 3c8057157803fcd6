"""A fake of Perplexity's Sonar Chat Completions API.

Its rules come from Perplexity's documentation and its own errors, not from
the adapter:

- https://docs.perplexity.ai/api-reference/chat-completions-post: the roles
  are ``system``, ``user`` and ``assistant``; answers carry ``citations`` (URLs)
  and ``search_results`` (title, url, date) at the top level, in whole answers
  and in each streamed chunk; the length limit is ``max_tokens``;
- https://docs.perplexity.ai/guides/structured-outputs: ``response_format``
  is ``json_schema`` (or ``regex``), not ``json_object``;
- "After the (optional) system message(s), user and assistant roles should
  be alternating." is a 400 of type ``invalid_message``
  (perplexityai/api-discussion#265); errors are
  ``{"error": {"message", "type", "code": <status>}}``;
- there are no tools and no ``/embeddings``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Turn
from portway.testing.upstream import FakeUpstream, Reply, json_reply

CITATIONS = ["https://en.wikipedia.org/wiki/Paris", "https://www.meteo.fr/"]
SEARCH_RESULTS = [{"title": "Paris - Wikipedia", "url": CITATIONS[0], "date": "2026-11-01"},
                  {"title": "Météo-France", "url": CITATIONS[1], "date": "2026-11-29"}]
ALTERNATE = "After the (optional) system message(s), user and assistant roles should be alternating."


class PerplexityAPI(OpenAIChatAPI):
    roles = frozenset({"system", "user", "assistant"})
    response_formats = frozenset({"text", "json_schema", "regex"})
    refused_params = frozenset({"tools"})

    def install(self, upstream: FakeUpstream) -> PerplexityAPI:
        upstream.add(self.chat_path, self._chat)
        return self

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        roles = [m.get("role") for m in body.get("messages") or () if isinstance(m, dict)]
        turns = roles[next((i for i, role in enumerate(roles) if role != "system"), len(roles)):]
        if turns and (turns[::2] != ["user"] * len(turns[::2]) or turns[1::2] != ["assistant"] * len(turns[1::2])):
            return ALTERNATE, "messages"
        return super().check(body)

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        completion = super().completion(turn, model)
        completion.update(citations=CITATIONS, search_results=SEARCH_RESULTS)
        completion["usage"]["search_context_size"] = "low"
        return completion

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        for chunk in super().chunks(turn, completion, include_usage):
            yield {**chunk, "citations": CITATIONS, "search_results": SEARCH_RESULTS}

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        error_type = "invalid_message" if message == ALTERNATE else "invalid_request_error" if status < 500 else \
            "internal_server_error"
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"message": message, "type": error_type, "code": status}}, status, headers)


__all__ = ["ALTERNATE", "CITATIONS", "PerplexityAPI", "SEARCH_RESULTS"]
