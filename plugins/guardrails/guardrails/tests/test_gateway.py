"""Guardrails through a running gateway, driven with the openai and anthropic
SDKs, in front of fake OpenAI and Anthropic upstreams: deny (no upstream
call for an input denial), redact (the upstream receives the redacted text;
the client gets redacted output), flag (passes, recorded), streamed and not,
from the config's default, an alias and the request header."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from portway.config import ConfigError
from portway.testing import FakeUpstream, json_reply, sse_reply
from portway.testing.gateway import GatewayServer

KEY = "sk-guardrails-test-0123456789"
OAI = "/v1/chat/completions"
CLAUDE = "/claude/v1/messages"
EMAIL = "jane.doe@example.com"
SECRET = "AKIAIOSFODNN7EXAMPLE"

CHECKS = {
    "pii": {"type": "pii", "action": "redact", "entities": ["email"]},
    "nope": {"type": "regex", "pattern": "(?i)forbidden", "action": "deny", "on": ["input"]},
    "short": {"type": "length", "max_chars": 40, "action": "deny", "on": ["input"]},
    "keys": {"type": "secrets", "action": "deny", "on": ["output"]},
    "words": {"type": "deny-list", "terms": ["banana"], "action": "flag"},
}


def config(upstream: FakeUpstream, default: list[str] | None = None, **guardrails: Any) -> dict[str, Any]:
    return {
        "providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"},
                      "claude": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url + "/claude/v1"}},
        "models": {"plain": {"target": {"provider": "oai", "model": "m"}},
                   "bot": {"target": {"provider": "oai", "model": "m"}, "guardrails": ["short", "keys"]},
                   "claude-plain": {"target": {"provider": "claude", "model": "claude-x"}},
                   "claude-bot": {"target": {"provider": "claude", "model": "claude-x"}, "guardrails": ["keys"]}},
        "guardrails": {"checks": CHECKS, "default": ["pii", "nope"] if default is None else default, **guardrails},
    }


def completion(text: str) -> Any:
    return json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


def message(text: str) -> Any:
    return json_reply({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                       "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                       "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2}})


def openai_stream(pieces: list[str]) -> Any:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces]
    events += [chunk({}, "stop"), {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                   "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                                            "total_tokens": 5}}]
    return sse_reply(events, done=True)


def anthropic_stream(pieces: list[str]) -> Any:
    events: list[Any] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                     "stop_sequence": None},
                                  "usage": {"output_tokens": 5}}),
               ("message_stop", {"type": "message_stop"})]
    return sse_reply(events)


def sent_text(request: Any) -> str:
    """Every text the upstream received, joined."""
    body = request.json()
    texts = []
    if isinstance(body.get("system"), str):
        texts.append(body["system"])
    for m in body.get("messages", []):
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts += [part.get("text", "") for part in content or []]
    return "\n".join(texts)


def verdicts(headers: Any) -> str:
    return headers.get("x-portway-guardrails", "")


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


# -- input ------------------------------------------------------------------------------


def test_input_redaction_reaches_the_openai_upstream(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion("ok"))
    with GatewayServer(config(upstream)) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="plain", messages=[{"role": "system", "content": "be nice"},
                                     {"role": "user", "content": f"mail {EMAIL} please"}])
    assert raw.parse().choices[0].message.content == "ok"
    assert sent_text(upstream.last) == "be nice\nmail [REDACTED:email] please"
    assert EMAIL not in upstream.last.body.decode()
    assert verdicts(raw.headers) == "pii=redact:email@input"


def test_input_redaction_reaches_an_anthropic_upstream_through_the_pass_through(upstream: FakeUpstream) -> None:
    upstream.add(CLAUDE, message("ok"))
    with GatewayServer(config(upstream)) as server:
        raw = server.anthropic_client().messages.with_raw_response.create(
            model="claude-plain", max_tokens=50, system=f"owner: {EMAIL}",
            messages=[{"role": "user", "content": [{"type": "text", "text": f"hi, I am {EMAIL}"}]}])
    assert raw.parse().content[0].text == "ok"
    body = upstream.last.json()
    assert EMAIL not in upstream.last.body.decode()
    assert body["system"] == "owner: [REDACTED:email]"
    assert sent_text(upstream.last) == "owner: [REDACTED:email]\nhi, I am [REDACTED:email]"
    assert verdicts(raw.headers) == "pii=redact:email@input"


@pytest.mark.parametrize("stream", [False, True])
def test_an_input_denial_is_a_400_in_openai_shape_and_no_upstream_call(upstream: FakeUpstream, stream: bool) -> None:
    upstream.add(OAI, completion("never"))
    with GatewayServer(config(upstream)) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            server.openai_client().chat.completions.create(
                model="plain", stream=stream, messages=[{"role": "user", "content": "something FORBIDDEN"}])
    assert caught.value.code == "guardrail_denied"
    assert "'nope'" in caught.value.message and "FORBIDDEN" not in caught.value.message
    assert verdicts(caught.value.response.headers) == "nope=deny:regex@input"
    assert upstream.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_an_input_denial_is_a_400_in_anthropic_shape_and_no_upstream_call(upstream: FakeUpstream,
                                                                         stream: bool) -> None:
    upstream.add(CLAUDE, message("never"))
    with GatewayServer(config(upstream)) as server:
        with pytest.raises(anthropic.BadRequestError) as caught:
            server.anthropic_client().messages.create(
                model="claude-plain", max_tokens=50, stream=stream,
                messages=[{"role": "user", "content": "something forbidden"}])
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "guardrail 'nope'" in body["error"]["message"]
    assert upstream.requests == []


def test_flag_passes_and_is_recorded(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion("a banana for you"))
    with GatewayServer(config(upstream, ["words"])) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="plain", messages=[{"role": "user", "content": "one banana please"}])
    assert raw.parse().choices[0].message.content == "a banana for you"
    assert sent_text(upstream.last) == "one banana please"
    assert verdicts(raw.headers) == "words=flag:denied_term@input; words=flag:denied_term@output"


# -- which checks ---------------------------------------------------------------------------


def test_an_alias_adds_its_checks(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion("ok"))
    long = [{"role": "user", "content": "x" * 41}]
    with GatewayServer(config(upstream)) as server:
        client = server.openai_client()
        assert client.chat.completions.create(model="plain", messages=long).choices[0].message.content == "ok"
        with pytest.raises(openai.BadRequestError, match="guardrail 'short'.*41 characters, more than 40"):
            client.chat.completions.create(model="bot", messages=long)
    assert len(upstream.requests) == 1


def test_the_request_header_adds_configured_checks(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion("ok"))
    long = [{"role": "user", "content": "x" * 41}]
    with GatewayServer(config(upstream)) as server:
        client = server.openai_client()
        with pytest.raises(openai.BadRequestError, match="guardrail 'short'"):
            client.chat.completions.create(model="plain", messages=long,
                                           extra_headers={"x-portway-guardrails": "words, short"})
    assert upstream.requests == []


@pytest.mark.parametrize("client_kind", ["openai", "anthropic"])
def test_an_unknown_name_in_the_header_is_a_400_naming_it(upstream: FakeUpstream, client_kind: str) -> None:
    with GatewayServer(config(upstream)) as server:
        if client_kind == "openai":
            with pytest.raises(openai.BadRequestError) as caught:
                server.openai_client().chat.completions.create(
                    model="plain", messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-portway-guardrails": "pii,made-up"})
            assert caught.value.code == "unknown_guardrail" and "'made-up'" in caught.value.message
        else:
            with pytest.raises(anthropic.BadRequestError) as caught:
                server.anthropic_client().messages.create(
                    model="claude-plain", max_tokens=5, messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-portway-guardrails": "made-up"})
            assert "'made-up'" in caught.value.body["error"]["message"]
    assert upstream.requests == []


def test_no_checks_no_hooks(upstream: FakeUpstream) -> None:
    """Installed but not configured, the framework adds nothing to the request path."""
    with GatewayServer({"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}}}
                       ) as server:
        assert "guardrails.runner" not in server.gateway.hooks.implementers("pre_request")
    with GatewayServer(config(upstream)) as server:
        assert "guardrails.runner" in server.gateway.hooks.implementers("pre_request")


@pytest.mark.parametrize(("guardrails", "models", "problem"), [
    ({"checks": {"x": {"type": "no-such"}}}, {}, "guardrails.checks.x.type: unknown guardrail type 'no-such'"),
    ({"checks": {"x": {"type": "regex"}}}, {}, "guardrails.checks.x"),
    ({"checks": {"x": {"type": "regex", "pattern": "a", "colour": 1}}}, {}, "colour"),
    ({"checks": {"x": {"type": "length", "max_chars": 3, "action": "redact"}}}, {}, "it can deny or flag, not redact"),
    ({"checks": {"x": {"type": "models", "allow": ["a"], "on": ["output"]}}}, {}, "runs on input only"),
    ({"checks": {"x": {"type": "regex", "pattern": "a"}}, "default": ["y"]}, {}, "guardrails.default[0]: no check named 'y'"),
    ({"checks": {"x": {"type": "regex", "pattern": "a"}}},
     {"m": {"target": {"provider": "oai", "model": "m"}, "guardrails": ["zz"]}}, "models.m.guardrails: no check named 'zz'"),
])
def test_config_problems_name_the_key(upstream: FakeUpstream, guardrails: dict, models: dict, problem: str) -> None:
    cfg = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
           "models": models, "guardrails": guardrails}
    with pytest.raises(ConfigError) as caught:
        GatewayServer(cfg)
    assert problem in str(caught.value)


# -- output, not streamed -------------------------------------------------------------------------


def test_output_redaction_openai(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion(f"write to {EMAIL}."))
    with GatewayServer(config(upstream)) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="plain", messages=[{"role": "user", "content": "who?"}])
    assert raw.parse().choices[0].message.content == "write to [REDACTED:email]."
    assert verdicts(raw.headers) == "pii=redact:email@output"


def test_output_redaction_anthropic_pass_through(upstream: FakeUpstream) -> None:
    upstream.add(CLAUDE, message(f"write to {EMAIL}."))
    with GatewayServer(config(upstream)) as server:
        raw = server.anthropic_client().messages.with_raw_response.create(
            model="claude-plain", max_tokens=50, messages=[{"role": "user", "content": "who?"}])
    assert raw.parse().content[0].text == "write to [REDACTED:email]."
    assert verdicts(raw.headers) == "pii=redact:email@output"


def test_an_output_denial_is_a_400_naming_the_check(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion(f"the key is {SECRET}"))
    upstream.add(CLAUDE, message(f"the key is {SECRET}"))
    with GatewayServer(config(upstream)) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            server.openai_client().chat.completions.create(model="bot", messages=[{"role": "user", "content": "k?"}])
        assert caught.value.code == "guardrail_denied" and "'keys'" in caught.value.message
        assert SECRET not in caught.value.response.text
        with pytest.raises(anthropic.BadRequestError) as denied:
            server.anthropic_client().messages.create(model="claude-bot", max_tokens=50,
                                                      messages=[{"role": "user", "content": "k?"}])
        assert "guardrail 'keys'" in denied.value.body["error"]["message"]


# -- output, streamed ---------------------------------------------------------------------------

SPLIT = ["Contact jane.d", "oe@exam", "ple.com", " for more", "."]


def test_a_redaction_split_across_chunks_openai(upstream: FakeUpstream) -> None:
    upstream.add(OAI, openai_stream(SPLIT))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": "who?"}])
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    text = "".join(pieces)
    assert text == "Contact [REDACTED:email] for more."
    assert not any(part in text for part in ("jane", "example"))


def test_a_redaction_split_across_chunks_anthropic_target(upstream: FakeUpstream) -> None:
    upstream.add(CLAUDE, anthropic_stream(SPLIT))
    with GatewayServer(config(upstream)) as server:
        with server.anthropic_client().messages.stream(
                model="claude-plain", max_tokens=50, messages=[{"role": "user", "content": "who?"}]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "Contact [REDACTED:email] for more."
    assert final.stop_reason == "end_turn"


def test_a_redaction_split_across_chunks_openai_client_anthropic_target(upstream: FakeUpstream) -> None:
    upstream.add(CLAUDE, anthropic_stream(SPLIT))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model="claude-plain", stream=True, messages=[{"role": "user", "content": "who?"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Contact [REDACTED:email] for more."


def test_text_shorter_than_the_window_comes_with_the_end(upstream: FakeUpstream) -> None:
    upstream.add(OAI, openai_stream(["Hello", " there"]))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": "hi"}])
        chunks = [c for c in stream if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_long_stream_is_released_as_it_goes(upstream: FakeUpstream) -> None:
    """Only the window is held: text further back than it leaves before the end."""
    pieces = [f"word{i:03d} " for i in range(60)]  # 480 characters, window 64
    upstream.add(OAI, openai_stream(pieces))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": "hi"}])
        chunks = [c for c in stream if c.choices]
    contents = [c.choices[0].delta.content or "" for c in chunks]
    assert "".join(contents) == "".join(pieces)
    before_end = "".join(c.choices[0].delta.content or "" for c in chunks if not c.choices[0].finish_reason)
    assert len(before_end) >= len("".join(pieces)) - 64 - len(pieces[0])
    assert len(contents[-1]) <= 64 + len(pieces[0])


@pytest.mark.parametrize("model", ["bot", "claude-bot"])
def test_a_denial_mid_stream_ends_it_with_an_error_event_openai(upstream: FakeUpstream, model: str) -> None:
    pieces = ["Here is the key: AKIA", "IOSFODNN7", "EXAMPLE and more ", "text after it"]
    upstream.add(OAI, openai_stream(pieces))
    upstream.add(CLAUDE, anthropic_stream(pieces))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "k?"}])
        got: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                if chunk.choices:
                    got.append(chunk.choices[0].delta.content or "")
    assert "guardrail 'keys'" in caught.value.message
    assert "AKIA" not in "".join(got) and SECRET not in "".join(got)


def test_a_denial_mid_stream_ends_it_with_an_error_event_anthropic(upstream: FakeUpstream) -> None:
    pieces = ["Here is the key: AKIA", "IOSFODNN7", "EXAMPLE and more ", "text after it"]
    upstream.add(CLAUDE, anthropic_stream(pieces))
    with GatewayServer(config(upstream)) as server:
        import httpx

        with httpx.stream("POST", server.url + "/v1/messages", timeout=30,
                          json={"model": "claude-bot", "max_tokens": 50, "stream": True,
                                "messages": [{"role": "user", "content": "k?"}]}) as response:
            raw = b"".join(response.iter_bytes())
    assert response.status_code == 200
    events = [line[len(b"event: "):] for line in raw.split(b"\n") if line.startswith(b"event: ")]
    assert events[-1] == b"error" and b"message_stop" not in events
    error = json.loads(raw.rsplit(b"data: ", 1)[1])
    assert "guardrail 'keys'" in error["error"]["message"]
    assert b"AKIA" not in raw


def test_streamed_verdicts_are_on_the_context(upstream: FakeUpstream) -> None:
    upstream.add(OAI, openai_stream(SPLIT))
    seen: list[list[dict[str, Any]]] = []

    class Spy:
        from portway import hookimpl

        @hookimpl
        def request_finished(self, ctx: Any) -> None:
            seen.append([dict(v) for v in ctx.verdicts])

    with GatewayServer(config(upstream), plugins=[("spy", Spy())]) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": f"I am {EMAIL}"}])
        list(stream)
    [records] = seen
    assert [(v["check"], v["action"], v["category"], v["stage"], v["count"]) for v in records] == [
        ("pii", "redact", "email", "input", 1), ("pii", "redact", "email", "output", 1)]
    assert all(v["type"] == "pii" and v["duration_ms"] >= 0 for v in records)
    assert EMAIL not in json.dumps(records)


# -- json-schema with a re-ask ------------------------------------------------------------------

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}


def schema_config(upstream: FakeUpstream, reask: bool) -> dict[str, Any]:
    cfg = config(upstream, [])
    cfg["guardrails"]["checks"] = {**CHECKS, "shape": {"type": "json-schema", "schema": SCHEMA, "action": "deny",
                                                       "on": ["output"], "reask": reask}}
    cfg["guardrails"]["default"] = ["shape"]
    return cfg


def test_a_schema_failure_is_asked_again_once(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion('{"answer": "four"}'), completion('{"answer": 4}'))
    with GatewayServer(schema_config(upstream, True)) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(
            model="plain", messages=[{"role": "user", "content": "2+2 as JSON"}])
    assert raw.parse().choices[0].message.content == '{"answer": 4}'
    assert raw.parse().usage.total_tokens == 10  # both calls counted
    assert len(upstream.requests) == 2
    again = upstream.requests[1].json()["messages"]
    assert again[-2] == {"role": "assistant", "content": '{"answer": "four"}'}
    assert again[-1]["role"] == "user" and "/answer" in again[-1]["content"]
    assert verdicts(raw.headers) == "shape=reask:schema@output"


def test_a_second_failure_is_denied(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion("not json"), completion('{"answer": "still no"}'))
    with GatewayServer(schema_config(upstream, True)) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            server.openai_client().chat.completions.create(
                model="plain", messages=[{"role": "user", "content": "2+2 as JSON"}])
    assert "guardrail 'shape'" in caught.value.message and "/answer" in caught.value.message
    assert len(upstream.requests) == 2
    assert verdicts(caught.value.response.headers) == "shape=reask:schema@output; shape=deny:schema@output"


def test_without_reask_a_schema_failure_is_denied_at_once(upstream: FakeUpstream) -> None:
    upstream.add(OAI, completion('{"answer": "four"}'))
    with GatewayServer(schema_config(upstream, False)) as server:
        with pytest.raises(openai.BadRequestError, match="guardrail 'shape'"):
            server.openai_client().chat.completions.create(
                model="plain", messages=[{"role": "user", "content": "2+2 as JSON"}])
    assert len(upstream.requests) == 1


# -- streams: the rest ----------------------------------------------------------------------------


def test_held_text_is_released_before_a_tool_call(upstream: FakeUpstream) -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
    upstream.add(OAI, sse_reply([chunk({"role": "assistant", "content": ""}), chunk({"content": "Let me look"}),
                                 chunk({"content": " that up."}), chunk({"tool_calls": [call]}),
                                 chunk({}, "tool_calls")], done=True))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}])
        chunks = [c for c in stream if c.choices]
    deltas = [c.choices[0].delta for c in chunks]
    text_at = [i for i, d in enumerate(deltas) if d.content]
    tool_at = [i for i, d in enumerate(deltas) if d.tool_calls]
    assert "".join(d.content or "" for d in deltas) == "Let me look that up."
    assert tool_at and max(text_at) <= tool_at[0]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_stream_carries_the_input_verdicts_in_its_headers(upstream: FakeUpstream) -> None:
    upstream.add(OAI, openai_stream(["ok"]))
    with GatewayServer(config(upstream)) as server:
        with server.openai_client().chat.completions.with_streaming_response.create(
                model="plain", stream=True, messages=[{"role": "user", "content": f"I am {EMAIL}"}]) as response:
            assert verdicts(response.headers) == "pii=redact:email@input"
            list(response.iter_lines())


def test_a_whole_text_check_on_a_stream_judges_it_at_the_end(upstream: FakeUpstream) -> None:
    cfg = config(upstream, ["long"])
    cfg["guardrails"]["checks"] = {**CHECKS, "long": {"type": "length", "max_chars": 10, "action": "deny",
                                                      "on": ["output"]}}
    upstream.add(OAI, openai_stream(["a fairly ", "long answer"]))
    with GatewayServer(cfg) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.APIError, match=r"guardrail 'long'.*20 characters, more than 10"):
            list(stream)


def raw_messages_stream(server: GatewayServer, model: str) -> bytes:
    import httpx

    with httpx.stream("POST", server.url + "/v1/messages", timeout=30,
                      json={"model": model, "max_tokens": 50, "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as response:
        return b"".join(response.iter_bytes())


def test_an_anthropic_stream_stays_a_pass_through_without_output_span_checks(upstream: FakeUpstream) -> None:
    """Input checks only: the upstream's own events reach the client as they were sent (a field
    Portway does not know survives); with an output span check the stream is translated."""
    events = [("message_start", {"type": "message_start", "message": {
                  "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
                  "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("content_block_delta", {"type": "content_block_delta", "index": 0, "x_new_field": 7,
                                       "delta": {"type": "text_delta", "text": "hello"}}),
              ("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": {"output_tokens": 5}}),
              ("message_stop", {"type": "message_stop"})]
    upstream.add(CLAUDE, sse_reply(events))
    with GatewayServer(config(upstream, ["nope"])) as server:
        assert b"x_new_field" in raw_messages_stream(server, "claude-plain")
    with GatewayServer(config(upstream, ["pii"])) as server:
        raw = raw_messages_stream(server, "claude-plain")
        assert b"x_new_field" not in raw and b"hello" in raw and b"message_stop" in raw


# -- nested aliases and x-portway-config ------------------------------------------------------------


def test_an_alias_s_checks_apply_where_it_is_nested(upstream: FakeUpstream) -> None:
    cfg = config(upstream)
    cfg["models"]["outer"] = {"targets": [{"alias": "bot"}]}
    upstream.add(OAI, completion("ok"))
    long = [{"role": "user", "content": "x" * 41}]
    with GatewayServer(cfg) as server:
        client = server.openai_client()
        with pytest.raises(openai.BadRequestError, match="guardrail 'short'"):
            client.chat.completions.create(model="outer", messages=long)
        with pytest.raises(openai.BadRequestError, match="guardrail 'short'"):  # a client's own alias cannot skip them
            client.chat.completions.create(model="whatever", messages=long, extra_headers={
                "x-portway-config": json.dumps({"targets": [{"alias": "bot"}]})})
        header_checks = {"x-portway-config": json.dumps({"targets": [{"provider": "oai", "model": "m"}],
                                                         "guardrails": ["short"]})}
        with pytest.raises(openai.BadRequestError, match="guardrail 'short'"):
            client.chat.completions.create(model="whatever", messages=long, extra_headers=header_checks)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="whatever", messages=long, extra_headers={
                "x-portway-config": json.dumps({"targets": [{"provider": "oai", "model": "m"}],
                                                "guardrails": ["invented"]})})
        assert caught.value.code == "unknown_guardrail" and "'invented'" in caught.value.message
    assert upstream.requests == []


def test_explicit_nulls_and_repeated_roles_do_not_release_held_text(upstream: FakeUpstream) -> None:
    """Some upstreams send every delta key, null when unused, or the role on every chunk: the
    window still holds a match split across them."""
    def chunk(content: str) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": content, "refusal": None, "tool_calls": None},
             "finish_reason": None}]}

    upstream.add(OAI, sse_reply([chunk(""), *map(chunk, SPLIT), chunk(""),
                                 {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}], done=True))
    with GatewayServer(config(upstream)) as server:
        stream = server.openai_client().chat.completions.create(
            model="plain", stream=True, messages=[{"role": "user", "content": "who?"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Contact [REDACTED:email] for more."
