"""The Anthropic pass-through's write-back of what hooks changed, exactly:
the request (only the changed messages and keys are translated again), a
whole answer (text, thinking, tool calls, the stop reason) and stream events.
The gateway-level tests (``test_passthrough.py``) show it end to end; these
pin every rule (mutation testing found them loose)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from portway import serialization
from portway.formats.anthropic import anthropic_request_to_openai, anthropic_response_to_openai
from portway.formats.anthropic.passthrough import ANTHROPIC
from portway.native import NativeEvent, NativeRequest

BODY: dict[str, Any] = {
    "model": "claude-x", "max_tokens": 100, "system": "Be brief.", "temperature": 0.3,
    "context_management": {"edits": []},
    "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
    "messages": [
        {"role": "user", "content": "My name is Bob."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi Bob"},
                                          {"type": "tool_use", "id": "t1", "name": "get", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                                     {"type": "text", "text": "thanks"}]},
        {"role": "system", "content": "mid system"},
        {"role": "user", "content": "bye"},
    ],
}
TARGET = SimpleNamespace(model="claude-upstream", params=None)


def hooked(body: dict[str, Any] = BODY) -> tuple[NativeRequest, dict[str, Any], Any]:
    """A request whose canonical view was snapshotted before hooks ran: (the
    request, the canonical body hooks may change, the context)."""
    request = NativeRequest(ANTHROPIC, copy.deepcopy(body), [])
    canonical = anthropic_request_to_openai(request.body, request.origin)
    request.snapshot(canonical)
    return request, canonical, SimpleNamespace(body=canonical)


def sent(request: NativeRequest, ctx: Any, target: Any = TARGET) -> dict[str, Any]:
    body = ANTHROPIC.upstream_body(request, ctx, target)
    assert body is not None
    return body


def test_the_canonical_view_knows_where_each_message_came_from() -> None:
    request, canonical, _ = hooked()
    assert request.origin == [-1, 0, 1, 2, 2, 3, 4]
    assert [m["role"] for m in canonical["messages"]] == ["system", "user", "assistant", "tool", "user", "system",
                                                          "user"]


def test_no_hook_no_change_but_the_model() -> None:
    request = NativeRequest(ANTHROPIC, copy.deepcopy(BODY), [])
    body = sent(request, SimpleNamespace())
    assert body == {**BODY, "model": "claude-upstream"}
    request, _, ctx = hooked()
    assert sent(request, ctx) == {**BODY, "model": "claude-upstream"}
    streamed = NativeRequest(ANTHROPIC, {**copy.deepcopy(BODY), "stream": True}, [])
    assert sent(streamed, SimpleNamespace())["stream"] is True


def test_a_changed_message_is_translated_again_and_only_it() -> None:
    request, canonical, ctx = hooked()
    canonical["messages"][1]["content"] = "My name is [NAME]."
    body = sent(request, ctx)
    assert body["messages"][0] == {"role": "user", "content": "My name is [NAME]."}
    assert body["messages"][1:] == BODY["messages"][1:]
    assert {k: v for k, v in body.items() if k != "messages"} == {
        **{k: v for k, v in BODY.items() if k != "messages"}, "model": "claude-upstream"}


def test_a_message_that_became_two_canonical_ones_is_translated_from_both() -> None:
    request, canonical, ctx = hooked()
    canonical["messages"][4]["content"] = "thank you"  # the text after the tool result, same client message
    body = sent(request, ctx)
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": "42"}, {"type": "text", "text": "thank you"}]}
    assert body["messages"][:2] == BODY["messages"][:2] and body["messages"][3:] == BODY["messages"][3:]


def test_the_system_prompt_and_a_mid_conversation_system_message() -> None:
    request, canonical, ctx = hooked()
    canonical["messages"][0]["content"] = "Be very brief."
    canonical["messages"][5]["content"] = "mid [x]"
    body = sent(request, ctx)
    assert body["system"] == "Be very brief."
    assert body["messages"][3] == {"role": "system", "content": [{"type": "text", "text": "mid [x]"}]}
    cached = {**BODY, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]}
    request, canonical, ctx = hooked(cached)
    canonical["messages"][0]["content"][0]["text"] = "Be kind."
    assert sent(request, ctx)["system"] == [{"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}]


def test_a_hook_that_empties_a_message_keeps_the_turn() -> None:
    request, canonical, ctx = hooked()
    canonical["messages"][6]["content"] = ""
    assert sent(request, ctx)["messages"][4] == {"role": "user", "content": ""}


def test_a_changed_parameter_is_written_back_alone() -> None:
    request, canonical, ctx = hooked()
    canonical["max_tokens"] = 50
    del canonical["temperature"]
    canonical["stop"] = ["END"]
    body = sent(request, ctx)
    assert body["max_tokens"] == 50 and "temperature" not in body and body["stop_sequences"] == ["END"]
    assert body["messages"] == BODY["messages"] and body["tools"] == BODY["tools"]
    assert body["context_management"] == {"edits": []}
    request, canonical, ctx = hooked()
    canonical["tools"][0]["function"]["description"] = "changed"
    canonical["tool_choice"] = "required"
    body = sent(request, ctx)
    assert body["tools"] == [{"name": "get", "description": "changed", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["max_tokens"] == 100 and body["temperature"] == 0.3


def test_added_messages_translate_it_all_keeping_what_has_no_canonical_form() -> None:
    request, canonical, ctx = hooked()
    canonical["messages"].insert(1, {"role": "user", "content": "Context: none."})
    body = sent(request, ctx)
    assert body["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "Context: none."},
                                                                {"type": "text", "text": "My name is Bob."}]}
    assert body["context_management"] == {"edits": []}  # no canonical form: kept as sent
    assert body["system"] == "Be brief."
    assert body["model"] == "claude-upstream" and "stream" not in body


def test_target_params_fill_only_what_the_client_left_out() -> None:
    request = NativeRequest(ANTHROPIC, copy.deepcopy(BODY), [])
    target = SimpleNamespace(model="m", params={"temperature": 0.9, "top_p": 0.5, "stop": ["X"]})
    body = sent(request, SimpleNamespace(), target)
    assert body["temperature"] == 0.3 and body["top_p"] == 0.5 and body["stop_sequences"] == ["X"]


# -- a whole answer ------------------------------------------------------------------------------------

ANSWER: dict[str, Any] = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
    "content": [
        {"type": "thinking", "thinking": "Bob wants the weather.", "signature": "sig"},
        {"type": "text", "text": "Hello Bob."},
        {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"q": "x"}},
        {"type": "text", "text": " More."},
        {"type": "tool_use", "id": "t1", "name": "get", "input": {"a": 1}},
        {"type": "tool_use", "id": "t2", "name": "put", "input": {}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 7},
}


def view() -> dict[str, Any]:
    return anthropic_response_to_openai(copy.deepcopy(ANSWER))


def test_an_untouched_answer_comes_back_as_it_was() -> None:
    assert ANTHROPIC.patch_response(copy.deepcopy(ANSWER), view()) == ANSWER


def test_changed_text_goes_into_the_first_text_block() -> None:
    canonical = view()
    canonical["choices"][0]["message"]["content"] = "Hello [NAME]."
    patched = ANTHROPIC.patch_response(copy.deepcopy(ANSWER), canonical)
    assert [b["type"] for b in patched["content"]] == ["thinking", "text", "server_tool_use", "tool_use", "tool_use"]
    assert patched["content"][1] == {"type": "text", "text": "Hello [NAME]."}
    assert patched["content"][0] == ANSWER["content"][0] and patched["content"][2] == ANSWER["content"][2]
    assert {k: v for k, v in patched.items() if k != "content"} == {k: v for k, v in ANSWER.items() if k != "content"}


def test_emptied_text_removes_the_text_blocks_and_new_text_is_appended() -> None:
    canonical = view()
    canonical["choices"][0]["message"]["content"] = None
    patched = ANTHROPIC.patch_response(copy.deepcopy(ANSWER), canonical)
    assert [b["type"] for b in patched["content"]] == ["thinking", "server_tool_use", "tool_use", "tool_use"]
    bare = {**ANSWER, "content": [{"type": "tool_use", "id": "t1", "name": "get", "input": {}}]}
    canonical = anthropic_response_to_openai(copy.deepcopy(bare))
    canonical["choices"][0]["message"]["content"] = "Added."
    assert ANTHROPIC.patch_response(copy.deepcopy(bare), canonical)["content"] == [
        {"type": "tool_use", "id": "t1", "name": "get", "input": {}}, {"type": "text", "text": "Added."}]


def test_changed_reasoning_keeps_its_signature() -> None:
    canonical = view()
    canonical["choices"][0]["message"]["reasoning_content"] = "[redacted]"
    patched = ANTHROPIC.patch_response(copy.deepcopy(ANSWER), canonical)
    assert patched["content"][0] == {"type": "thinking", "thinking": "[redacted]", "signature": "sig"}
    assert patched["content"][1:] == ANSWER["content"][1:]


def test_tool_calls_changed_or_removed() -> None:
    canonical = view()
    calls = canonical["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["t1", "t2"]
    calls[0]["function"] = {"name": "fetch", "arguments": '{"a": 2}'}
    del calls[1]
    patched = ANTHROPIC.patch_response(copy.deepcopy(ANSWER), canonical)
    assert [b for b in patched["content"] if b["type"] == "tool_use"] == [
        {"type": "tool_use", "id": "t1", "name": "fetch", "input": {"a": 2}}]
    assert patched["stop_reason"] == "tool_use"


def test_a_changed_finish_reason_becomes_the_stop_reason() -> None:
    for finish, stop in (("length", "max_tokens"), ("stop", "end_turn"), ("content_filter", "refusal"),
                         (None, "end_turn")):
        canonical = view()
        canonical["choices"][0]["finish_reason"] = finish
        assert ANTHROPIC.patch_response(copy.deepcopy(ANSWER), canonical)["stop_reason"] == stop, finish


# -- stream events -------------------------------------------------------------------------------------


def event(delta: dict[str, Any], chunk_delta: dict[str, Any]) -> NativeEvent:
    data = {"type": "content_block_delta", "index": 0, "delta": delta}
    chunk = {"choices": [{"index": 0, "delta": chunk_delta, "finish_reason": None}]}
    return NativeEvent("content_block_delta", data, serialization.dumps(data), [chunk])


def changed(e: NativeEvent, chunk_delta: dict[str, Any]) -> list[dict[str, Any] | None]:
    return [{"choices": [{"index": 0, "delta": chunk_delta, "finish_reason": None}]}]


def test_each_delta_kind_is_rewritten_from_its_chunk() -> None:
    cases = [
        ({"type": "text_delta", "text": "Bob"}, {"content": "Bob"}, {"content": "[N]"}, {"text": "[N]"}),
        ({"type": "thinking_delta", "thinking": "hm"}, {"reasoning_content": "hm"}, {"reasoning_content": "h"},
         {"thinking": "h"}),
        ({"type": "input_json_delta", "partial_json": '{"a'}, {"tool_calls": [{"index": 0, "function": {
            "arguments": '{"a'}}]}, {"tool_calls": [{"index": 0, "function": {"arguments": '{"b'}}]},
         {"partial_json": '{"b'}),
    ]
    for delta, before, after, expected in cases:
        e = event(delta, before)
        out = ANTHROPIC.patch_event(e, changed(e, after))
        assert out is not None and out is not e
        assert out.data == {"type": "content_block_delta", "index": 0, "delta": {**delta, **expected}}
        assert serialization.loads(out.raw) == out.data and out.name == "content_block_delta"
        assert ANTHROPIC.patch_event(e, changed(e, before)) is e  # unchanged: the very same bytes
    emptied = event({"type": "text_delta", "text": "Bob"}, {"content": "Bob"})
    assert ANTHROPIC.patch_event(emptied, changed(emptied, {"content": None})).data["delta"]["text"] == ""


def test_what_hooks_cannot_change_passes_and_a_dropped_delta_is_dropped() -> None:
    e = event({"type": "text_delta", "text": "Bob"}, {"content": "Bob"})
    assert ANTHROPIC.patch_event(e, [None]) is None
    signature = event({"type": "signature_delta", "signature": "s"}, {})
    assert ANTHROPIC.patch_event(signature, changed(signature, {"content": "x"})) is signature
    start = NativeEvent("message_start", {"type": "message_start"}, b"{}", [{"choices": []}])
    assert ANTHROPIC.patch_event(start, [None]) is start
    no_chunks = NativeEvent("content_block_delta", {"type": "content_block_delta", "delta": {}}, b"{}", [])
    assert ANTHROPIC.patch_event(no_chunks, [None]) is no_chunks


def test_a_full_translation_of_a_streamed_request_still_streams() -> None:
    request, canonical, ctx = hooked({**BODY, "stream": True})
    canonical["messages"].append({"role": "user", "content": "one more"})
    body = sent(request, ctx)
    assert body["stream"] is True and body["messages"][-1] == {"role": "user", "content": [
        {"type": "text", "text": "bye"}, {"type": "text", "text": "one more"}]}


def test_json_mode_set_by_a_hook_does_not_overwrite_the_system_prompt() -> None:
    """json_object has no Anthropic field: a full translation says it in the
    system prompt, a patched one leaves the client's system prompt alone."""
    request, canonical, ctx = hooked()
    canonical["response_format"] = {"type": "json_object"}
    body = sent(request, ctx)
    assert body["system"] == "Be brief." and body["messages"] == BODY["messages"]
    request, canonical, ctx = hooked()
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    canonical["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = sent(request, ctx)
    assert body["system"] == "Be brief."
    assert body["output_config"]["format"]["schema"] == schema
