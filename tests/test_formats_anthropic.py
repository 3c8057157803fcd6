"""portway.formats.anthropic: every mapping, checked against the installed SDKs' own types."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from anthropic.types import message_create_params as anthropic_params
from anthropic.types.beta import message_create_params as anthropic_beta_params
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat import completion_create_params as openai_params

from portway.errors import PortwayError, ProviderError
from portway.formats.anthropic import (
    ANTHROPIC_PASSTHROUGH,
    JSON_OBJECT_INSTRUCTION,
    SAMPLING_PARAMS,
    AnthropicStreamToOpenAI,
    OpenAIStreamToAnthropic,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    openai_response_to_anthropic,
    openai_to_anthropic_request,
)
from portway.testing.wire import ANTHROPIC_TOOL_STREAM

# -- validation against the SDKs' request types ---------------------------------

_ANTHROPIC_REQUEST = pydantic.TypeAdapter(anthropic_params.MessageCreateParamsNonStreaming)
_OPENAI_REQUEST = pydantic.TypeAdapter(openai_params.CompletionCreateParamsNonStreaming)


def _force(value: Any) -> Any:
    """pydantic validates Iterable[...] fields lazily: consume them to validate."""
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if hasattr(value, "__iter__"):
        return [_force(v) for v in value]
    return value


_GA_PARAMS = set(anthropic_params.MessageCreateParamsBase.__annotations__)
_BETA_PARAMS = set(anthropic_beta_params.MessageCreateParamsBase.__annotations__)


def assert_valid_anthropic_request(body: dict[str, Any]) -> None:
    # The installed SDK (API version 2026-10-21) has no sampling params at all;
    # they are valid for 2023-06-01, which the provider sends by default.
    body = {k: v for k, v in body.items() if k not in {"stream", *SAMPLING_PARAMS}}
    _force(_ANTHROPIC_REQUEST.validate_python(body))
    # TypedDicts ignore unknown keys; Anthropic's API rejects them.
    assert set(body) <= _GA_PARAMS, set(body) - _GA_PARAMS


def assert_valid_openai_request(body: dict[str, Any]) -> None:
    body = {k: v for k, v in body.items() if k not in {"stream", "stream_options"}}
    _force(_OPENAI_REQUEST.validate_python(body))


def test_passthrough_keys_are_real_anthropic_params() -> None:
    assert ANTHROPIC_PASSTHROUGH - set(SAMPLING_PARAMS) <= _GA_PARAMS | _BETA_PARAMS


# =============================================================================
# openai_to_anthropic_request
# =============================================================================

PNG = "iVBORw0KGgo="


def test_request_basics() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 100, "temperature": 1.7, "top_p": 0.9, "top_k": 5, "stop": "END", "user": "user-1",
        "stream": True, "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 2, "seed": 3,
        "frequency_penalty": 0.5, "presence_penalty": 0.5, "logit_bias": {"1": 2}, "n": 1,
        "not_a_param": 1, "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    out = openai_to_anthropic_request(body)
    assert out == {
        "model": "claude-sonnet-4-5",
        "system": "Be terse.\n\nUse metric units.",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 100, "temperature": 1.0, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END"],
        "metadata": {"user_id": "user-1"}, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    assert_valid_anthropic_request(out)


def test_max_tokens_default_and_precedence() -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    assert openai_to_anthropic_request({"model": "m", "messages": msgs})["max_tokens"] == 4096
    assert openai_to_anthropic_request({"model": "m", "messages": msgs}, default_max_tokens=7)["max_tokens"] == 7
    body = {"model": "m", "messages": msgs, "max_tokens": 10, "max_completion_tokens": 20}
    assert openai_to_anthropic_request(body)["max_tokens"] == 20


def test_stop_list_and_metadata_passthrough() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                       "stop": ["a", "b"], "metadata": {"user_id": "u", "other": "dropped"}})
    assert out["stop_sequences"] == ["a", "b"]
    assert out["metadata"] == {"user_id": "u"}


def test_n_greater_than_one_is_rejected() -> None:
    with pytest.raises(PortwayError) as err:
        openai_to_anthropic_request({"model": "m", "messages": [], "n": 2})
    assert err.value.kind == "bad_request" and err.value.param == "n"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get_time"}}]


def test_tools() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS})
    assert out["tools"] == [
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out
    assert_valid_anthropic_request(out)


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ({"type": "function", "function": {"name": "get_time"}}, False,
     {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    (None, True, None),
])
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out = openai_to_anthropic_request(body)
    assert out.get("tool_choice") == expected
    assert_valid_anthropic_request(out)


def test_images() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
    ]}]})
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert_valid_anthropic_request(out)


def test_pdf_file_part_becomes_a_document() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}]}]})
    assert out["messages"][0]["content"] == [{"type": "document", "title": "a.pdf", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]
    assert_valid_anthropic_request(out)


@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
    {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}},
    {"type": "file", "file": {"file_id": "file-1"}},
])
def test_unsupported_parts_are_bad_requests(part: dict[str, Any]) -> None:
    with pytest.raises(PortwayError) as err:
        openai_to_anthropic_request({"model": "m", "messages": [{"role": "user", "content": [part]}]})
    assert err.value.kind == "bad_request" and err.value.param == "messages.0.content.0"


def test_tool_conversation() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "user", "content": "Briefly."},
    ], "tools": TOOLS})
    assert out["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
            {"type": "text", "text": "And tomorrow?"},
            {"type": "text", "text": "Briefly."},
        ]},
    ]
    assert_valid_anthropic_request(out)


def test_bad_tool_arguments_are_bad_requests() -> None:
    with pytest.raises(PortwayError) as err:
        openai_to_anthropic_request({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]})
    assert err.value.param == "messages.0.tool_calls.0.function.arguments"


def test_empty_assistant_turns_are_dropped() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}]})
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]


def test_response_format_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": False}
    out = openai_to_anthropic_request({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}},
        "output_config": {"effort": "low"},
    })
    assert out["output_config"] == {"effort": "low", "format": {"type": "json_schema", "schema": schema}}
    assert_valid_anthropic_request(out)


def test_response_format_json_object_adds_a_system_instruction() -> None:
    out = openai_to_anthropic_request({"model": "m", "messages": [{"role": "system", "content": "Be terse."},
                                                                  {"role": "user", "content": "x"}],
                                       "response_format": {"type": "json_object"}})
    assert out["system"] == "Be terse.\n\n" + JSON_OBJECT_INSTRUCTION
    assert "output_config" not in out


def test_cache_control_survives() -> None:
    cc = {"type": "ephemeral"}
    out = openai_to_anthropic_request({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long prompt", "cache_control": cc}]},
        {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": cc}]},
    ], "tools": [{**TOOLS[1], "cache_control": cc}]})
    assert out["system"] == [{"type": "text", "text": "Long prompt", "cache_control": cc}]
    assert out["messages"][0]["content"] == [{"type": "text", "text": "x", "cache_control": cc}]
    assert out["tools"][0]["cache_control"] == cc
    assert_valid_anthropic_request(out)


# =============================================================================
# anthropic_response_to_openai
# =============================================================================

ANTHROPIC_MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "text", "text": "Let me check. "},
        {"type": "text", "text": "One moment."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 7, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 20},
}


def test_response_to_openai() -> None:
    out = anthropic_response_to_openai(ANTHROPIC_MESSAGE)
    assert isinstance(out.pop("created"), int)
    assert out == {
        "id": "msg_01", "object": "chat.completion", "model": "claude-sonnet-4-5",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check. One moment.",
            "tool_calls": [{"id": "toolu_01A", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
        }}],
        "usage": {"prompt_tokens": 35, "completion_tokens": 7, "total_tokens": 42,
                  "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 5}},
    }
    ChatCompletion.model_validate(anthropic_response_to_openai(ANTHROPIC_MESSAGE))


def test_response_without_text_has_null_content_and_thinking_is_kept() -> None:
    thinking = {"type": "thinking", "thinking": "Hmm.", "signature": "sig"}
    out = anthropic_response_to_openai({**ANTHROPIC_MESSAGE, "content": [thinking, ANTHROPIC_MESSAGE["content"][2]],
                                        "usage": {"input_tokens": 3, "output_tokens": 4,
                                                  "output_tokens_details": {"thinking_tokens": 2}}})
    message = out["choices"][0]["message"]
    assert message["content"] is None
    assert message["reasoning_content"] == "Hmm."
    assert message["thinking_blocks"] == [thinking]
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                            "prompt_tokens_details": {"cached_tokens": 0},
                            "completion_tokens_details": {"reasoning_tokens": 2}}
    ChatCompletion.model_validate(out)


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    (None, "stop"),
])
def test_stop_reasons(stop: str | None, finish: str) -> None:
    out = anthropic_response_to_openai({**ANTHROPIC_MESSAGE, "stop_reason": stop})
    assert out["choices"][0]["finish_reason"] == finish


# =============================================================================
# AnthropicStreamToOpenAI: the reference file's event sequence, exactly
# =============================================================================

REFERENCE_EVENTS = ANTHROPIC_TOOL_STREAM
CREATED = 1_700_000_000


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "msg_01", "object": "chat.completion.chunk", "created": CREATED, "model": "claude-sonnet-4-5",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _convert(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    converter = AnthropicStreamToOpenAI(created=CREATED)
    chunks = [c for name, data in events for c in converter.feed(name, copy.deepcopy(data))]
    assert converter.done
    return chunks


def test_stream_reference_sequence() -> None:
    chunks = _convert(REFERENCE_EVENTS)
    assert chunks == [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Let me check."}),
        _chunk({"tool_calls": [{"index": 0, "id": "toolu_01A", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Par'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]}),
        _chunk({}, "tool_calls"),
        {"id": "msg_01", "object": "chat.completion.chunk", "created": CREATED, "model": "claude-sonnet-4-5",
         "choices": [], "usage": {"prompt_tokens": 25, "completion_tokens": 42, "total_tokens": 67,
                                  "prompt_tokens_details": {"cached_tokens": 0}}},
    ]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_stream_tool_index_counts_tool_blocks_only_and_usage_is_cumulative() -> None:
    start = copy.deepcopy(REFERENCE_EVENTS[0])
    start[1]["message"]["usage"] = {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 100,
                                    "cache_creation_input_tokens": 0}
    second_tool = [
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 10}}),
    ]
    last_delta = ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                    "usage": {"output_tokens": 50, "input_tokens": 30, "cache_read_input_tokens": None}})
    events = [start, *REFERENCE_EVENTS[1:9], *second_tool, last_delta, REFERENCE_EVENTS[-1]]
    chunks = _convert(events)
    assert chunks[5] == _chunk({"tool_calls": [{"index": 1, "id": "toolu_01B", "type": "function",
                                                "function": {"name": "get_time", "arguments": ""}}]})
    # The empty partial_json produced nothing; the later totals overwrite the earlier ones,
    # and a null count keeps message_start's value.
    assert chunks[-1]["usage"] == {"prompt_tokens": 130, "completion_tokens": 50, "total_tokens": 180,
                                   "prompt_tokens_details": {"cached_tokens": 100}}


def test_stream_thinking_becomes_reasoning_content() -> None:
    events = [
        REFERENCE_EVENTS[0],
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "Let me think"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "redacted_thinking", "data": "xyz"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
        REFERENCE_EVENTS[-1],
    ]
    chunks = _convert(events)
    assert chunks[1:4] == [
        _chunk({"reasoning_content": "Let me think"}),
        _chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "EqQB"}]}),
        _chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": "xyz"}]}),
    ]
    assert chunks[4] == _chunk({}, "stop")


def test_stream_error_event_raises() -> None:
    converter = AnthropicStreamToOpenAI()
    converter.feed(*REFERENCE_EVENTS[0])
    with pytest.raises(ProviderError) as err:
        converter.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert err.value.kind == "overloaded" and err.value.message == "Overloaded"
    assert err.value.code == "overloaded_error"
    assert not converter.done


def test_stream_unknown_events_are_ignored() -> None:
    converter = AnthropicStreamToOpenAI()
    assert converter.feed("some_future_event", {"type": "some_future_event"}) == []


# =============================================================================
# anthropic_request_to_openai (the /v1/messages endpoint)
# =============================================================================


def test_anthropic_request_to_openai() -> None:
    body = {
        "model": "gpt-4o", "max_tokens": 300, "temperature": 0.2, "top_p": 0.8, "top_k": 40,
        "system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Metric units."}],
        "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "stream": True,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                 "content": [{"type": "text", "text": "clock broken"}]},
                {"type": "text", "text": "Summarise."},
            ]},
        ],
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    out = anthropic_request_to_openai(body)
    assert out == {
        "model": "gpt-4o", "max_tokens": 300, "temperature": 0.2, "top_p": 0.8, "top_k": 40,
        "stop": ["END"], "user": "u-1", "stream": True, "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "Be terse.\n\nMetric units."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ], "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "s"}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: clock broken"},
            {"role": "user", "content": "Summarise."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                    "parameters": {"type": "object"}}}],
        "tool_choice": "required", "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}},
    }
    assert_valid_openai_request(out)


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
])
def test_reverse_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    out = anthropic_request_to_openai({"model": "m", "max_tokens": 1, "messages": [],
                                       "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice})
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_reverse_string_system_and_image_in_tool_result() -> None:
    out = anthropic_request_to_openai({"model": "m", "max_tokens": 1, "system": "Hi", "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "here"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}]})
    assert out["messages"] == [
        {"role": "system", "content": "Hi"},
        {"role": "tool", "tool_call_id": "t", "content": "here"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
    ]


def test_reverse_blocks_without_an_openai_form_travel_as_they_are() -> None:
    """An unknown block, or a document the OpenAI shape cannot hold, is
    carried opaque: back to an Anthropic upstream unchanged (another
    upstream drops or refuses it: see test_gateway_anthropic)."""
    mystery = {"type": "mystery", "payload": {"a": [1, 2]}}
    url_document = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"},
                    "citations": {"enabled": True}}
    body = {"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "read"}, mystery, url_document]}]}
    canonical = anthropic_request_to_openai(body)
    assert canonical["messages"] == [{"role": "user", "content": [{"type": "text", "text": "read"}, mystery,
                                                                  url_document]}]
    back = openai_to_anthropic_request(canonical)
    assert back["messages"] == [{"role": "user", "content": [{"type": "text", "text": "read"}, mystery,
                                                            url_document]}]


def test_system_messages_inside_messages_stay_in_place() -> None:
    origin: list[int] = []
    body = {"model": "m", "max_tokens": 1, "system": "top", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "env: linux"}]},
    ]}
    canonical = anthropic_request_to_openai(body, origin)
    assert canonical["messages"] == [{"role": "system", "content": "top"}, {"role": "user", "content": "hi"},
                                     {"role": "system", "content": "env: linux"}]
    assert origin == [-1, 0, 1]
    # Back to Anthropic: folded into the top-level system by default, kept in place when asked.
    assert openai_to_anthropic_request(canonical)["system"] == "top\n\nenv: linux"
    kept = openai_to_anthropic_request(canonical, system_in_place=True)
    assert kept["system"] == "top"
    assert kept["messages"] == [{"role": "user", "content": "hi"},
                                {"role": "system", "content": [{"type": "text", "text": "env: linux"}]}]


# =============================================================================
# openai_response_to_anthropic
# =============================================================================

OPENAI_COMPLETION = {
    "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
        "role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]}}],
    "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
              "prompt_tokens_details": {"cached_tokens": 10}},
}


def test_openai_response_to_anthropic() -> None:
    out = openai_response_to_anthropic(OPENAI_COMPLETION)
    assert out == {
        "id": "msg_abc123", "type": "message", "role": "assistant", "model": "gpt-4o",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10},
    }
    Message.model_validate(out)


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal"),
    (None, "end_turn"),
])
def test_reverse_stop_reasons(finish: str | None, stop: str) -> None:
    resp = copy.deepcopy(OPENAI_COMPLETION)
    resp["choices"][0]["finish_reason"] = finish
    assert openai_response_to_anthropic(resp)["stop_reason"] == stop


def test_openai_response_edge_cases() -> None:
    resp = {"id": "x1", "model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "reasoning_content": "because",
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{broken"}}]}}]}
    out = openai_response_to_anthropic(resp)
    assert out["id"] == "msg_x1"
    assert out["content"] == [{"type": "thinking", "thinking": "because", "signature": ""},
                              {"type": "tool_use", "id": "c", "name": "f", "input": {"_raw_arguments": "{broken"}}]
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0}
    Message.model_validate(out)


# =============================================================================
# OpenAIStreamToAnthropic
# =============================================================================


def _oa_chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                             "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    chunk.update(extra)
    return chunk


OPENAI_CHUNKS = [
    _oa_chunk({"role": "assistant", "content": ""}),
    _oa_chunk({"content": "Let me "}),
    _oa_chunk({"content": "check."}),
    _oa_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}),
    _oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    _oa_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    _oa_chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
    _oa_chunk({}, "tool_calls"),
    _oa_chunk(None, usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
                           "prompt_tokens_details": {"cached_tokens": 10}}),
]


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def _stop(index: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def _run_openai_stream(chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    converter = OpenAIStreamToAnthropic()
    events = [e for chunk in chunks for e in converter.feed(copy.deepcopy(chunk))]
    return events + converter.finish()


def _accumulate(events: list[tuple[str, dict[str, Any]]]) -> Message:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        assert data["type"] == name  # Anthropic's rule: the data type repeats the event name
        snapshot = accumulate_event(event=copy.deepcopy(data), current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    assert snapshot is not None
    return Message.model_validate(snapshot.to_dict())


def test_openai_stream_to_anthropic_events() -> None:
    events = _run_openai_stream(OPENAI_CHUNKS)
    assert events == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_abc", "type": "message", "role": "assistant", "model": "gpt-4o", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        _start(0, {"type": "text", "text": ""}),
        _delta(0, {"type": "text_delta", "text": "Let me "}),
        _delta(0, {"type": "text_delta", "text": "check."}),
        _stop(0),
        _start(1, {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}),
        _delta(1, {"type": "input_json_delta", "partial_json": '{"city":'}),
        _delta(1, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        _stop(1),
        _start(2, {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}),
        _delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
        _stop(2),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 10, "output_tokens": 12}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    message = _accumulate(events)
    assert message.stop_reason == "tool_use"
    assert [b.model_dump(exclude_none=True) for b in message.content] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
    ]
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens) == (20, 12, 10)


def test_openai_stream_reasoning_and_signature() -> None:
    events = _run_openai_stream([
        _oa_chunk({"role": "assistant", "reasoning_content": "Think"}),
        _oa_chunk({"reasoning_content": "ing"}),
        _oa_chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "EqQB"}]}),
        _oa_chunk({"content": "Answer"}),
        _oa_chunk({}, "stop"),
    ])
    assert events[1:7] == [
        _start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        _delta(0, {"type": "thinking_delta", "thinking": "Think"}),
        _delta(0, {"type": "thinking_delta", "thinking": "ing"}),
        _delta(0, {"type": "signature_delta", "signature": "EqQB"}),
        _stop(0),
        _start(1, {"type": "text", "text": ""}),
    ]
    message = _accumulate(events)
    assert message.content[0].model_dump() == {"type": "thinking", "thinking": "Thinking", "signature": "EqQB"}
    assert message.stop_reason == "end_turn"
    # No usage chunk arrived: output_tokens 0, no input counts claimed.
    assert events[-2][1]["usage"] == {"output_tokens": 0}


def test_openai_stream_empty() -> None:
    events = OpenAIStreamToAnthropic(model="alias", message_id="msg_fixed").finish()
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[0][1]["message"]["id"] == "msg_fixed" and events[0][1]["message"]["model"] == "alias"
    assert _accumulate(events).content == []


# =============================================================================
# Round trips
# =============================================================================

CANONICAL_TOOL_CONVERSATION: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and what is the weather there?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}},
        ]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"},
        {"role": "user", "content": "Thanks. Summarise."},
        {"role": "assistant", "content": "The Eiffel Tower;"},
    ],
    "max_tokens": 256, "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "user": "u-1",
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
              {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}],
    "tool_choice": "required", "parallel_tool_calls": False,
}


def test_round_trip_openai_anthropic_openai() -> None:
    anthropic_body = openai_to_anthropic_request(copy.deepcopy(CANONICAL_TOOL_CONVERSATION))
    assert_valid_anthropic_request(anthropic_body)
    assert [m["role"] for m in anthropic_body["messages"]] == ["user", "assistant", "user", "assistant"]
    back = anthropic_request_to_openai(anthropic_body)
    assert back == CANONICAL_TOOL_CONVERSATION
    assert_valid_openai_request(back)


def test_round_trip_anthropic_openai_anthropic() -> None:
    anthropic_body = openai_to_anthropic_request(copy.deepcopy(CANONICAL_TOOL_CONVERSATION))
    again = openai_to_anthropic_request(anthropic_request_to_openai(copy.deepcopy(anthropic_body)))
    assert again == anthropic_body


def test_round_trip_responses() -> None:
    message = openai_response_to_anthropic(anthropic_response_to_openai(ANTHROPIC_MESSAGE))
    expected = copy.deepcopy(ANTHROPIC_MESSAGE)
    expected["content"] = [{"type": "text", "text": "Let me check. One moment."}, ANTHROPIC_MESSAGE["content"][2]]
    assert message == expected
    Message.model_validate(message)


def test_round_trip_streams() -> None:
    """Anthropic events -> OpenAI chunks -> Anthropic events gives the same message."""
    converter = OpenAIStreamToAnthropic()
    events = [e for chunk in _convert(REFERENCE_EVENTS) for e in converter.feed(chunk)] + converter.finish()
    original = _accumulate(REFERENCE_EVENTS)
    rebuilt = _accumulate(events)
    assert rebuilt.model_dump() == {**original.model_dump(), "usage": {
        **original.usage.model_dump(), "output_tokens": 42, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
