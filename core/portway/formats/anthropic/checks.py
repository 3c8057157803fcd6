"""Shape checks on what an Anthropic upstream sends: the fields the
converters read must have the types they rely on (an upstream's answer is
untrusted input).  Unknown blocks and fields pass the checks."""

from __future__ import annotations

from typing import Any

from portway.formats import MalformedAnswer

_BLOCK_STRINGS = {"text": ("text",), "thinking": ("thinking", "signature"), "tool_use": ("id", "name"),
                  "redacted_thinking": ("data",)}
_DELTA_STRINGS = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking",
                  "signature_delta": "signature"}


def _check_usage(usage: Any, where: str) -> None:
    if usage is None:
        return
    if type(usage) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = usage.get(key)
        if value is not None and type(value) is not int:
            raise MalformedAnswer(f"{where}.{key} is not an integer")
    details = usage.get("output_tokens_details")
    if details is not None and (type(details) is not dict or not isinstance(details.get("thinking_tokens", 0), int)):
        raise MalformedAnswer(f"{where}.output_tokens_details is malformed")


def _check_block(block: Any, where: str) -> None:
    if type(block) is not dict:
        raise MalformedAnswer(f"{where} is not an object")
    kind = block.get("type")
    if type(kind) is not str:
        raise MalformedAnswer(f"{where}.type is not a string")
    for key in _BLOCK_STRINGS.get(kind, ()):
        if type(block.get(key)) is not str:
            raise MalformedAnswer(f"{where}.{key} is not a string")
    if kind == "tool_use" and not isinstance(block.get("input", {}), dict):
        raise MalformedAnswer(f"{where}.input is not an object")


def check_message(data: Any) -> dict[str, Any]:
    """``data`` if it is a well-formed Messages API ``message``; else
    :class:`MalformedAnswer` naming the first bad field."""
    if type(data) is not dict:
        raise MalformedAnswer("the answer is not a JSON object")
    content = data.get("content")
    if type(content) is not list:
        raise MalformedAnswer("content is missing or not a list")
    for i, block in enumerate(content):
        _check_block(block, f"content[{i}]")
    for key in ("id", "model", "stop_reason", "stop_sequence"):
        if not isinstance(data.get(key), (str, type(None))):
            raise MalformedAnswer(f"{key} is not a string")
    _check_usage(data.get("usage"), "usage")
    return data


def check_event(kind: str | None, data: dict[str, Any]) -> None:
    """The fields of one stream event that the converter reads."""
    if kind == "content_block_delta":
        delta = data.get("delta")
        if type(delta) is not dict:
            raise MalformedAnswer("a content_block_delta has no delta object")
        delta_type = delta.get("type")
        key = _DELTA_STRINGS.get(delta_type) if type(delta_type) is str else None
        if key is not None and type(delta.get(key)) is not str:
            raise MalformedAnswer(f"a {delta_type}'s {key} is not a string")
        if type(data.get("index", 0)) is not int:
            raise MalformedAnswer("a content_block_delta's index is not an integer")
    elif kind == "content_block_start":
        if type(data.get("index", 0)) is not int:
            raise MalformedAnswer("a content_block_start's index is not an integer")
        _check_block(data.get("content_block"), "a content_block_start's content_block")
    elif kind == "message_start":
        message = data.get("message")
        if type(message) is not dict:
            raise MalformedAnswer("a message_start has no message object")
        for key in ("id", "model"):
            if not isinstance(message.get(key), (str, type(None))):
                raise MalformedAnswer(f"message_start's message.{key} is not a string")
        _check_usage(message.get("usage"), "message_start's usage")
    elif kind == "message_delta":
        delta = data.get("delta")
        if delta is not None and (type(delta) is not dict or not isinstance(delta.get("stop_reason"), (str, type(None)))):
            raise MalformedAnswer("a message_delta's stop_reason is not a string")
        _check_usage(data.get("usage"), "a message_delta's usage")


