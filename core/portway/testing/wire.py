"""Recorded wire examples that many tests replay.

Each is a provider's documented reference sequence, kept once here so the
adapter tests, the format tests and the gateway tests all replay the same
bytes (feed them to :func:`portway.testing.sse_reply`).
"""

from __future__ import annotations

from typing import Any

#: Anthropic Messages stream of a text block then a tool_use block with its
#: JSON arriving in two pieces, a ``ping`` in the middle, and cumulative
#: ``output_tokens`` in ``message_delta`` (the reference sequence in
#: ``shared/reference/provider-wire-facts.md`` §2, checked against the
#: anthropic SDK's ``RawMessageStreamEvent`` types).
ANTHROPIC_TOOL_STREAM: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Let me check."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "input_json_delta", "partial_json": 'is"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": 42}}),
    ("message_stop", {"type": "message_stop"}),
]


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` as OpenAI streams it with
    ``include_usage`` on (``"usage": null`` on every content chunk)."""
    return {"id": "chatcmpl-A1", "object": "chat.completion.chunk", "created": 1735689600,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None, **extra}


#: OpenAI's streamed tool call: the first fragment carries id, type and name
#: with empty arguments, later ones only argument pieces, then the finish
#: chunk (openai-python's ``ChoiceDeltaToolCall``; no usage chunk).
OPENAI_TOOL_STREAM: list[dict[str, Any]] = [
    openai_chunk({"role": "assistant", "content": None, "refusal": None,
                  "tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                                  "function": {"name": "get_weather", "arguments": ""}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
    openai_chunk({}, "tool_calls"),
]
