"""Coding agents as clients, unchanged: the real Claude Code CLI (installed from
npm by the ``claude_code`` fixture), the OpenAI Agents SDK with its default
(Responses) model, and the openai SDK's Responses API.

Each runs first directly against a fake provider API
(:mod:`portway.testing.anthropic_api`, :mod:`portway.testing.openai_api`),
which pins the fakes to what the real clients send and accept, then through a
real gateway in front of the fake, which is what the gateway must carry.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

from portway.testing import FakeUpstream
from portway.testing.anthropic_api import AnthropicAPI
from portway.testing.gateway import GatewayServer
from portway.testing.openai_api import OpenAIResponsesAPI
from portway.testing.script import Call, Turn, call, say

UPSTREAM_KEY = "sk-ant-upstream-secret-0123456789"
MASTER_KEY = "pw-master-key-for-agents-0123456789"
OPENAI_KEY = "sk-openai-upstream-secret-0123456789"

#: What Claude Code (the version the ``claude_code`` fixture pins) sends on
#: every model call with its default settings; the direct run checks these,
#: so a version bump that changes them says so there first.
CLAUDE_CODE_MODEL = "claude-opus-5-5"
CLAUDE_CODE_BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
                     "per-turn-control-2026-07-01", "mid-conversation-tool-changes-2026-07-01",
                     "thinking-token-count-2026-05-13", "advanced-tool-use-2025-11-20", "effort-2025-11-24"]
CLAUDE_CODE_FIELDS = {
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "medium"},
}

#: Claude Code's mid-conversation system message (after the first user turn) carries its own field.
CLAUDE_CODE_SYSTEM_MESSAGE_FIELDS = {"output_config": {"effort": "medium"}}

GREETING = "Hello from the fake model, through the tool loop.\n"


# -- Claude Code -------------------------------------------------------------------


def claude_script(workdir: Path) -> list[Any]:
    """Turn 1: Claude Code's own ``Write`` tool creates hello.txt; turn 2, once
    the tool result is back, a final text that quotes it."""

    def finish(seen: Call) -> Turn:
        result = seen.last_tool_result
        return say("Done. The tool said: " + (result.text if result else "nothing (no tool_result arrived)"))

    return [call("Write", {"file_path": str(workdir / "hello.txt"), "content": GREETING}), finish]


def run_claude(claude: Any, base_url: str, api_key: str, workdir: Path, home: Path) -> tuple[int, dict[str, Any], str]:
    """``claude -p`` with its default model and tools, non-interactively; its
    exit code, its JSON result, and its stderr."""
    environ = {
        "PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
        # A gateway failure should fail the test at once, not after Claude Code's backoff (minutes at the
        # default of 10 retries); retries change nothing in what is sent.
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    # acceptEdits: `-p` cannot ask for the permission to write; the tools offered stay the defaults.
    done = subprocess.run(
        [str(claude.executable), "-p", "Create hello.txt with a greeting.", "--output-format", "json",
         "--permission-mode", "acceptEdits"],
        cwd=workdir, env=environ, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = {"unparsed stdout": done.stdout[-2000:]}
    return done.returncode, result, done.stderr[-2000:]


def check_claude_code_run(api: AnthropicAPI, outcome: tuple[int, dict[str, Any], str], workdir: Path) -> None:
    """The task completed: exit 0, no error, the file written by the Write
    tool, and the tool's result back at the model on the second call."""
    returncode, result, stderr = outcome
    refusals = [(refusal.status, refusal.message) for refusal in api.refusals]
    said = {name: result.get(name) for name in ("is_error", "result", "api_error_status", "unparsed stdout")}
    assert returncode == 0 and result.get("is_error") is False, f"exit {returncode}, {said}, {stderr=}, {refusals=}"
    assert (workdir / "hello.txt").read_text() == GREETING
    assert result["num_turns"] == 2 and result["result"].startswith("Done. The tool said: File created")
    assert refusals == [] and len(api.calls) == 2
    first, second = api.calls
    assert "Create hello.txt with a greeting." in json.dumps(first.body["messages"])
    tool_uses = [block["id"] for message in second.body["messages"] if message["role"] == "assistant"
                 for block in message["content"] if block["type"] == "tool_use"]
    assert second.last_tool_result is not None and [second.last_tool_result.call_id] == tool_uses
    assert second.last_tool_result.text.startswith("File created successfully")
    assert not second.last_tool_result.is_error


