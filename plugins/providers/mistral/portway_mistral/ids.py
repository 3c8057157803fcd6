"""Tool-call ids as Mistral takes them.

Mistral refuses (a 400, ``invalid_function_call``) any tool-call id in the
history that is not exactly nine ASCII letters or digits ("Tool call id was
call_… but must be a-z, A-Z, 0-9, with a length of 9.").  Ids made by other
providers (``call_…``, ``toolu_…``, UUIDs) are therefore replaced, in the
assistant's ``tool_calls`` and in the ``tool`` messages that answer them,
by a digest of the original: the same client id always becomes the same
Mistral id, in this request and in every later one, so a conversation stays
consistent however long it grows.  An id that already has Mistral's form
(every id Mistral itself returned) is sent as it is, so Mistral's ids
round-trip unchanged and the client only ever sees its own ids or Mistral's.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any

#: The form Mistral requires of a tool-call id.
MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")
_ALPHABET = string.ascii_letters + string.digits


def is_mistral_id(value: Any) -> bool:
    return isinstance(value, str) and MISTRAL_ID.fullmatch(value) is not None


def digest_id(client_id: str, attempt: int = 0) -> str:
    """Nine letters and digits derived from ``client_id`` (``attempt``: a
    different one, for the rare collision)."""
    number = int.from_bytes(hashlib.sha256(f"{attempt}:{client_id}".encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, rest = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[rest])
    return "".join(chars)


class ToolCallIds:
    """The client-id -> Mistral-id map of one request.  Ids already in
    Mistral's form are reserved first and kept; every other id gets its
    digest, one that no other id of the request uses (two different client
    ids never share a Mistral id)."""

    def __init__(self, client_ids: list[str]) -> None:
        self._map: dict[str, str] = {i: i for i in client_ids if is_mistral_id(i)}
        used = set(self._map.values())
        for client_id in client_ids:
            if client_id in self._map:
                continue
            attempt = 0
            candidate = digest_id(client_id)
            while candidate in used:
                attempt += 1
                candidate = digest_id(client_id, attempt)
            self._map[client_id] = candidate
            used.add(candidate)

    def __getitem__(self, client_id: str) -> str:
        return self._map[client_id]

    @property
    def changes_any(self) -> bool:
        return any(k != v for k, v in self._map.items())


def _ids_in(messages: list[Any]) -> list[str]:
    """Every tool-call id of the conversation, in order of appearance."""
    seen: dict[str, None] = {}
    for message in messages:
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or () if message.get("role") == "assistant" else ():
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                seen.setdefault(call["id"])
        if message.get("role") == "tool" and isinstance(message.get("tool_call_id"), str):
            seen.setdefault(message["tool_call_id"])
    return list(seen)


def map_tool_call_ids(messages: list[Any]) -> list[Any]:
    """``messages`` with every tool-call id in Mistral's form (a copy where
    anything changes; the messages given are never changed)."""
    ids = ToolCallIds(_ids_in(messages))
    if not ids.changes_any:
        return messages
    out = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        role = message.get("role")
        if role == "assistant" and isinstance(message.get("tool_calls"), list):
            calls = [{**call, "id": ids[call["id"]]} if isinstance(call, dict) and isinstance(call.get("id"), str)
                     else call for call in message["tool_calls"]]
            message = {**message, "tool_calls": calls}
        elif role == "tool" and isinstance(message.get("tool_call_id"), str):
            message = {**message, "tool_call_id": ids[message["tool_call_id"]]}
        out.append(message)
    return out
