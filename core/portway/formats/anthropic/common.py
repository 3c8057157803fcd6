"""What both directions of the Anthropic translation share: the
stop-reason tables, the keys only Anthropic has, usage in both shapes, and
small helpers."""

from __future__ import annotations

import uuid
from typing import Any

from portway import serialization
from portway.errors import PortwayError

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Top-level Messages params a client may send through the OpenAI endpoint;
# they pass through untouched.  Everything else that is not an OpenAI field
# handled below is dropped, because Anthropic rejects unknown keys.
# (context_management and mcp_servers need an anthropic-beta flag.)
ANTHROPIC_PASSTHROUGH = frozenset({
    "top_k", "thinking", "cache_control", "container", "diagnostics", "inference_geo", "speed",
    "context_management", "mcp_servers",
})
# Sampling params of API version 2023-06-01.  The anthropic SDK 2.x (API
# version 2026-10-21) no longer has them, so the provider can drop them.
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
# Content blocks that are already in Anthropic's shape.
ANTHROPIC_BLOCKS = frozenset({"image", "document", "search_result", "tool_result", "tool_use", "thinking", "redacted_thinking"})
# Content part types of the OpenAI format; any other part in a canonical
# message is an Anthropic block carried as it is (from a /v1/messages client).
OPENAI_PART_TYPES = frozenset({"text", "refusal", "image_url", "input_audio", "file"})

JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."


def bad_request(message: str, param: str | None = None) -> PortwayError:
    return PortwayError(message, kind="bad_request", param=param)


def message_id(openai_id: str | None) -> str:
    if openai_id and openai_id.startswith("msg_"):
        return openai_id
    if openai_id:
        return "msg_" + openai_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex[:24]


def text_of(content: Any) -> str:
    """The text of a string or of a list of text parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content or [])


def parse_arguments(arguments: Any, param: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments or not str(arguments).strip():
        return {}
    try:
        value = serialization.loads(arguments)
    except serialization.JSONDecodeError:
        raise bad_request("tool call arguments are not valid JSON", param) from None
    if not isinstance(value, dict):
        raise bad_request("tool call arguments must be a JSON object", param)
    return value


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    # Anthropic's input_tokens excludes cached tokens; OpenAI's prompt_tokens includes them.
    fresh = usage.get("input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    read = usage.get("cache_read_input_tokens") or 0
    output = usage.get("output_tokens") or 0
    prompt = fresh + written + read
    details: dict[str, Any] = {"cached_tokens": read}
    if written:
        details["cache_write_tokens"] = written
    result: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
        "prompt_tokens_details": details,
    }
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if thinking:
        result["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return result


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI ``tool_calls`` entry."""
    return {"id": block.get("id"), "type": "function", "function": {
        "name": block.get("name"), "arguments": serialization.dumps_str(block.get("input") or {})}}


def anthropic_usage(usage: dict[str, Any]) -> dict[str, int]:
    details = usage.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens") or 0
    written = details.get("cache_write_tokens") or 0
    return {
        "input_tokens": max((usage.get("prompt_tokens") or 0) - read - written, 0),
        "output_tokens": usage.get("completion_tokens") or 0,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }

