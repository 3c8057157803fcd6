"""A fake of SambaNova Cloud's Chat Completions and Embeddings, for tests.

Its rules come from SambaNova's API reference and its official SDK
(``sambanova-python`` ``types/chat/completion_create_params.py``), not from
the adapter, so an adapter that forgets a quirk sends what this fake refuses:

- roles are ``system``, ``user``, ``assistant`` and ``tool``;
- ``user`` is no request parameter (a 400 naming it);
- ``response_format`` is ``json_object`` or ``json_schema`` (``text`` is
  "not supported yet");
- answers carry a turn's reasoning as ``reasoning``.

``frequency_penalty`` and ``presence_penalty`` are taken ("accepted for API
compatibility") and do nothing, as on SambaNova.  Errors are OpenAI's shape.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI


class SambaNovaAPI(OpenAIChatAPI):
    refused_params = frozenset({"user"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    response_formats = frozenset({"json_object", "json_schema"})
    reasoning_field = "reasoning"


__all__ = ["SambaNovaAPI"]
