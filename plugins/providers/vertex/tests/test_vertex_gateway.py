"""The vertex provider behind a real gateway: Claude passes through for
Anthropic clients as sent, Gemini and OpenAI clients get translations."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from portway.testing import FakeUpstream, sse_reply
from portway.testing.script import call, say
from portway_vertex.testing import (
    Clock,
    GeminiOnVertex,
    ServiceAccountKey,
    TokenEndpoint,
    VertexClaudeAPI,
    service_account_file,
    vertex_prefix,
)

MASTER = "pw-master-vertex-0123"
CLAUDE = "claude-opus-4-1@20250805"
CLAUDE_PATH = f"{vertex_prefix(publisher='anthropic')}/{CLAUDE}"

BODY: dict[str, Any] = {
    "model": CLAUDE,
    "max_tokens": 512,
    "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Read /a"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Reading.", "signature": "EqQBCgIYAhIM"},
            {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "file body"}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\nplatform: linux"}]},
    ],
    "tools": [{"name": "Read", "input_schema": {"type": "object"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "future_field": {"nobody": ["knows", "this", "yet"]},
}
ANSWER: dict[str, Any] = {
    "id": "msg_vrtx_01", "type": "message", "role": "assistant", "model": "claude-opus-4-1",
    "content": [{"type": "text", "text": "Done."}, {"type": "brand_new_block", "stuff": {"a": 1}}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 30, "output_tokens": 9, "cache_read_input_tokens": 10},
}
STREAM = [
    ("message_start", {"type": "message_start", "message": {**ANSWER, "content": [], "stop_reason": None,
                                                             "usage": {"input_tokens": 30, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Done."}}),
    ("future_event", {"type": "future_event", "whatever": True}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 9}}),
    ("message_stop", {"type": "message_stop"}),
]
HEADERS = {"x-api-key": MASTER, "anthropic-version": "2023-06-01", "content-type": "application/json",
           "anthropic-beta": "context-management-2025-06-27,configured-beta"}


@pytest.fixture
def account(tmp_path: Path, fake_upstream: FakeUpstream) -> ServiceAccountKey:
    return service_account_file(tmp_path, fake_upstream.url + "/token")


@pytest.fixture
def tokens(fake_upstream: FakeUpstream, account: ServiceAccountKey) -> TokenEndpoint:
    return TokenEndpoint(account.public_key, clock=Clock()).install(fake_upstream)


@pytest.fixture
def gateway(gateway_server: Any, fake_upstream: FakeUpstream, account: ServiceAccountKey,
            tokens: TokenEndpoint) -> Any:
    return gateway_server({"auth": {"master_key": MASTER}, "providers": {"vx": {
        "type": "vertex", "credentials": str(account.path), "base_url": fake_upstream.url,
        "beta": ["configured-beta"]}},
        "models": {"claude-*": {"target": {"provider": "vx", "model": "claude-*"}},
                   "gemini-*": {"target": {"provider": "vx", "model": "gemini-*"}}}})


def expected(body: dict[str, Any]) -> dict[str, Any]:
    """What Vertex must receive for ``body``: the same, without the model,
    with anthropic_version."""
    sent = copy.deepcopy(body)
    del sent["model"]
    return {**sent, "anthropic_version": "vertex-2023-10-16"}


def test_an_anthropic_client_passes_through_to_claude_as_sent(gateway: Any, fake_upstream: FakeUpstream,
                                                              tokens: TokenEndpoint) -> None:
    fake_upstream.json(f"{CLAUDE_PATH}:rawPredict", ANSWER)
    response = httpx.post(gateway.url + "/v1/messages?beta=true", content=json.dumps(BODY), headers=HEADERS,
                          timeout=10)
    assert response.status_code == 200, response.text
    sent = fake_upstream.last
    assert sent.path == f"{CLAUDE_PATH}:rawPredict"
    assert sent.json() == expected(BODY)
    [token] = tokens.issued
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert sent.headers["anthropic-beta"] == "configured-beta,context-management-2025-06-27"
    assert "x-api-key" not in sent.headers and "anthropic-version" not in sent.headers
    assert response.json() == ANSWER


def test_a_claude_stream_comes_back_byte_for_byte(gateway: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(f"{CLAUDE_PATH}:streamRawPredict", STREAM)
    with httpx.stream("POST", gateway.url + "/v1/messages", content=json.dumps({**BODY, "stream": True}),
                      headers=HEADERS, timeout=10) as response:
        assert response.status_code == 200
        received = response.read()
    assert received == b"".join(sse_reply(STREAM).chunks or [])  # type: ignore[arg-type]
    assert fake_upstream.last.path == f"{CLAUDE_PATH}:streamRawPredict"
    assert fake_upstream.last.json() == expected({**BODY, "stream": True})


def test_an_anthropic_client_on_gemini_gets_a_translation(gateway: Any, fake_upstream: FakeUpstream,
                                                          tokens: TokenEndpoint) -> None:
    api = GeminiOnVertex([say("Hi from Gemini.")], tokens, models=["gemini-2.5-pro"]).install(fake_upstream)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0)
    answer = client.messages.create(model="gemini-2.5-pro", max_tokens=100, system="Be brief.",
                                    messages=[{"role": "user", "content": "hi"}])
    assert answer.content[0].text == "Hi from Gemini." and not api.refusals
    sent = fake_upstream.last
    assert sent.path == f"{vertex_prefix()}/gemini-2.5-pro:generateContent"
    assert sent.json()["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_an_openai_client_runs_a_tool_loop_on_claude(gateway: Any, fake_upstream: FakeUpstream,
                                                     tokens: TokenEndpoint) -> None:
    api = VertexClaudeAPI([call("Read", {"file_path": "/a"}), say("It says hello.")], tokens,
                          models=[CLAUDE]).install(fake_upstream)
    client = gateway.openai_client(api_key=MASTER)
    tools = [{"type": "function", "function": {"name": "Read", "parameters": {
        "type": "object", "properties": {"file_path": {"type": "string"}}}}}]
    messages: list[Any] = [{"role": "user", "content": "Read /a"}]
    with client.chat.completions.stream(model=CLAUDE, messages=messages, tools=tools) as stream:
        first = stream.get_final_completion()
    [tool_call] = first.choices[0].message.tool_calls
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": tool_call.id, "content": "hello"}]
    second = client.chat.completions.create(model=CLAUDE, messages=messages, tools=tools)
    assert second.choices[0].message.content == "It says hello."
    assert not api.refusals, api.refusals
    assert [r.text for r in api.calls[1].tool_results] == ["hello"]
    assert api.bodies[0]["stream"] is True and "stream" not in api.bodies[1]
    assert tokens.exchanges == 1


def test_count_tokens_for_claude_goes_to_vertexs_count_tokens(gateway: Any, fake_upstream: FakeUpstream,
                                                              tokens: TokenEndpoint) -> None:
    from portway.testing.anthropic_api import COUNT_BASE

    api = VertexClaudeAPI([], tokens, models=[CLAUDE]).install(fake_upstream)
    body = {k: v for k, v in BODY.items() if k not in ("max_tokens", "future_field")}
    counted = httpx.post(gateway.url + "/v1/messages/count_tokens?beta=true", content=json.dumps(body),
                         headers=HEADERS, timeout=10)
    assert counted.status_code == 200, counted.text
    assert counted.json() == {"input_tokens": COUNT_BASE + len(BODY["messages"])}
    assert counted.headers["x-portway-token-count"] == "provider"
    assert api.refusals == []
    sent = fake_upstream.last
    assert sent.path == f"{vertex_prefix(publisher='anthropic')}/count-tokens:rawPredict"
    assert sent.json() == {**body, "anthropic_version": "vertex-2023-10-16"}
    assert sent.headers["authorization"] == f"Bearer {list(tokens.issued)[-1]}"
    # Gemini on Vertex: the gateway's estimate, said to be one
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0)
    estimated = client.messages.with_raw_response.count_tokens(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert estimated.headers["x-portway-token-count"] == "estimate"
