"""A round trip through a running gateway with the ``anthropic`` SDK on
``/v1/messages``: a DeepSeek reasoner's tool loop, where DeepSeek wants the
tool turn's reasoning back and the Anthropic client sends it as a thinking
block."""

from __future__ import annotations

from portway_deepseek.testing import DeepSeekAPI

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.script import ToolCall, Turn, say

KEY = "sk-deepseek-anthropic-0123456789"
TOOL = {"name": "get_weather", "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
QUESTION = {"role": "user", "content": "Weather in Paris?"}


def test_a_reasoner_tool_loop_through_v1_messages(fake_upstream: FakeUpstream) -> None:
    thought = "I should look it up."
    api = DeepSeekAPI([Turn((ToolCall("get_weather", {"city": "Paris"}, "call_1"),), reasoning=thought),
                       say("Sunny in Paris.")], api_key=KEY, chat_path="/chat/completions").install(fake_upstream)
    config = {"providers": {"ds": {"type": "deepseek", "api_key": KEY, "base_url": fake_upstream.url}}}
    with GatewayServer(config) as gateway:
        client = gateway.anthropic_client()
        first = client.messages.create(model="ds/deepseek-reasoner", max_tokens=500, tools=[TOOL],
                                       messages=[QUESTION])
        assert [block.type for block in first.content] == ["thinking", "tool_use"]
        assert first.content[0].thinking == thought and first.stop_reason == "tool_use"
        tool_use = first.content[1]
        second = client.messages.create(model="ds/deepseek-reasoner", max_tokens=500, tools=[TOOL], messages=[
            QUESTION, {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny"}]}])
    assert [block.text for block in second.content if block.type == "text"] == ["Sunny in Paris."]
    assert not api.refusals
    sent_back = api.calls[1].body["messages"][1]
    assert (sent_back["tool_calls"][0]["function"]["name"], sent_back["reasoning_content"]) == ("get_weather", thought)
    assert "thinking_blocks" not in sent_back
