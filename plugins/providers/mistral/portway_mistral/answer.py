"""Mistral's answers in the canonical (OpenAI) shape.

Mistral answers in OpenAI's shape with these differences
(``mistralai/client-python``, ``src/mistralai/client/models/``):

- ``content`` may be a list of chunks instead of a string
  (``assistantmessage.py``, ``deltamessage.py``): ``text`` chunks, and for the
  reasoning (Magistral) models ``thinking`` chunks, each holding a list of
  text chunks (``thinkchunk.py``).  The text becomes ``content``, the thinking
  ``reasoning_content``; other chunks (``reference``) carry nothing a client
  of the canonical format can read and are left out.
- ``finish_reason`` adds ``model_length`` (``chatcompletionchoice.py``): the
  model's context was full, which is ``length`` to an OpenAI client.
- In a stream, the usage comes on the chunk that carries the
  ``finish_reason`` (no ``stream_options`` needed, none accepted); the
  gateway relays it on a chunk of its own, as OpenAI sends it.
- A streamed tool call may come without ``index`` (``toolcall.py``: it is
  optional); OpenAI's clients need it, so it is set from its position.
"""

from __future__ import annotations

from typing import Any

FINISH_REASONS = {"model_length": "length"}


def _flatten(message: dict[str, Any]) -> None:
    """A message or delta whose ``content`` is a list of chunks, with the
    text as a string and the thinking as ``reasoning_content`` (in place).
    What is not as expected is left for the shape check to name."""
    content = message.get("content")
    if not isinstance(content, list):
        return
    texts: list[str] = []
    thoughts: list[str] = []
    for chunk in content:
        if not isinstance(chunk, dict):
            return  # not Mistral's shape: leave it for the check
        kind = chunk.get("type")
        if kind == "text" and isinstance(chunk.get("text"), str):
            texts.append(chunk["text"])
        elif kind == "thinking" and isinstance(chunk.get("thinking"), list):
            thoughts += [part["text"] for part in chunk["thinking"]
                         if isinstance(part, dict) and isinstance(part.get("text"), str)]
    message["content"] = "".join(texts) if texts or not thoughts else None
    if thoughts:
        message["reasoning_content"] = (message.get("reasoning_content") or "") + "".join(thoughts)


def _finish(choice: dict[str, Any]) -> None:
    finish = choice.get("finish_reason")
    if isinstance(finish, str) and finish in FINISH_REASONS:
        choice["finish_reason"] = FINISH_REASONS[finish]


def completion(data: Any) -> Any:
    """A whole answer in the canonical shape (in place)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict):
            _finish(choice)
            if isinstance(choice.get("message"), dict):
                _flatten(choice["message"])
    return data


def chunk(data: Any) -> Any:
    """A stream chunk in the canonical shape (in place)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        _finish(choice)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            _flatten(delta)
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else ()):
                if isinstance(call, dict) and "index" not in call:
                    call["index"] = position
    return data


