"""portway.formats.responses and portway.schemas.responses: every mapping,
checked against the installed openai SDK's own types, and every stream
driven through the SDK's accumulator (what ``client.responses.stream()``
runs), so the SDK parses what the gateway sends."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat import completion_create_params as chat_params
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent, response_create_params

from portway.errors import PortwayError, ProviderError
from portway.formats import MalformedAnswer
from portway.formats.openai import StreamAssembler, completion_to_chunks
from portway.formats.responses import (
    OpenAIStreamToResponses,
    ResponsesStreamToOpenAI,
    check_response,
    error_event,
    input_items,
    openai_response_to_responses,
    responses_request_to_openai,
    responses_to_openai_response,
)
from portway.schemas import validate
from portway.schemas.openai import ChatCompletionRequest
from portway.schemas.responses import ResponsesRequest

_RESPONSES_REQUEST = pydantic.TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming)
_CHAT_REQUEST = pydantic.TypeAdapter(chat_params.CompletionCreateParamsNonStreaming)
_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
_ITEM = pydantic.TypeAdapter(ResponseItem)

PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0="


def _force(value: Any) -> Any:
    """pydantic validates Iterable[...] fields lazily: consume them to validate."""
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if hasattr(value, "__iter__"):
        return [_force(v) for v in value]
    return value


def valid_request(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` after checking it is a real Responses request (the SDK's
    types) that Portway's schema accepts."""
    _force(_RESPONSES_REQUEST.validate_python({k: v for k, v in body.items() if k != "stream"}))
    validate(ResponsesRequest, body)
    return body