def system_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``role: system`` messages inside ``messages``, each by the fields
    it has besides its role and content."""
    return [{name: value for name, value in message.items() if name not in ("role", "content")}
            for message in body["messages"] if message["role"] == "system"]


def test_claude_code_runs_its_tool_loop_against_the_anthropic_fake(claude_code: Any, tmp_path: Path) -> None:
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir(), home.mkdir()
    api = AnthropicAPI(claude_script(workdir), api_key=UPSTREAM_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        outcome = run_claude(claude_code, upstream.url, UPSTREAM_KEY, workdir, home)
        check_claude_code_run(api, outcome, workdir)
        request = api.calls[0].request
        assert request.query == "beta=true"
        assert request.headers["user-agent"].startswith(f"claude-cli/{claude_code.version} ")
        for seen in api.calls:
            assert seen.body["model"] == CLAUDE_CODE_MODEL and seen.body["stream"] is True
            assert seen.request.headers["anthropic-beta"].split(",") == CLAUDE_CODE_BETAS
            assert {name: seen.body[name] for name in CLAUDE_CODE_FIELDS} == CLAUDE_CODE_FIELDS
            assert system_messages(seen.body) == [CLAUDE_CODE_SYSTEM_MESSAGE_FIELDS]

        # The fake refuses Claude Code's own request as the real API does when one beta goes missing.
        def without_beta(beta: str) -> dict[str, Any]:
            headers = {name: value for name, value in request.headers.items()
                       if name in ("x-api-key", "anthropic-version", "content-type")}
            headers["anthropic-beta"] = ",".join(name for name in CLAUDE_CODE_BETAS if name != beta)
            refused = httpx.post(upstream.url + "/v1/messages", content=request.body, headers=headers)
            assert refused.status_code == 400
            return refused.json()["error"]

        assert without_beta("context-management-2025-06-27") == {
            "type": "invalid_request_error", "message": "context_management: Extra inputs are not permitted"}
        assert without_beta("effort-2025-11-24") == {
            "type": "invalid_request_error", "message": "output_config.effort: Extra inputs are not permitted"}
    assert len(api.calls) == 2  # the refusals did not use up the script


def claude_code_gateway_config(upstream: FakeUpstream) -> dict[str, Any]:
    return {"auth": {"master_key": MASTER_KEY},
            "providers": {"claude": {"type": "anthropic", "api_key": UPSTREAM_KEY, "base_url": upstream.url}},
            "models": {"claude-*": {"target": {"provider": "claude", "model": "claude-*"}}}}


def test_claude_code_runs_its_tool_loop_through_the_gateway(claude_code: Any, tmp_path: Path) -> None:
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir(), home.mkdir()
    api = AnthropicAPI(claude_script(workdir), api_key=UPSTREAM_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        with GatewayServer(claude_code_gateway_config(upstream)) as gateway:
            outcome = run_claude(claude_code, gateway.url, MASTER_KEY, workdir, home)
    check_claude_code_run(api, outcome, workdir)
    for seen in api.calls:
        # The wildcard alias routed Claude Code's default model to the same model upstream.
        assert seen.body["model"] == CLAUDE_CODE_MODEL
        assert seen.request.headers["x-api-key"] == UPSTREAM_KEY  # the provider's key, never the client's
        assert MASTER_KEY not in json.dumps(seen.request.headers)
        sent_betas = seen.request.headers.get("anthropic-beta", "").split(",")
        assert set(CLAUDE_CODE_BETAS) <= set(sent_betas)
        assert {name: seen.body.get(name) for name in CLAUDE_CODE_FIELDS} == CLAUDE_CODE_FIELDS
        assert system_messages(seen.body) == [CLAUDE_CODE_SYSTEM_MESSAGE_FIELDS]  # in place, with its own field


# -- the fakes, pinned with the official SDKs ---------------------------------------


def test_anthropic_fake_speaks_the_messages_api_and_refuses_beta_fields_without_their_beta() -> None:
    api = AnthropicAPI([say("Hello there."), call("get_weather", {"city": "Paris"}, text="Let me check."),
                        say("x")], api_key=UPSTREAM_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        client = anthropic.Anthropic(base_url=upstream.url, api_key=UPSTREAM_KEY, max_retries=0)
        hello = [{"role": "user", "content": "hi"}]
        reply = client.messages.create(model="claude-opus-5-5", max_tokens=100, messages=hello)
        assert (reply.content[0].text, reply.stop_reason, reply.model) == ("Hello there.", "end_turn",
                                                                          "claude-opus-5-5")
        with client.messages.stream(model="claude-opus-5-5", max_tokens=100, messages=hello) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert pieces == ["Let me ", "check."]  # really streamed, in Anthropic's event framing
        assert final.stop_reason == "tool_use" and final.content[1].input == {"city": "Paris"}
        assert final.usage.output_tokens == 5

        def refusal(**request: Any) -> tuple[int, dict[str, Any]]:
            with pytest.raises(anthropic.APIStatusError) as refused:
                client.messages.create(model="claude-opus-5-5", max_tokens=100, **request)
            assert refused.value.body["type"] == "error" and refused.value.body["request_id"].startswith("req_")
            return refused.value.status_code, refused.value.body["error"]

        def invalid(message: str) -> tuple[int, dict[str, Any]]:
            return 400, {"type": "invalid_request_error", "message": message}

        assert refusal(messages=hello, extra_body={"context_management": {"edits": []}}) == invalid(
            "context_management: Extra inputs are not permitted")
        assert refusal(messages=hello, extra_body={"output_config": {"effort": "low"}}) == invalid(
            "output_config.effort: Extra inputs are not permitted")
        assert refusal(messages=hello, extra_body={"made_up": 1}) == invalid("made_up: Extra inputs are not permitted")
        assert refusal(messages=hello + [{"role": "system", "content": "be brief"}]) == invalid(
            'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, '
            'not "system" as an input message role.')
        orphan = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nope", "content": "x"}]}]
        assert refusal(messages=orphan)[1]["message"].startswith(
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_nope.")
        wrong_key = anthropic.Anthropic(base_url=upstream.url, api_key="sk-ant-someone-else", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            wrong_key.messages.create(model="claude-opus-5-5", max_tokens=10, messages=hello)
        no_key = httpx.post(upstream.url + "/v1/messages", json={"model": "m", "max_tokens": 1, "messages": hello},
                            headers={"anthropic-version": "2023-06-01"})
        assert (no_key.status_code, no_key.json()["error"]) == (401, {"type": "authentication_error",
                                                                      "message": "x-api-key header is required"})
        no_version = httpx.post(upstream.url + "/v1/messages", json={"model": "m", "max_tokens": 1, "messages": hello},
                                headers={"x-api-key": UPSTREAM_KEY})
        assert (no_version.status_code, no_version.json()["error"]["message"]) == (
            400, "anthropic-version: header is required")
        no_model = httpx.post(upstream.url + "/v1/messages", json={"max_tokens": 1, "messages": hello},
                              headers={"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"})
        assert (no_model.status_code, no_model.json()["error"]["message"]) == (400, "model: Field required")

        # With their betas the same fields pass, and the refusals did not use up the script.
        accepted = client.messages.create(
            model="claude-opus-5-5", max_tokens=100, messages=hello + [{"role": "system", "content": "be brief"}],
            extra_headers={"anthropic-beta": "context-management-2025-06-27,effort-2025-11-24"},
            extra_body={"context_management": {"edits": []}, "output_config": {"effort": "low"}})
        assert accepted.content[0].text == "x"
    assert len(api.calls) == 3 and len(api.refusals) == 9


def test_openai_responses_fake_speaks_what_the_openai_sdk_reads() -> None:
    api = OpenAIResponsesAPI([say("Hello there."), call("get_weather", {"city": "Paris"}), say("Streamed text.")],
                             api_key=OPENAI_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        client = openai.OpenAI(base_url=upstream.url + "/v1", api_key=OPENAI_KEY, max_retries=0)
        reply = client.responses.create(model="gpt-5.6-luna", input="hi")
        assert (reply.output_text, reply.status, reply.usage.total_tokens) == ("Hello there.", "completed", 15)
        tool = client.responses.create(model="gpt-5.6-luna", input="weather?")
        assert [(item.type, item.name, json.loads(item.arguments)) for item in tool.output] == [
            ("function_call", "get_weather", {"city": "Paris"})]
        with client.responses.stream(model="gpt-5.6-luna", input=[
            {"type": "function_call", "call_id": tool.output[0].call_id, "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": tool.output[0].call_id, "output": "sunny"},
        ]) as stream:
            events = list(stream)
            final = stream.get_final_response()
        assert [event.delta for event in events if event.type == "response.output_text.delta"] == ["Streame", "d text."]
        assert [event.sequence_number for event in events] == list(range(len(events)))
        assert final.output_text == "Streamed text." and events[-1].type == "response.completed"
        assert api.calls[2].last_tool_result.text == "sunny"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-wrong", max_retries=0).responses.create(
                model="gpt-5.6-luna", input="hi")
        no_key = httpx.post(upstream.url + "/v1/responses", json={"model": "gpt-5.6-luna", "input": "hi"})
        assert (no_key.status_code, no_key.json()["error"]["message"]) == (401, "You didn't provide an API key.")
    assert len(api.calls) == 3 and len(api.refusals) == 2


# -- the OpenAI Agents SDK, default (Responses) model --------------------------------


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def weather_script() -> list[Any]:
    def finish(seen: Call) -> Turn:
        result = seen.last_tool_result
        return say("The weather: " + (result.text if result else "unknown (no tool result arrived)"))

    return [call("get_weather", {"city": "Paris"}), finish]


def run_agent(base_url: str, api_key: str, *, streamed: bool) -> Any:
    """A tool-using agent on the SDK's default model and client settings, run to its final output."""
    set_tracing_disabled(True)  # no network: the SDK's tracing exporter must not try to reach OpenAI
    set_default_openai_client(openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0),
                              use_for_tracing=False)
    agent = Agent(name="weather", instructions="Use the tool, then answer.", tools=[get_weather])
    if not streamed:
        return Runner.run_sync(agent, "What is the weather in Paris?").final_output

    async def run() -> Any:
        result = Runner.run_streamed(agent, "What is the weather in Paris?")
        async for _event in result.stream_events():
            pass
        return result.final_output

    return asyncio.run(run())


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
def test_agents_sdk_runs_a_tool_against_the_responses_fake(streamed: bool) -> None:
    api = OpenAIResponsesAPI(weather_script(), api_key=OPENAI_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        output = run_agent(upstream.url + "/v1", OPENAI_KEY, streamed=streamed)
    assert output == "The weather: sunny in Paris"
    first, second = api.calls
    assert first.body["model"] == "gpt-5.6-luna" and bool(first.body.get("stream")) is streamed
    assert [tool["name"] for tool in first.body["tools"]] == ["get_weather"]
    assert first.request.headers["user-agent"].startswith("Agents/Python ")
    assert second.last_tool_result.text == "sunny in Paris"


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
def test_agents_sdk_runs_a_tool_through_the_gateway_on_claude(streamed: bool) -> None:
    api = AnthropicAPI(weather_script(), api_key=UPSTREAM_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        config = {"auth": {"master_key": MASTER_KEY},
                  "providers": {"claude": {"type": "anthropic", "api_key": UPSTREAM_KEY, "base_url": upstream.url}},
                  "models": {"gpt-*": {"target": {"provider": "claude", "model": "claude-sonnet-4-5"}}}}
        with GatewayServer(config) as gateway:
            output = run_agent(gateway.base_url, MASTER_KEY, streamed=streamed)
    assert api.refusals == []
    assert output == "The weather: sunny in Paris"
    first, second = api.calls
    assert first.body["model"] == "claude-sonnet-4-5"
    assert [tool["name"] for tool in first.body["tools"]] == ["get_weather"]
    assert first.request.headers["x-api-key"] == UPSTREAM_KEY
    assert second.last_tool_result.text == "sunny in Paris"


# -- the openai SDK's Responses API through the gateway ------------------------------


@pytest.mark.parametrize("backend", ["mock", "claude"])
def test_openai_sdk_responses_api_through_the_gateway(backend: str) -> None:
    """create, stream, retrieve, and a follow-up on ``previous_response_id``
    that the upstream sees with the first exchange in front of it."""
    api = AnthropicAPI([say("The capital of France is Paris."), say("Streaming works fine."),
                        say("About two million people.")], api_key=UPSTREAM_KEY)
    with FakeUpstream() as upstream:
        api.install(upstream)
        config = {"auth": {"master_key": MASTER_KEY}, "providers": {
            "mock": {"type": "mock"},
            "claude": {"type": "anthropic", "api_key": UPSTREAM_KEY, "base_url": upstream.url}}}
        model = "mock/echo" if backend == "mock" else "claude/claude-sonnet-4-5"
        with GatewayServer(config) as gateway:
            client = gateway.openai_client(api_key=MASTER_KEY)
            question = "What is the capital of France?"
            first = client.responses.create(model=model, input=question)
            with client.responses.stream(model=model, input="Stream, please.") as stream:
                deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
                streamed = stream.get_final_response()
            again = client.responses.retrieve(first.id)
            follow = client.responses.create(model=model, input="And its population?", previous_response_id=first.id)
    if backend == "mock":
        answers = ["Mock reply to: What is the capital of France?", "Mock reply to: Stream, please.",
                   "Mock reply to: And its population?"]
    else:
        answers = ["The capital of France is Paris.", "Streaming works fine.", "About two million people."]
    assert first.status == "completed" and first.output_text == answers[0]
    assert "".join(deltas) == streamed.output_text == answers[1] and len(deltas) > 1  # really streamed
    assert (again.id, again.output_text) == (first.id, first.output_text)
    assert follow.output_text == answers[2] and follow.previous_response_id == first.id
    if backend == "mock":
        # The mock counts the words of every message it got: the first exchange came along.
        assert follow.usage.input_tokens == len(f"{question} {answers[0]} And its population?".split())
    else:
        assert api.refusals == []
        history = [(message["role"], message["content"] if isinstance(message["content"], str)
                    else "".join(block.get("text", "") for block in message["content"]))
                   for message in api.calls[-1].body["messages"]]
        assert history == [("user", question), ("assistant", answers[0]), ("user", "And its population?")]
