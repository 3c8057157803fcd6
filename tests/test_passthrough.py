"""An Anthropic client in front of an Anthropic-format upstream loses nothing:
every field, block, header and stream event goes through as it was sent —
and what hooks change in the canonical view still reaches the wire.  Other
upstreams get what can be translated, by the documented rule."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

import portway
from portway.testing import FakeUpstream, sse_reply
from portway.testing.gateway import GatewayServer

KEY = "sk-ant-upstream-passthrough-0123456789"
MASTER = "pw-master-passthrough-42"
MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"

BODY: dict[str, Any] = {
    "model": "claude-opus-5-5",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "You are Claude Code."},
               {"type": "text", "text": "Context.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Summarise this secret plan."},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"},
             "citations": {"enabled": True}},
            {"type": "search_result", "source": "https://example.com/r", "title": "Result",
             "content": [{"type": "text", "text": "a result"}], "citations": {"enabled": True}},
            {"type": "container_upload", "file_id": "file_011"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Let me search.", "signature": "EqQBCgIYAhIM"},
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "plan"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
                {"type": "web_search_result", "url": "https://example.com", "title": "Ex", "encrypted_content": "Eq"}]},
            {"type": "text", "text": "Found it.", "citations": [
                {"type": "web_search_result_location", "url": "https://example.com", "title": "Ex",
                 "encrypted_index": "Eo", "cited_text": "plan"}]},
            {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "file body"}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\nplatform: linux"}]},
    ],
    "tools": [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
              {"type": "code_execution_20250825", "name": "code_execution"}],
    "thinking": {"type": "adaptive", "display": "omitted"},
    "output_config": {"effort": "high"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "container": "container_011",
    "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}],
    "metadata": {"user_id": "user-1"},
    "future_field": {"nobody": ["knows", "this", "yet"]},
}

ANSWER: dict[str, Any] = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-opus-5-5",
    "content": [
        {"type": "server_tool_use", "id": "srvtoolu_02", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_02", "content": []},
        {"type": "text", "text": "Found the plan.", "citations": [
            {"type": "web_search_result_location", "url": "https://x", "title": "X", "encrypted_index": "Eo",
             "cited_text": "plan"}]},
        {"type": "brand_new_block", "stuff": {"a": 1}},
    ],
    "stop_reason": "end_turn", "stop_sequence": None, "container": {"id": "container_011", "expires_at": "2026"},
    "usage": {"input_tokens": 30, "output_tokens": 9, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0,
              "server_tool_use": {"web_search_requests": 1}, "service_tier": "standard"},
}

STREAM: list[tuple[str, dict[str, Any]]] = [
    ("message_start", {"type": "message_start", "message": {**ANSWER, "content": [], "stop_reason": None,
                                                             "usage": {"input_tokens": 30, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "server_tool_use", "id": "srvtoolu_02", "name": "web_search", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"q\"}"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("ping", {"type": "ping"}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "Found the plan"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
        "type": "citations_delta", "citation": {"type": "web_search_result_location", "url": "https://x",
                                                "title": "X", "encrypted_index": "Eo", "cited_text": "plan"}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta",
                                                                                   "text": ", drop this."}}),
    ("future_event", {"type": "future_event", "whatever": True}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 9}}),
    ("message_stop", {"type": "message_stop"}),
]
STREAM_BYTES = b"".join(sse_reply(STREAM).chunks or [])  # type: ignore[arg-type]

CLIENT_HEADERS = {"x-api-key": MASTER, "anthropic-version": "2023-06-01", "content-type": "application/json",
                  "anthropic-beta": "claude-code-20250219,context-management-2025-06-27,configured-beta",
                  "user-agent": "claude-cli/2.1.332", "x-stainless-os": "Linux"}


def config(upstream: FakeUpstream, oai: FakeUpstream | None = None, **extra: Any) -> dict[str, Any]:
    providers: dict[str, Any] = {"claude": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url,
                                            "beta": ["configured-beta"]}}
    if oai is not None:
        providers["oai"] = {"type": "openai", "api_key": "sk-oai-0123456789", "base_url": oai.url + "/v1"}
    return {"auth": {"master_key": MASTER}, "providers": providers,
            "models": {"claude-*": {"target": {"provider": "claude", "model": "claude-*"}},
                       **({"both": {"targets": [{"provider": "claude", "model": "claude-opus-5-5"},
                                                {"provider": "oai", "model": "gpt-4o"}]}} if oai else {})},
            **extra}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def send(gw: GatewayServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gw.url + MESSAGES + "?beta=true", content=json.dumps(body),
                      headers={**CLIENT_HEADERS, **headers}, timeout=10)


def expected_upstream(body: dict[str, Any], model: str = "claude-opus-5-5") -> dict[str, Any]:
    return {**copy.deepcopy(body), "model": model}


# -- requests reach the upstream as sent -------------------------------------------------------


def test_every_field_and_block_reaches_an_anthropic_upstream_as_sent(upstream: FakeUpstream,
                                                                    gateway_server: Any) -> None:
    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream))
    response = send(gw, BODY)
    assert response.status_code == 200, response.text
    sent = upstream.last
    assert sent.json() == expected_upstream(BODY)
    assert sent.headers["x-api-key"] == KEY and "authorization" not in sent.headers
    # The client's beta flags, merged with the configured ones, each once.
    assert sent.headers["anthropic-beta"] == "configured-beta,claude-code-20250219,context-management-2025-06-27"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    # Only what the API needs goes upstream: not the client's own identity headers.
    assert "x-stainless-os" not in sent.headers and "claude-cli" not in sent.headers.get("user-agent", "")
    # And the answer comes back as the upstream gave it, blocks it knows and blocks it does not.
    assert response.json() == ANSWER
    assert response.headers["x-portway-model"] == "claude-opus-5-5"


def test_a_stream_comes_back_byte_for_byte(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.sse(MESSAGES, STREAM)
    gw = gateway_server(config(upstream))
    with httpx.stream("POST", gw.url + MESSAGES, content=json.dumps({**BODY, "stream": True}),
                      headers=CLIENT_HEADERS, timeout=10) as response:
        assert response.status_code == 200
        received = response.read()
    assert received == STREAM_BYTES
    assert upstream.last.json() == expected_upstream({**BODY, "stream": True})
    # The official SDK reads it, new delta types included.
    client = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)
    with client.messages.stream(model="claude-opus-5-5", max_tokens=100,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["server_tool_use", "text"]
    assert final.content[1].text == "Found the plan, drop this."


def test_a_wildcard_alias_routes_an_agents_changing_model_names(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream))
    for model in ("claude-opus-5-5", "claude-sonnet-5-1-20261101"):
        assert send(gw, {**BODY, "model": model}).status_code == 200
        assert upstream.last.json()["model"] == model  # "claude-*" -> "claude-*": the matched part carried over
    unknown = send(gw, {**BODY, "model": "gpt-5"})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"


def test_probes_and_the_beta_query_are_answered(upstream: FakeUpstream, gateway_server: Any) -> None:
    gw = gateway_server(config(upstream))
    head = httpx.head(gw.url + "/")
    assert head.status_code == 200
    root = httpx.get(gw.url + "/")
    assert root.status_code == 200 and root.json() == {"name": "portway", "status": "ok"}


# -- what hooks do is never bypassed -----------------------------------------------------------


class Redact:
    """Replaces 'secret' in every text the hooks see, requests and answers."""

    def __init__(self) -> None:
        self.chunks_seen = 0

    @portway.hookimpl
    def pre_request(self, ctx: Any) -> None:
        for message in ctx.body["messages"]:
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = content.replace("secret", "[redacted]")
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        part["text"] = part["text"].replace("secret", "[redacted]")

    @portway.hookimpl
    def post_response(self, ctx: Any, response: Any) -> None:
        if not ctx.stream:
            message = response["choices"][0]["message"]
            message["content"] = message["content"].replace("plan", "[redacted]")

    @portway.hookimpl
    def post_chunk(self, ctx: Any, chunk: Any) -> Any:
        self.chunks_seen += 1
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if "drop" in (delta.get("content") or ""):
                return False
            if delta.get("content"):
                delta["content"] = delta["content"].replace("plan", "[redacted]")
        return None


def test_a_redacting_hook_reaches_the_wire_and_the_rest_stays_as_sent(upstream: FakeUpstream,
                                                                      gateway_server: Any) -> None:
    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream), plugins=[("redact", Redact())])
    response = send(gw, BODY)
    assert response.status_code == 200, response.text
    sent = upstream.last.json()
    want = expected_upstream(BODY)
    # The changed message is translated again; its text is what the hook left.
    first = sent["messages"][0]["content"]
    assert first[0] == {"type": "text", "text": "Summarise this [redacted] plan."}
    assert [block["type"] for block in first] == ["text", "document", "search_result", "container_upload"]
    assert first[1:] == want["messages"][0]["content"][1:]
    # Every other message, and every top-level field, exactly as the client sent it.
    assert sent["messages"][1:] == want["messages"][1:]
    assert {k: v for k, v in sent.items() if k != "messages"} == {k: v for k, v in want.items() if k != "messages"}
    # The answer: the hook's change to the text, every other block untouched.
    answer = response.json()
    assert answer["content"][2]["text"] == "Found the [redacted]."
    assert answer["content"][2]["citations"] == ANSWER["content"][2]["citations"]
    assert [b["type"] for b in answer["content"]] == [b["type"] for b in ANSWER["content"]]
    assert answer["usage"] == ANSWER["usage"]


def test_a_hook_that_changes_a_parameter_changes_only_that(upstream: FakeUpstream, gateway_server: Any) -> None:
    class Cap:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> None:
            ctx.body["max_tokens"] = 64
            ctx.body["temperature"] = 0.5

    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream), plugins=[("cap", Cap())])
    send(gw, BODY)
    assert upstream.last.json() == {**expected_upstream(BODY), "max_tokens": 64, "temperature": 0.5}


def test_a_hook_that_adds_a_message_gets_a_full_translation_keeping_unknown_fields(
        upstream: FakeUpstream, gateway_server: Any) -> None:
    class Prepend:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> None:
            ctx.body["messages"].insert(1, {"role": "user", "content": "Be brief."})

    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream), plugins=[("prepend", Prepend())])
    assert send(gw, BODY).status_code == 200
    sent = upstream.last.json()
    assert sent["future_field"] == BODY["future_field"] and sent["container"] == BODY["container"]
    assert sent["context_management"] == BODY["context_management"] and sent["thinking"] == BODY["thinking"]
    user = sent["messages"][0]
    assert user["role"] == "user" and user["content"][0] == {"type": "text", "text": "Be brief."}
    assert user["content"][1:] == BODY["messages"][0]["content"]  # merged into the next user turn
    assert sent["messages"][-1] == {"role": "system", "content": [{"type": "text", "text": "# Environment\nplatform: linux"}]}


def test_an_untouched_body_is_sent_as_is_even_with_hooks_installed(upstream: FakeUpstream,
                                                                   gateway_server: Any) -> None:
    class Look:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> None:
            assert ctx.body["messages"][0]["role"] == "system"  # the canonical view

    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream), plugins=[("look", Look())])
    body = {k: v for k, v in BODY.items() if k != "messages"}
    body["messages"] = [{"role": "user", "content": "no secrets here"}]
    send(gw, body)
    assert upstream.last.json() == expected_upstream(body)


def test_stream_hooks_rewrite_or_drop_only_the_events_they_changed(upstream: FakeUpstream,
                                                                   gateway_server: Any) -> None:
    upstream.sse(MESSAGES, STREAM)
    redact = Redact()
    gw = gateway_server(config(upstream), plugins=[("redact", redact)])
    with httpx.stream("POST", gw.url + MESSAGES, content=json.dumps({**BODY, "stream": True}),
                      headers=CLIENT_HEADERS, timeout=10) as response:
        received = response.read()
    events = [block for block in received.split(b"\n\n") if block]
    upstream_events = [block for block in STREAM_BYTES.split(b"\n\n") if block]
    changed = [e for e in upstream_events if e not in events]
    assert len(changed) == 2  # the text delta with "plan" (rewritten) and the one with "drop" (dropped)
    assert b'"text":"Found the [redacted]"' in received and b"drop this" not in received
    assert b"future_event" in received and b"citations_delta" in received
    assert redact.chunks_seen > 0


# -- to other upstreams: what can be translated is translated ---------------------------------------


def completion(text: str = "from openai") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def test_an_openai_upstream_gets_no_beta_and_the_mid_conversation_system_message_in_place(
        upstream: FakeUpstream, gateway_server: Any) -> None:
    with FakeUpstream() as oai:
        oai.json(CHAT, completion())
        gw = gateway_server(config(upstream, oai))
        body = {"model": "oai/gpt-4o", "max_tokens": 100, "context_management": BODY["context_management"],
                "thinking": BODY["thinking"], "tools": BODY["tools"],
                "messages": [{"role": "user", "content": "hi"},
                             {"role": "system", "content": [{"type": "text", "text": "env: linux"}]}]}
        response = send(gw, body)
        assert response.status_code == 200, response.text
        assert response.json()["content"] == [{"type": "text", "text": "from openai"}]
        sent = oai.last
    assert "anthropic-beta" not in sent.headers and "anthropic-version" not in sent.headers
    wire = sent.json()
    assert wire["messages"] == [{"role": "user", "content": "hi"}, {"role": "system", "content": "env: linux"}]
    assert "context_management" not in wire and "thinking" not in wire
    assert [t["function"]["name"] for t in wire["tools"]] == ["Read"]  # server tools only Anthropic can run: dropped


def test_a_document_no_openai_upstream_can_read_is_a_400_naming_it(upstream: FakeUpstream,
                                                                    gateway_server: Any) -> None:
    with FakeUpstream() as oai:
        oai.json(CHAT, completion())
        gw = gateway_server(config(upstream, oai))
        response = send(gw, {**BODY, "model": "oai/gpt-4o"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert "document block with a 'url' source cannot be sent to provider 'oai'" in error["message"]
        assert oai.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_from_an_anthropic_target_to_an_openai_one_answers_in_anthropic_shape(
        upstream: FakeUpstream, gateway_server: Any, stream: bool) -> None:
    upstream.json(MESSAGES, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                  status=529)
    with FakeUpstream() as oai:
        if stream:
            oai.sse(CHAT, [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                            "choices": [{"index": 0, "delta": {"content": "fallback"}, "finish_reason": None}]},
                           {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}], done=True)
        else:
            oai.json(CHAT, completion("fallback"))
        gw = gateway_server(config(upstream, oai))
        client = anthropic.Anthropic(base_url=gw.url, api_key=MASTER, max_retries=0)
        body = {"model": "both", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            with client.messages.stream(**body) as events:
                final = events.get_final_message()
        else:
            final = client.messages.create(**body)
        assert final.content[0].text == "fallback"
        assert len(upstream.requests) == 1 and len(oai.requests) == 1


def test_usage_of_a_passed_through_answer_reaches_the_hooks(upstream: FakeUpstream, gateway_server: Any) -> None:
    seen: list[Any] = []

    class Sink:
        @portway.hookimpl
        def request_finished(self, ctx: Any) -> None:
            seen.append(ctx.usage)

    upstream.json(MESSAGES, ANSWER)
    gw = gateway_server(config(upstream), plugins=[("sink", Sink())])
    send(gw, BODY)
    assert seen == [{"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49,
                     "prompt_tokens_details": {"cached_tokens": 10}}]


def test_config_refuses_misused_wildcards() -> None:
    from portway.config import ConfigError, parse

    base = {"providers": {"c": {"type": "mock"}}}
    with pytest.raises(ConfigError, match="may contain one"):
        parse({**base, "models": {"a*b*": {"target": {"provider": "c", "model": "x"}}}})
    with pytest.raises(ConfigError, match="alias 'plain' has none"):
        parse({**base, "models": {"plain": {"target": {"provider": "c", "model": "x-*"}}}})
    assert parse({**base, "models": {"claude-*": {"target": {"provider": "c", "model": "claude-*"}}}}).models


def test_exact_aliases_beat_wildcards_and_the_most_specific_wildcard_wins(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"m": {"type": "mock"}}, "models": {
        "*": {"target": {"provider": "m", "model": "catch-all"}},
        "claude-*": {"target": {"provider": "m", "model": "family-*"}},
        "claude-opus-*": {"target": {"provider": "m", "model": "opus-*"}},
        "claude-opus-5-5": {"target": {"provider": "m", "model": "exact"}}}})
    client = gw.openai_client()

    def served(model: str) -> str:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "x"}])
        return raw.headers["x-portway-model"]

    assert served("claude-opus-5-5") == "exact"
    assert served("claude-opus-4-1") == "opus-4-1"
    assert served("claude-haiku-5") == "family-haiku-5"
    assert served("gpt-5") == "catch-all"
    assert served("m/echo") == "echo"  # <provider>/<model> before wildcards
    ids = [m.id for m in client.models.list()]
    assert "claude-opus-5-5" in ids and "claude-*" not in ids and "*" not in ids


def test_native_body_errors_are_classified(upstream: FakeUpstream, gateway_server: Any) -> None:
    """The real API refuses a beta field without its beta header: the client
    gets Anthropic's own 400, message kept."""
    upstream.json(MESSAGES, {"type": "error", "error": {
        "type": "invalid_request_error", "message": "context_management: requires beta context-management-2025-06-27"}},
        status=400)
    gw = gateway_server(config(upstream))
    response = send(gw, BODY, **{"anthropic-beta": ""})
    assert response.status_code == 400
    assert response.json()["error"]["message"].endswith("requires beta context-management-2025-06-27")
    assert upstream.last.headers["anthropic-beta"] == "configured-beta"