def translate(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The translation, checked to be a valid canonical body: what the
    gateway's own schema and the SDK's Chat Completions types accept."""
    out = responses_request_to_openai(valid_request(body), history)
    validate(ChatCompletionRequest, out)
    _force(_CHAT_REQUEST.validate_python({k: v for k, v in out.items() if k not in ("stream", "stream_options")}))
    return out


def refused(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> PortwayError:
    with pytest.raises(PortwayError) as info:
        responses_request_to_openai(body, history)
    assert info.value.kind == "bad_request" and info.value.status == 400
    return info.value


# =============================================================================
# the request schema
# =============================================================================


def test_schema_accepts_every_item_part_and_tool_kind_the_sdk_defines() -> None:
    valid_request({
        "model": "m",
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": "easy"},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": PNG, "detail": "original"},
                {"type": "input_file", "file_data": PDF, "filename": "a.pdf"},
            ]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "ok", "annotations": []}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}],
             "encrypted_content": "opaque"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "done"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed",
             "action": {"type": "search", "query": "q"}},
            {"type": "item_reference", "id": "msg_0"},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True},
                  {"type": "web_search"}, {"type": "mcp", "server_label": "s", "server_url": "https://mcp.invalid"}],
        "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]},
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True},
                 "verbosity": "low"},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 100, "temperature": 0.5, "top_p": 0.9, "metadata": {"k": "v"},
        "store": False, "previous_response_id": "resp_0", "user": "u", "include": ["reasoning.encrypted_content"],
        "truncation": "auto",
    })


def test_schema_lets_unknown_item_part_and_tool_types_through_with_only_their_type() -> None:
    validate(ResponsesRequest, {
        "model": "m",
        "input": [{"type": "future_item", "x": 1},
                  {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
        "tools": [{"type": "future_tool", "anything": [1]}],
        "tool_choice": {"type": "future_choice"},
    })


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content", "Input should be a valid string"),
    ({"input": [{"role": "bot", "content": "x"}]}, "input[0].role", "Input should be 'user', 'assistant', "
                                                                     "'system' or 'developer'"),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text", "Field required"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": 1}]}]},
     "input[0].content[0].image_url", "Input should be a valid string"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
     "input[0].arguments", "Input should be a valid string"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "Field required"),
    ({"input": [{"type": 5}]}, "input[0].type", "Input should be a valid string"),
    ({"input": 5}, "input", "Input should be a valid string"),
    ({"tools": [{"type": "function", "name": 3}]}, "tools[0].name", "Input should be a valid string"),
    ({"tools": [{"name": "f"}]}, "tools[0].type", "Field required"),
    ({"tool_choice": "sometimes"}, "tool_choice", "Input should be 'none', 'auto' or 'required'"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.name", "Field required"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name", "Field required"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format", "Input tag 'yaml' found using 'type' does not "
                                                            "match any of the expected tags: 'text', "
                                                            "'json_object', 'json_schema'"),
    ({"reasoning": {"effort": 1}}, "reasoning.effort", "Input should be a valid string"),
    ({"max_output_tokens": "5"}, "max_output_tokens", "Input should be a valid integer"),
    ({"temperature": 3}, "temperature", "Input should be less than or equal to 2"),
    ({"metadata": {"k": 1}}, "metadata.k", "Input should be a valid string"),
    ({"stream": "true"}, "stream", "Input should be a valid boolean"),
    ({"store": 1}, "store", "Input should be a valid boolean"),
    ({"previous_response_id": 7}, "previous_response_id", "Input should be a valid string"),
    ({"truncation": "sometimes"}, "truncation", "Input should be 'auto' or 'disabled'"),
    ({"model": ""}, "model", "String should have at least 1 character"),
])
def test_schema_refuses_bad_types_naming_the_field(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(PortwayError) as info:
        validate(ResponsesRequest, {"model": "m", **body})
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.message == f"invalid request: {param}: {message}"


# =============================================================================
# responses_request_to_openai
# =============================================================================


def test_request_parameters_map_to_chat_completions() -> None:
    body = {
        "model": "fast", "instructions": "Be brief.", "input": "hi",
        "text": {"format": {"type": "json_schema", "name": "answer", "description": "the answer",
                            "schema": {"type": "object"}, "strict": True}, "verbosity": "low"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.5, "user": "u1", "metadata": {"k": "v"},
        "store": False, "include": ["reasoning.encrypted_content"], "truncation": "auto", "stream": True,
    }
    assert translate(body) == {
        "model": "fast",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object"}, "strict": True, "description": "the answer"}},
        "reasoning_effort": "low",
        "max_tokens": 50, "temperature": 0.2, "top_p": 0.5, "user": "u1", "metadata": {"k": "v"},
        "stream": True, "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(("text", "expected"), [
    ({"format": {"type": "json_object"}}, {"type": "json_object"}),
    ({"format": {"type": "text"}}, None),
    ({"verbosity": "high"}, None),
])
def test_text_format_maps_to_response_format(text: dict[str, Any], expected: Any) -> None:
    out = translate({"model": "m", "input": "hi", "text": text})
    assert out.get("response_format") == expected


def test_items_become_messages_in_order() -> None:
    body = {"model": "m", "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": PNG, "detail": "low"},
            {"type": "input_file", "file_data": PDF, "filename": "doc.pdf"},
        ]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}],
         "encrypted_content": "opaque"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "look", "arguments": '{"q": 1}'},
        {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "read", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
        {"type": "function_call_output", "call_id": "call_2", "output": "meow"},
        {"role": "system", "content": [{"type": "input_text", "text": "mid-conversation "},
                                       {"type": "input_text", "text": "rule"}]},
        {"role": "user", "content": "thanks"},
    ]}
    assert translate(body)["messages"] == [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            {"type": "file", "file": {"file_data": PDF, "filename": "doc.pdf"}},
        ]},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}},
            {"id": "call_2", "type": "function", "function": {"name": "read", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": "meow"},
        {"role": "system", "content": "mid-conversation rule"},
        {"role": "user", "content": "thanks"},
    ]


def test_function_calls_without_a_preceding_assistant_message_start_one() -> None:
    body = {"model": "m", "input": [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        {"type": "function_call", "call_id": "call_2", "name": "f", "arguments": "{}"},
    ]}
    assert translate(body)["messages"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ]


def test_images_in_tool_outputs_follow_the_run_of_tool_messages() -> None:
    body = {"model": "m", "input": [
        {"type": "function_call", "call_id": "a", "name": "shot", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "shot", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": [
            {"type": "input_text", "text": "first"}, {"type": "input_image", "image_url": PNG, "detail": "auto"},
            {"type": "input_text", "text": "done"}]},
        {"type": "function_call_output", "call_id": "b", "output": [{"type": "input_image", "image_url": PNG}]},
        {"role": "user", "content": "describe them"},
    ]}
    image = {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}}
    assert translate(body)["messages"][1:] == [
        {"role": "tool", "tool_call_id": "a", "content": "first\ndone"},
        {"role": "tool", "tool_call_id": "b", "content": ""},
        {"role": "user", "content": [image, {"type": "image_url", "image_url": {"url": PNG}}]},
        {"role": "user", "content": "describe them"},
    ]


def test_assistant_refusal_parts_become_the_refusal_field() -> None:
    body = {"model": "m", "input": [
        {"role": "user", "content": "do something bad"},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "refusal", "refusal": "I can't."}]},
        {"role": "user", "content": "ok"},
    ]}
    assert translate(body)["messages"][1] == {"role": "assistant", "content": None, "refusal": "I can't."}


def test_history_comes_after_instructions_and_before_input() -> None:
    history = [
        {"id": "msg_a", "type": "message", "role": "user", "status": "completed",
         "content": [{"type": "input_text", "text": "first question"}]},
        {"id": "rs_b", "type": "reasoning", "summary": []},
        {"id": "msg_b", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "first answer", "annotations": []}]},
        {"id": "fc_b", "type": "function_call", "call_id": "call_b", "name": "f", "arguments": "{}",
         "status": "completed"},
    ]
    body = {"model": "m", "instructions": "sys", "previous_response_id": "resp_b",
            "input": [{"type": "function_call_output", "call_id": "call_b", "output": "42"}]}
    assert translate(body, history)["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer", "tool_calls": [
            {"id": "call_b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "42"},
    ]


def test_function_tools_and_tool_choice_map() -> None:
    tools = [{"type": "function", "name": "get", "description": "Get it.", "strict": True,
              "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}},
             {"type": "function", "name": "put", "parameters": None, "strict": None}]
    out = translate({"model": "m", "input": "hi", "tools": tools, "parallel_tool_calls": False,
                     "tool_choice": {"type": "function", "name": "get"}})
    assert out["tools"] == [
        {"type": "function", "function": {"name": "get", "description": "Get it.", "strict": True,
                                          "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "put"}},
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get"}}
    assert out["parallel_tool_calls"] is False
    assert translate({"model": "m", "input": "hi", "tools": tools, "tool_choice": "required"})["tool_choice"] \
        == "required"


def test_allowed_tools_keeps_only_the_allowed_ones_and_uses_its_mode() -> None:
    tools = [{"type": "function", "name": n, "parameters": {"type": "object"}, "strict": None} for n in "abc"]
    out = translate({"model": "m", "input": "hi", "tools": tools, "tool_choice": {
        "type": "allowed_tools", "mode": "required",
        "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "c"}]}})
    assert [t["function"]["name"] for t in out["tools"]] == ["a", "c"]
    assert out["tool_choice"] == "required"


def test_tool_choice_and_parallel_calls_are_left_out_without_tools() -> None:
    out = translate({"model": "m", "input": "hi", "tool_choice": "none", "parallel_tool_calls": True})
    assert "tool_choice" not in out and "parallel_tool_calls" not in out and "tools" not in out


# -- the drop-or-400 rule ----------------------------------------------------------------


@pytest.mark.parametrize("tool", [
    {"type": "web_search"},
    {"type": "web_search_preview"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "mcp", "server_label": "s", "server_url": "https://mcp.invalid"},
    {"type": "image_generation"},
    {"type": "local_shell"},
    {"type": "custom", "name": "apply_patch"},
])
def test_built_in_tools_are_a_400_naming_the_tool(tool: dict[str, Any]) -> None:
    function = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": None}
    error = refused(valid_request({"model": "m", "input": "hi", "tools": [function, tool]}))
    assert error.param == "tools[1]"
    assert error.message == (f"tool type {tool['type']!r} is a built-in tool that only OpenAI runs; "
                             "it cannot be used with this provider")


@pytest.mark.parametrize("choice", [{"type": "web_search_preview"}, {"type": "mcp", "server_label": "s"},
                                    {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "file_search"}]}])
def test_a_tool_choice_naming_a_built_in_tool_is_a_400(choice: dict[str, Any]) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": None}]
    assert refused({"model": "m", "input": "hi", "tools": tools, "tool_choice": choice}).param == "tool_choice"
    assert refused({"model": "m", "input": "hi", "tool_choice": choice}).param == "tool_choice"


@pytest.mark.parametrize(("item", "param", "message"), [
    ({"type": "web_search_call", "id": "ws_1", "status": "completed"}, "input[1]",
     "input item type 'web_search_call' cannot be sent to this provider (only OpenAI runs built-in tools)"),
    ({"type": "item_reference", "id": "msg_0"}, "input[1]",
     "input item type 'item_reference' cannot be sent to this provider (only OpenAI runs built-in tools)"),
    ({"role": "user", "content": [{"type": "input_text", "text": "x"}, {"type": "input_image", "file_id": "f"}]},
     "input[1].content[1]", "input_image needs image_url (a URL or a data URI) with this provider; a file_id "
                            "names a file stored on OpenAI"),
    ({"role": "user", "content": [{"type": "input_file", "file_url": "https://x.invalid/a.pdf"}]},
     "input[1].content[0]", "input_file needs inline file_data with this provider; file_id and file_url name "
                            "files only OpenAI fetches"),
    ({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}, "input[1].content[0]",
     "content part type 'input_audio' cannot be sent to this provider"),
    ({"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file", "file_id": "f"}]},
     "input[1].output[0]", "input_file needs inline file_data with this provider; file_id and file_url name "
                           "files only OpenAI fetches"),
    ({"role": "system", "content": [{"type": "input_image", "image_url": PNG}]}, "input[1].content[0]",
     "a system message carries text parts only here"),
])
def test_what_cannot_be_expressed_is_a_400_naming_the_item(item: dict[str, Any], param: str, message: str) -> None:
    error = refused({"model": "m", "input": [{"role": "user", "content": "hi"}, item]})
    assert (error.param, error.message) == (param, message)


def test_an_untranslatable_item_in_history_names_previous_response_id() -> None:
    history = [{"type": "web_search_call", "id": "ws_1", "status": "completed"}]
    assert refused({"model": "m", "input": "hi"}, history).param == "previous_response_id"


@pytest.mark.parametrize("key", ["conversation", "prompt", "background"])
def test_state_kept_on_openai_is_a_400(key: str) -> None:
    value = True if key == "background" else {"id": "x"}
    error = refused({"model": "m", "input": "hi", key: value})
    assert error.param == key
    assert error.message == f"{key} refers to state kept by OpenAI; it works only with an OpenAI target"


def test_no_input_at_all_is_a_400() -> None:
    assert refused({"model": "m"}).param == "input"
    assert refused({"model": "m", "input": []}).param == "input"


# =============================================================================
# input_items
# =============================================================================


def test_input_items_are_full_items_with_ids() -> None:
    body = {"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": [{"type": "input_text", "text": "rule"},
                                          {"type": "input_image", "image_url": PNG}]},
        {"role": "assistant", "content": "hello"},
        {"type": "message", "role": "assistant", "id": "msg_kept", "status": "completed", "phase": "final_answer",
         "content": [{"type": "output_text", "text": "again", "logprobs": []}, {"type": "input_text", "text": "!"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "id": "fco_kept", "call_id": "call_1", "output": "ok"},
    ]}
    items = input_items(body)
    for item in items:
        _ITEM.validate_python(item)  # what GET /v1/responses/{id}/input_items lists
    ids = [item["id"] for item in items]
    assert [i[:4] for i in ids[:3]] == ["msg_", "msg_", "msg_"] and ids[5].startswith("fc_")
    assert ids[3] == "msg_kept" and ids[4] == "rs_1" and ids[6] == "fco_kept"
    assert len(set(ids)) == 7
    assert [{k: v for k, v in item.items() if k != "id"} for item in items] == [
        {"type": "message", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "message", "role": "developer", "status": "completed", "content": [
            {"type": "input_text", "text": "rule"}, {"type": "input_image", "image_url": PNG, "detail": "auto"}]},
        {"type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
        {"type": "message", "role": "assistant", "status": "completed", "phase": "final_answer",
         "content": [{"type": "output_text", "text": "again", "logprobs": [], "annotations": []},
                     {"type": "output_text", "text": "!", "annotations": []}]},
        {"type": "reasoning", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}", "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok", "status": "completed"},
    ]


def test_a_string_input_is_one_user_message_and_ids_differ_between_requests() -> None:
    first, second = input_items({"model": "m", "input": "hi"}), input_items({"model": "m", "input": "hi"})
    assert first[0]["id"] != second[0]["id"]
    assert first == [{"id": first[0]["id"], "type": "message", "role": "user", "status": "completed",
                      "content": [{"type": "input_text", "text": "hi"}]}]
    assert input_items({"model": "m"}) == []


def test_input_items_replay_as_the_same_messages() -> None:
    body = {"model": "m", "input": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "calling"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
    ]}
    assert translate({"model": "m", "input": input_items(body)})["messages"] == translate(body)["messages"]


# =============================================================================
# openai_response_to_responses
# =============================================================================


def _completion(message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up-model",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def respond(completion: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
    ChatCompletion.model_validate(completion)
    response = openai_response_to_responses(completion, request or {"model": "fast", "input": "hi"},
                                            response_id="resp_1", created_at=100, completed_at=101)
    Response.model_validate(response)
    return response


DEFAULT_ECHO = {
    "instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
    "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": True,
    "temperature": None, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": None,
    "truncation": "disabled", "user": None,
}


def test_a_text_answer_is_a_completed_response_with_usage() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
             "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
             "completion_tokens_details": {"reasoning_tokens": 3}}
    assert respond(_completion({"content": "Hello"}, usage=usage)) == {
        "id": "resp_1", "object": "response", "created_at": 100, "status": "completed", "completed_at": 101,
        "error": None, "incomplete_details": None, "model": "up-model",
        "output": [{"id": "msg_1_0", "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}],
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 15},
        **DEFAULT_ECHO,
    }


def test_reasoning_text_and_tool_calls_become_items_in_order() -> None:
    response = respond(_completion({
        "content": "Checking.", "reasoning_content": "I should look.",
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}},
                       {"id": "call_b", "type": "function", "function": {"name": "read", "arguments": "{}"}}],
    }, finish="tool_calls"))
    assert response["output"] == [
        {"id": "rs_1_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "I should look."}]},
        {"id": "msg_1_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"id": "fc_1_2", "type": "function_call", "call_id": "call_a", "name": "look", "arguments": '{"q":1}',
         "status": "completed"},
        {"id": "fc_1_3", "type": "function_call", "call_id": "call_b", "name": "read", "arguments": "{}",
         "status": "completed"},
    ]
    assert response["status"] == "completed"


def test_tool_calls_alone_make_no_message_item() -> None:
    response = respond(_completion({"content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, finish="tool_calls"))
    assert [item["type"] for item in response["output"]] == ["function_call"]


def test_a_refusal_is_a_refusal_part() -> None:
    response = respond(_completion({"content": None, "refusal": "No."}))
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]


def test_an_empty_answer_is_one_empty_message() -> None:
    response = respond(_completion({"content": ""}))
    assert response["output"] == [{"id": "msg_1_0", "type": "message", "role": "assistant", "status": "completed",
                                   "content": [{"type": "output_text", "text": "", "annotations": []}]}]


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_a_cut_answer_is_incomplete_with_the_reason(finish: str, reason: str) -> None:
    response = respond(_completion({"content": "Hel"}, finish=finish))
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": reason}
    assert response["completed_at"] is None
    assert response["output"][0]["status"] == "incomplete"


def test_the_request_is_echoed() -> None:
    request = {
        "model": "fast", "input": "hi", "instructions": "sys", "max_output_tokens": 64, "metadata": {"k": "v"},
        "parallel_tool_calls": False, "previous_response_id": "resp_0", "reasoning": {"effort": "low"},
        "store": False, "temperature": 0.3, "text": {"format": {"type": "json_object"}},
        "tool_choice": {"type": "function", "name": "f"}, "top_p": 0.8, "truncation": "auto", "user": "u",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
    }
    response = respond(_completion({"content": "{}"}), valid_request(request))
    assert {key: response[key] for key in DEFAULT_ECHO} == {
        "instructions": "sys", "max_output_tokens": 64, "metadata": {"k": "v"}, "parallel_tool_calls": False,
        "previous_response_id": "resp_0", "reasoning": {"effort": "low"}, "store": False, "temperature": 0.3,
        "text": {"format": {"type": "json_object"}}, "tool_choice": {"type": "function", "name": "f"},
        "tools": request["tools"], "top_p": 0.8, "truncation": "auto", "user": "u",
    }


def test_completed_at_defaults_to_now() -> None:
    response = openai_response_to_responses(_completion({"content": "x"}), {"model": "m"}, response_id="resp_1",
                                            created_at=100)
    assert isinstance(response["completed_at"], float) and response["completed_at"] > 100


# =============================================================================
# OpenAIStreamToResponses
# =============================================================================


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up-model",
            "choices": choices, **extra}


USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

TOOL_STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning_content": "I should "}),
    _chunk({"reasoning_content": "look."}),
    _chunk({"content": "Check"}),
    _chunk({"content": "ing."}),
    _chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                            "function": {"name": "look", "arguments": ""}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
    _chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                            "function": {"name": "read", "arguments": "{}"}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),  # interleaved with call_b
    _chunk({}, finish="tool_calls"),
    _chunk(None, usage=USAGE),
]


def stream(chunks: list[dict[str, Any]], request: dict[str, Any] | None = None,
           fail: BaseException | None = None) -> tuple[list[tuple[str, dict[str, Any]]], ResponseStreamState]:
    """Run chunks through the converter; check every event with the SDK's
    event types, the sequence numbers, and drive the SDK's accumulator."""
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    converter = OpenAIStreamToResponses(request or {"model": "fast", "input": "hi"}, response_id="resp_1",
                                        created_at=100)
    events = [event for chunk in chunks for event in converter.feed(chunk)]
    events += converter.fail(fail) if fail is not None else converter.finish(completed_at=101)
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for number, (name, data) in enumerate(events):
        assert data["type"] == name and data["sequence_number"] == number
        event = _EVENT.validate_python(data)
        assert event.type == name
        state.handle_event(event)
    assert converter.done
    return events, state


def test_a_stream_gives_the_typed_events_and_the_same_response_as_a_whole_answer() -> None:
    events, state = stream(TOOL_STREAM)
    assert [name for name, _ in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    assembler = StreamAssembler()
    for chunk in TOOL_STREAM:
        assembler.add(chunk)
    whole = assembler.result()
    whole["choices"][0]["message"]["reasoning_content"] = "I should look."  # the assembler keeps no reasoning
    expected = openai_response_to_responses(whole, {"model": "fast", "input": "hi"}, response_id="resp_1",
                                            created_at=100, completed_at=101)
    assert events[-1][1]["response"] == expected
    final = state._completed_response
    assert final is not None
    assert final.output_text == "Checking."
    assert [(item.type, item.id) for item in final.output] == [
        ("reasoning", "rs_1_0"), ("message", "msg_1_1"), ("function_call", "fc_1_2"), ("function_call", "fc_1_3")]
    assert [(call.call_id, call.name, call.arguments) for call in final.output[2:]] == [
        ("call_a", "look", '{"q":1}'), ("call_b", "read", "{}")]
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)


def test_the_created_event_carries_an_in_progress_response() -> None:
    events, _ = stream([_chunk({"content": "hi"}, finish="stop")])
    response = events[0][1]["response"]
    assert (response["id"], response["status"], response["output"], response["usage"], response["model"]) == \
        ("resp_1", "in_progress", [], None, "up-model")
    assert events[1][0] == "response.in_progress"


def test_text_events_carry_their_item_and_content_index() -> None:
    events, _ = stream([_chunk({"content": "Hi"}), _chunk({}, finish="stop")])
    by_name = {name: data for name, data in events}
    assert by_name["response.output_item.added"] == {
        "type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
        "item": {"id": "msg_1_0", "type": "message", "role": "assistant", "status": "in_progress", "content": []}}
    assert by_name["response.content_part.added"] == {
        "type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_1_0", "output_index": 0,
        "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}
    assert by_name["response.output_text.delta"] == {
        "type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_1_0", "output_index": 0,
        "content_index": 0, "delta": "Hi", "logprobs": []}
    assert by_name["response.output_text.done"] == {
        "type": "response.output_text.done", "sequence_number": 5, "item_id": "msg_1_0", "output_index": 0,
        "content_index": 0, "text": "Hi", "logprobs": []}
    assert by_name["response.output_item.done"]["item"]["status"] == "completed"


def test_a_stream_cut_by_the_token_limit_ends_incomplete() -> None:
    events, state = stream([_chunk({"content": "Hel"}), _chunk({}, finish="length"), _chunk(None, usage=USAGE)])
    assert events[-1][0] == "response.incomplete"
    response = events[-1][1]["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert [data["item"]["status"] for name, data in events if name == "response.output_item.done"] == ["incomplete"]
    assert response == respond(_completion({"content": "Hel"}, finish="length", usage=USAGE))
    assert state._completed_response is None  # as with OpenAI: get_final_response() wants response.completed


def test_a_refusal_streams_as_a_refusal_part() -> None:
    events, state = stream([_chunk({"refusal": "No"}), _chunk({"refusal": "."}), _chunk({}, finish="stop")])
    assert [name for name, _ in events][3:7] == ["response.content_part.added", "response.refusal.delta",
                                                 "response.refusal.delta", "response.refusal.done"]
    assert events[-1][1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]
    whole = respond(_completion({"content": None, "refusal": "No."}))
    assert events[-1][1]["response"] == {**whole, "usage": None}  # this stream sent no usage


def test_an_empty_stream_answers_one_empty_message() -> None:
    events, state = stream([_chunk({"role": "assistant"}), _chunk({}, finish="stop")])
    assert state._completed_response is not None and state._completed_response.output_text == ""
    assert events[-1][1]["response"]["output"] == respond(_completion({"content": ""}))["output"]


def test_a_whole_answer_replayed_as_chunks_streams_the_same_response() -> None:
    completion = _completion({"content": "Checking.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "look", "arguments": "{}"}}]}, finish="tool_calls")
    events, _ = stream(completion_to_chunks(completion))
    assert events[-1][1]["response"] == respond(completion)


def test_text_after_a_tool_call_opens_a_second_message() -> None:
    events, state = stream([
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{}"}}]}),
        _chunk({"content": "after"}), _chunk({}, finish="stop")])
    final = state._completed_response
    assert final is not None
    assert [item.type for item in final.output] == ["function_call", "message"]


def test_a_tool_name_sent_in_pieces_is_joined() -> None:
    events, state = stream([
        _chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "get_", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": "{}"}}]}),
        _chunk({}, finish="tool_calls")])
    final = state._completed_response
    assert final is not None and final.output[0].type == "function_call" and final.output[0].name == "get_weather"


def test_choices_other_than_the_first_are_ignored() -> None:
    events, state = stream([{**_chunk({"content": "one"}), "choices": [
        {"index": 0, "delta": {"content": "one"}, "finish_reason": None},
        {"index": 1, "delta": {"content": "two"}, "finish_reason": None}]}, _chunk({}, finish="stop")])
    assert state._completed_response is not None and state._completed_response.output_text == "one"


def test_a_stream_that_breaks_ends_with_response_failed() -> None:
    error = ProviderError("upstream went away", kind="connection")
    events, state = stream([_chunk({"content": "Hal"}), _chunk({"tool_calls": [
        {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{"}}]})], fail=error)
    name, data = events[-1]
    assert name == "response.failed"
    response = data["response"]
    assert (response["status"], response["error"]) == ("failed", {"code": "server_error",
                                                                  "message": "upstream went away"})
    assert [(item["type"], item["status"]) for item in response["output"]] == [
        ("message", "completed"), ("function_call", "incomplete")]
    assert response["output"][1]["arguments"] == "{"
    Response.model_validate(response)


def test_a_rate_limit_failure_has_its_code_and_other_exceptions_say_nothing_inside() -> None:
    events, _ = stream([_chunk({"content": "x"})], fail=ProviderError("slow down", kind="rate_limit"))
    assert events[-1][1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    events, _ = stream([], fail=RuntimeError("secret internals"))
    assert [name for name, _ in events] == ["response.created", "response.in_progress", "response.failed"]
    assert events[-1][1]["response"]["error"] == {"code": "server_error", "message": "the response failed"}


def test_the_error_event_before_a_response_exists() -> None:
    name, data = error_event(ProviderError("no capacity", kind="overloaded", code="overloaded_error"))
    assert (name, data) == ("error", {"type": "error", "code": "overloaded_error", "message": "no capacity",
                                      "param": None, "sequence_number": 0})
    _EVENT.validate_python(data)
    _, data = error_event(PortwayError("bad", kind="bad_request", param="tools[0]"), sequence_number=3)
    assert data == {"type": "error", "code": "invalid_request_error", "message": "bad", "param": "tools[0]",
                    "sequence_number": 3}
    assert error_event(ValueError("internal detail"))[1]["message"] == "the response failed"


# =============================================================================
# native Responses -> canonical: check_response, responses_to_openai_response
# =============================================================================

NATIVE = {
    "id": "resp_up", "object": "response", "created_at": 1700000000, "status": "completed", "model": "gpt-5",
    "error": None, "incomplete_details": None, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "output": [
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Plan."}],
         "encrypted_content": "opaque"},
        {"id": "ws_1", "type": "web_search_call", "status": "completed",
         "action": {"type": "search", "query": "q"}},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Found ", "annotations": []},
                     {"type": "output_text", "text": "it.", "annotations": []}]},
        {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}",
         "status": "completed"},
    ],
    "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
              "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 27},
}


def test_a_native_response_is_a_chat_completion() -> None:
    Response.model_validate(NATIVE)
    completion = responses_to_openai_response(copy.deepcopy(NATIVE))
    ChatCompletion.model_validate(completion)
    assert completion == {
        "id": "resp_up", "object": "chat.completion", "created": 1700000000, "model": "gpt-5",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Found it.", "reasoning_content": "Plan.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
                  "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 4}},
    }


@pytest.mark.parametrize(("details", "finish"), [({"reason": "max_output_tokens"}, "length"),
                                                 ({"reason": "content_filter"}, "content_filter")])
def test_an_incomplete_native_response_has_its_finish_reason(details: dict[str, Any], finish: str) -> None:
    response = {**NATIVE, "status": "incomplete", "incomplete_details": details, "output": NATIVE["output"][2:3]}
    assert responses_to_openai_response(response)["choices"][0]["finish_reason"] == finish


def test_a_native_refusal_is_the_refusal_field() -> None:
    response = {**NATIVE, "output": [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                                      "content": [{"type": "refusal", "refusal": "No."}]}], "usage": None}
    completion = responses_to_openai_response(response)
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": "No."}
    assert completion["choices"][0]["finish_reason"] == "stop" and completion["usage"] is None


def test_a_failed_native_response_is_a_provider_error() -> None:
    response = {**NATIVE, "status": "failed", "output": [],
                "error": {"code": "rate_limit_exceeded", "message": "Too many requests"}}
    with pytest.raises(ProviderError) as info:
        responses_to_openai_response(response)
    assert (info.value.kind, info.value.code, info.value.message) == \
        ("rate_limit", "rate_limit_exceeded", "Too many requests")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda r: [], "the answer is not a JSON object"),
    (lambda r: r.update(id=5), "id is not a string"),
    (lambda r: r.update(status=None, model=["x"]), "model is not a string"),
    (lambda r: r.update(created_at="now"), "created_at is not a number"),
    (lambda r: r.pop("output"), "output is missing or not a list"),
    (lambda r: r["output"].append("item"), "output[4] is not an object"),
    (lambda r: r["output"][0].update(type=None), "output[0].type is not a string"),
    (lambda r: r["output"][3].update(arguments={}), "output[3].arguments is not a string"),
    (lambda r: r["output"][3].pop("call_id"), "output[3].call_id is not a string"),
    (lambda r: r["output"][2].update(content="text"), "output[2].content is not a list"),
    (lambda r: r["output"][2]["content"].append(1), "output[2].content[2] is not an object"),
    (lambda r: r["output"][2]["content"][1].update(text=None), "output[2].content[1].text is not a string"),
    (lambda r: r["output"][2]["content"].append({"type": "refusal"}), "output[2].content[2].refusal is not a string"),
    (lambda r: r["output"][0].update(summary=[{"type": "summary_text"}]), "output[0].summary is not a list of "
                                                                           "text parts"),
    (lambda r: r.update(incomplete_details="long"), "incomplete_details is not an object"),
    (lambda r: r.update(incomplete_details={"reason": 1}), "incomplete_details.reason is not a string"),
    (lambda r: r.update(error={"message": 3}), "error.message is not a string"),
    (lambda r: r.update(usage=[]), "usage is not an object"),
    (lambda r: r["usage"].update(input_tokens="20"), "usage.input_tokens is not an integer"),
    (lambda r: r["usage"].update(output_tokens_details=[]), "usage.output_tokens_details is not an object"),
    (lambda r: r["usage"]["output_tokens_details"].update(reasoning_tokens="4"),
     "usage.output_tokens_details.reasoning_tokens is not an integer"),
])
def test_a_malformed_native_response_is_named(change: Any, reason: str) -> None:
    response = copy.deepcopy(NATIVE)
    replaced = change(response)
    with pytest.raises(MalformedAnswer) as info:
        responses_to_openai_response(replaced if replaced == [] else response)
    assert str(info.value) == reason


def test_check_response_passes_unknown_items_and_fields() -> None:
    response = {**copy.deepcopy(NATIVE), "future": {"x": 1}}
    response["output"].append({"type": "future_item", "anything": [1]})
    assert check_response(response) is response


# =============================================================================
# ResponsesStreamToOpenAI
# =============================================================================


def native_chunks(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], ResponsesStreamToOpenAI]:
    converter = ResponsesStreamToOpenAI()
    chunks = [chunk for name, data in events for chunk in converter.feed(name, data)]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks, converter


def test_a_native_stream_round_trips_to_the_same_chat_answer() -> None:
    events, _ = stream(TOOL_STREAM)
    chunks, converter = native_chunks(events)
    assert converter.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assembler = StreamAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    result = assembler.result()
    assert result["id"] == "resp_1" and result["model"] == "up-model" and result["created"] == 100
    assert result["choices"] == [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "reasoning_content": "I should look.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "look", "arguments": '{"q":1}'}},
            {"id": "call_b", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}}]
    assert result["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                               "prompt_tokens_details": {"cached_tokens": 0},
                               "completion_tokens_details": {"reasoning_tokens": 0}}


def test_a_native_stream_without_deltas_still_gives_the_text_and_the_call() -> None:
    item = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a":1}',
            "status": "completed"}
    events = [
        ("response.created", {"type": "response.created", "response": {"id": "resp_x", "model": "gpt-5"}}),
        ("response.output_text.done", {"type": "response.output_text.done", "output_index": 0, "content_index": 0,
                                       "item_id": "msg_1", "text": "whole"}),
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 1, "item": item}),
        ("response.completed", {"type": "response.completed", "response": {**NATIVE, "output": [item],
                                                                           "status": "completed"}}),
    ]
    chunks, _ = native_chunks(events)
    assembler = StreamAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    message = assembler.result()["choices"][0]["message"]
    assert message["content"] == "whole"
    assert message["tool_calls"] == [{"id": "call_1", "type": "function", "function": {"name": "f",
                                                                                      "arguments": '{"a":1}'}}]


