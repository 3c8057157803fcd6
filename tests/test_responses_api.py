"""``/v1/responses`` through a running gateway, with the openai SDK as the
client: translated onto any provider, passed through to OpenAI as sent,
conversation state from the gateway's store, each response visible only to
the key that created it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import portway
from portway.testing import FakeUpstream, json_reply, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.wire import openai_chunk

KEY = "sk-oai-responses-0123456789"
RESPONSES = "/v1/responses"
CHAT = "/v1/chat/completions"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

NATIVE_RESPONSE: dict[str, Any] = {
    "id": "resp_upstream_1", "object": "response", "created_at": 1735689600, "status": "completed",
    "model": "gpt-5", "output": [
        {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
        {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "From OpenAI itself.", "annotations": []}]}],
    "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 6,
              "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 18},
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "temperature": 1.0, "top_p": 1.0,
    "error": None, "incomplete_details": None, "instructions": None, "metadata": {}, "text": {"format": {"type": "text"}},
}


def completion(text: str | None = "Hello there", tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config(upstream: FakeUpstream, responses_api: bool = False, **extra: Any) -> dict[str, Any]:
    """``responses_api``: whether the OpenAI fake stands for OpenAI itself (it
    has /v1/responses) or for a server that only speaks Chat Completions."""
    return {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1",
                                  "responses_api": responses_api},
                          "mock": {"type": "mock"}},
            **extra}


def client(gw: GatewayServer, key: str = "team-a") -> openai.OpenAI:
    return gw.openai_client(api_key=key)


# -- translated onto the chat pipeline -------------------------------------------------------------


def test_a_turn_on_the_mock_and_the_next_one_with_previous_response_id(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"mock": {"type": "mock"}}})
    first = client(gw).responses.create(model="mock/echo", instructions="be brief", input="hello there")
    assert first.output_text == "Mock reply to: hello there" and first.status == "completed"
    assert first.id.startswith("resp_") and first.usage is not None and first.usage.total_tokens > 0
    second = client(gw).responses.create(model="mock/echo", input="and again", previous_response_id=first.id)
    assert second.output_text == "Mock reply to: and again"
    assert second.previous_response_id == first.id
    assert client(gw).responses.retrieve(first.id).output_text == first.output_text
    items = client(gw).responses.input_items.list(second.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]


def test_previous_turns_reach_the_upstream_in_order(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json(CHAT, completion("first answer"))
    gw = gateway_server(config(upstream))
    first = client(gw).responses.create(model="mock/echo", instructions="sys", input="one")
    client(gw).responses.create(model="oai/gpt-4o-mini", input="two", previous_response_id=first.id)
    sent = upstream.last
    assert sent.path == CHAT  # this OpenAI-compatible server has no /responses
    # As OpenAI does, a previous turn's instructions are not carried over.
    assert sent.json()["messages"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Mock reply to: one"},
        {"role": "user", "content": "two"},
    ]


def test_a_function_tool_round_trip_on_a_chat_upstream(upstream: FakeUpstream, gateway_server: Any) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
    upstream.add(CHAT, json_reply(completion(None, [call])), json_reply(completion("Sunny.")))
    gw = gateway_server(config(upstream))
    first = client(gw).responses.create(model="oai/gpt-4o-mini", input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, c.arguments, c.call_id) for c in calls] == [("get_weather", "{\"city\":\"Paris\"}", "call_1")]
    wire = upstream.last.json()
    assert wire["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER["parameters"]}}]
    second = client(gw).responses.create(model="oai/gpt-4o-mini", previous_response_id=first.id, tools=[WEATHER],
                                         input=[{"type": "function_call_output", "call_id": "call_1",
                                                 "output": "sunny, 22C"}])
    assert second.output_text == "Sunny."
    messages = upstream.last.json()["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == "call_1"
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 22C"}


def test_a_stream_on_a_chat_upstream_gives_the_typed_events(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.sse(CHAT, [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "Hel"}),
                        openai_chunk({"content": "lo"}), openai_chunk({}, "stop")], done=True)
    gw = gateway_server(config(upstream))
    with client(gw).responses.stream(model="oai/gpt-4o-mini", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_text.delta") == 2 and kinds[-1] == "response.completed"
    assert final.output_text == "Hello"
    assert client(gw).responses.retrieve(final.id).output_text == "Hello"


def test_a_stream_that_breaks_ends_with_response_failed(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.sse(CHAT, [openai_chunk({"content": "partial"}),
                        {"error": {"message": "The server had an error", "type": "server_error"}}])
    gw = gateway_server(config(upstream))
    with httpx.stream("POST", gw.url + RESPONSES, json={"model": "oai/gpt-4o-mini", "input": "hi", "stream": True},
                      timeout=10) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"].endswith("The server had an error")
    numbers = [event["sequence_number"] for event in events]
    assert numbers == list(range(len(numbers)))


# -- passed through to an upstream that speaks Responses -------------------------------------------


def test_an_openai_target_gets_the_request_as_sent(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json(RESPONSES, NATIVE_RESPONSE)
    gw = gateway_server(config(upstream, responses_api=True))
    body = {"model": "oai/gpt-5", "input": [
        {"type": "reasoning", "id": "rs_0", "summary": [], "encrypted_content": "gAAAA-earlier"},
        {"role": "user", "content": "Search the news."}],
        "tools": [{"type": "web_search"}], "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "high", "summary": "auto"}, "store": True, "text": {"verbosity": "low"}}
    response = httpx.post(gw.url + RESPONSES, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == NATIVE_RESPONSE  # OpenAI's own answer, built-in tool calls and all
    sent = upstream.last
    assert sent.path == RESPONSES and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {**body, "model": "gpt-5", "stream": False}


def test_previous_response_id_goes_to_openai_when_openai_answered_it(upstream: FakeUpstream,
                                                                     gateway_server: Any) -> None:
    upstream.json(RESPONSES, NATIVE_RESPONSE)
    gw = gateway_server(config(upstream, responses_api=True))
    first = client(gw).responses.create(model="oai/gpt-5", input="one")
    assert first.id == "resp_upstream_1"
    client(gw).responses.create(model="oai/gpt-5", input="two", previous_response_id=first.id)
    assert upstream.last.json()["previous_response_id"] == "resp_upstream_1"
    assert upstream.last.json()["input"] == "two"


def test_previous_turns_from_another_provider_are_replayed_to_openai(upstream: FakeUpstream,
                                                                     gateway_server: Any) -> None:
    upstream.json(RESPONSES, NATIVE_RESPONSE)
    gw = gateway_server(config(upstream, responses_api=True))
    first = client(gw).responses.create(model="mock/echo", input="one")
    client(gw).responses.create(model="oai/gpt-5", input="two", previous_response_id=first.id)
    sent = upstream.last.json()
    assert "previous_response_id" not in sent  # OpenAI never saw that id
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Mock reply to: one"}]},
        {"role": "user", "content": "two"},
    ]


def test_a_native_stream_is_relayed_as_sent(upstream: FakeUpstream, gateway_server: Any) -> None:
    events = [
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": {**NATIVE_RESPONSE, "status": "in_progress", "output": []}}),
        ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
                                        "item": {"id": "msg_1", "type": "message", "role": "assistant",
                                                 "status": "in_progress", "content": []}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2,
                                        "item_id": "msg_1", "output_index": 0, "content_index": 0,
                                        "delta": "From OpenAI itself.", "logprobs": []}),
        ("response.completed", {"type": "response.completed", "sequence_number": 3, "response": NATIVE_RESPONSE}),
    ]
    upstream.sse(RESPONSES, events)
    gw = gateway_server(config(upstream, responses_api=True))
    with httpx.stream("POST", gw.url + RESPONSES, json={"model": "oai/gpt-5", "input": "hi", "stream": True},
                      timeout=10) as response:
        received = response.read()
    assert received == b"".join(sse_reply(events).chunks or [])  # type: ignore[arg-type]
    stored = httpx.get(gw.url + RESPONSES + "/resp_upstream_1")  # the same (absent) key as the stream's
    assert stored.status_code == 200 and stored.json() == NATIVE_RESPONSE


def test_a_hook_that_changes_the_request_sends_it_the_canonical_way(upstream: FakeUpstream,
                                                                    gateway_server: Any) -> None:
    class Redact:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> None:
            for message in ctx.body["messages"]:
                if isinstance(message.get("content"), str):
                    message["content"] = message["content"].replace("secret", "[redacted]")

    upstream.json(CHAT, completion("ok"))
    gw = gateway_server(config(upstream, responses_api=True), plugins=[("redact", Redact())])
    answer = client(gw).responses.create(model="oai/gpt-5", input="my secret plan")
    assert answer.output_text == "ok"
    assert upstream.last.path == CHAT
    assert upstream.last.json()["messages"] == [{"role": "user", "content": "my [redacted] plan"}]


# -- what cannot be done, and who may see what ---------------------------------------------------------


def test_a_built_in_tool_for_another_provider_is_a_400_naming_it(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"mock": {"type": "mock"}}})
    with pytest.raises(openai.BadRequestError) as caught:
        client(gw).responses.create(model="mock/echo", input="hi", tools=[WEATHER, {"type": "web_search"}])
    assert caught.value.body["param"] == "tools[1]"  # type: ignore[index]


def test_an_unknown_previous_response_id_is_a_404(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"mock": {"type": "mock"}}})
    with pytest.raises(openai.NotFoundError) as caught:
        client(gw).responses.create(model="mock/echo", input="hi", previous_response_id="resp_nope")
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_a_response_is_visible_only_to_the_key_that_made_it(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"mock": {"type": "mock"}}})
    mine = client(gw, "team-a").responses.create(model="mock/echo", input="private")
    other = client(gw, "team-b")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="mock/echo", input="x", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    assert client(gw, "team-a").responses.retrieve(mine.id).id == mine.id
    client(gw, "team-a").responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        client(gw, "team-a").responses.retrieve(mine.id)


def test_store_false_keeps_nothing(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"mock": {"type": "mock"}}})
    answer = client(gw).responses.create(model="mock/echo", input="forget me", store=False)
    assert answer.output_text == "Mock reply to: forget me"
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.retrieve(answer.id)


def test_input_items_pages(gateway_server: Any) -> None:
    gw = gateway_server({"providers": {"mock": {"type": "mock"}}})
    answer = client(gw).responses.create(model="mock/echo", input=[
        {"role": "user", "content": f"m{i}"} for i in range(5)])
    page = client(gw).responses.input_items.list(answer.id, limit=2, order="asc")
    texts = [item.content[0].text for item in page.data]  # type: ignore[union-attr]
    assert texts == ["m0", "m1"] and page.has_more
    rest = client(gw).responses.input_items.list(answer.id, order="asc", after=page.last_id)
    assert [item.content[0].text for item in rest.data] == ["m2", "m3", "m4"]  # type: ignore[union-attr]
    newest = client(gw).responses.input_items.list(answer.id, limit=1)
    assert newest.data[0].content[0].text == "m4"  # type: ignore[union-attr]