def test_a_native_incomplete_stream_finishes_with_length() -> None:
    events, _ = stream([_chunk({"content": "Hel"}), _chunk({}, finish="length")])
    chunks, converter = native_chunks(events)
    assert converter.done
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_native_stream_that_is_cut_is_not_done() -> None:
    events, _ = stream(TOOL_STREAM)
    _, converter = native_chunks(events[:-1])
    assert not converter.done


def test_response_failed_and_error_events_raise_provider_errors() -> None:
    events, _ = stream([_chunk({"content": "x"})], fail=ProviderError("limit", kind="rate_limit"))
    converter = ResponsesStreamToOpenAI()
    for name, data in events[:-1]:
        converter.feed(name, data)
    with pytest.raises(ProviderError) as info:
        converter.feed(*events[-1])
    assert (info.value.kind, info.value.code, info.value.message) == ("rate_limit", "rate_limit_exceeded", "limit")
    with pytest.raises(ProviderError) as info:
        ResponsesStreamToOpenAI().feed("error", {"type": "error", "code": "server_error", "message": "boom",
                                                 "param": None, "sequence_number": 0})
    assert (info.value.kind, info.value.message) == ("server_error", "boom")


def test_unknown_native_events_are_ignored() -> None:
    converter = ResponsesStreamToOpenAI()
    assert converter.feed("response.web_search_call.searching", {
        "type": "response.web_search_call.searching", "output_index": 1, "item_id": "ws_1", "sequence_number": 4}) == []
    assert converter.feed(None, {"type": "response.future_event", "anything": 1}) == []


@pytest.mark.parametrize(("data", "reason"), [
    ([], "a stream event is not a JSON object"),
    ({"sequence_number": 1}, "a stream event has no type"),
    ({"type": "response.output_text.delta", "output_index": 0, "delta": None},
     "a response.output_text.delta event's delta is not a string"),
    ({"type": "response.function_call_arguments.delta", "output_index": "0", "delta": "x"},
     "a response.function_call_arguments.delta event's output_index is not an integer"),
    ({"type": "response.output_item.added", "output_index": 0, "item": None},
     "a response.output_item.added event's item is not an object"),
    ({"type": "response.output_item.added", "output_index": 0,
      "item": {"type": "function_call", "call_id": "c", "name": 1, "arguments": ""}},
     "a response.output_item.added event's item.name is not a string"),
    ({"type": "response.output_text.done", "output_index": 0, "text": 5},
     "a response.output_text.done event's text is not a string"),
    ({"type": "response.created", "response": "r"}, "a response.created event has no response object"),
    ({"type": "response.created", "response": {"id": 5}}, "a response.created event's response.id is not a string"),
    ({"type": "response.completed", "response": {"id": "r", "output": {}}}, "output is missing or not a list"),
])
def test_malformed_native_events_are_named(data: Any, reason: str) -> None:
    with pytest.raises(MalformedAnswer) as info:
        ResponsesStreamToOpenAI().feed(None, data)
    assert str(info.value) == reason
