"""An upstream's answer is untrusted input.  Streams that stop short, bodies
that are not JSON, JSON of the wrong shape, made-up statuses: each becomes a
classified upstream error that retries and fallbacks see (before the first
chunk), or an error event in the client's format (after it) — never a
success, never a 500 with a traceback, never ``[DONE]`` or ``end_turn`` for a
stream that did not finish."""

from __future__ import annotations

import logging
from typing import Any

import anthropic
import httpx
import openai
import pytest

import portway
from portway.testing import FakeUpstream, Reply, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.servers import RawUpstream
from portway.testing.wire import ANTHROPIC_TOOL_STREAM, openai_chunk

KEY = "sk-untrusted-test-0123456789"
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
GOOD = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from good"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
GOOD_STREAM = [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "fine"}),
               openai_chunk({}, "stop")]


def two_targets(bad_url: str, good_url: str, bad_type: str = "openai") -> dict[str, Any]:
    return {
        "providers": {"bad": {"type": bad_type, "api_key": KEY, "base_url": bad_url},
                      "good": {"type": "openai", "api_key": KEY, "base_url": good_url}},
        "models": {"smart": {"targets": [{"provider": "bad", "model": "m1"}, {"provider": "good", "model": "m2"}]},
                   "bad": {"target": {"provider": "bad", "model": "m1"}}},
        "routing": {"retry": {"attempts": 1, "backoff": {"initial": 0}}},
    }


@pytest.fixture
def servers(gateway_server: Any) -> Any:
    with FakeUpstream() as bad, FakeUpstream() as good:
        good.json(CHAT, GOOD)
        gw = gateway_server(two_targets(bad.url + "/v1", good.url + "/v1"))
        yield gw, bad, good


def sse_lines(gw: GatewayServer, path: str, payload: dict[str, Any], **headers: str) -> tuple[int, list[str]]:
    with httpx.stream("POST", gw.url + path, json=payload, headers=headers, timeout=10) as response:
        return response.status_code, [line for line in response.iter_lines() if line]


# -- streams that stop short (item 6) -----------------------------------------------------------


def test_a_stream_cut_after_its_first_chunks_ends_with_an_error_event_not_done(servers: Any) -> None:
    gw, bad, _ = servers
    bad.add(CHAT, sse_reply([openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "Hel"})]))
    status, lines = sse_lines(gw, CHAT, {"model": "bad", "messages": HI, "stream": True})
    assert status == 200
    assert "data: [DONE]" not in lines
    assert '"Hel"' in "".join(lines)
    last = httpx.Response(200, content=lines[-1].removeprefix("data: ")).json()
    assert last["error"]["type"] == "api_error"
    assert "ended before it finished" in last["error"]["message"]
    # The openai SDK raises on the error event instead of returning a short answer.
    client = gw.openai_client()
    with pytest.raises(openai.APIError, match="ended before it finished"):
        list(client.chat.completions.create(model="bad", messages=HI, stream=True))


def test_a_cut_stream_to_an_anthropic_client_never_says_end_turn(servers: Any) -> None:
    gw, bad, _ = servers
    bad.add(CHAT, sse_reply([openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "Hel"})]))
    status, lines = sse_lines(gw, "/v1/messages", {"model": "bad", "max_tokens": 5, "messages": HI, "stream": True})
    assert status == 200
    assert "event: message_stop" not in lines and not any("end_turn" in line for line in lines)
    assert lines[-2] == "event: error"
    with pytest.raises(anthropic.APIStatusError, match="ended before it finished"):
        with gw.anthropic_client().messages.stream(model="bad", max_tokens=5, messages=HI) as stream:
            stream.get_final_message()


@pytest.mark.parametrize("reply", [
    sse_reply([]),  # a 200 that closes with nothing
    sse_reply([b": keep-alive\n\n"]),  # only a comment
    sse_reply([openai_chunk({"role": "assistant", "content": ""})]),  # one chunk, then nothing
])
def test_a_stream_that_stops_before_finishing_falls_back_when_nothing_was_sent(
        servers: Any, reply: Reply) -> None:
    gw, bad, good = servers
    good.sse(CHAT, GOOD_STREAM, done=True)
    bad.add(CHAT, reply)
    client = gw.openai_client()
    with client.chat.completions.with_streaming_response.create(model="smart", messages=HI, stream=True) as raw:
        assert raw.headers["x-portway-provider"] == "good"
        chunks = list(raw.parse())
    # Nothing of the first answer (a role announcement is not an answer) reached the client: a clean fallback.
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fine"
    assert len(bad.requests) == 1 and len(good.requests) == 1


def test_a_stream_that_sends_nothing_is_a_502_without_fallback(servers: Any) -> None:
    gw, bad, _ = servers
    bad.add(CHAT, sse_reply([]))
    with pytest.raises(openai.APIStatusError) as caught:
        list(gw.openai_client().chat.completions.create(model="bad", messages=HI, stream=True))
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-portway-provider"] == "bad"


def test_a_finish_reason_without_done_is_a_finished_stream(servers: Any) -> None:
    gw, bad, _ = servers
    bad.add(CHAT, sse_reply(GOOD_STREAM))  # no [DONE]: some servers end like this
    status, lines = sse_lines(gw, CHAT, {"model": "bad", "messages": HI, "stream": True})
    assert status == 200 and lines[-1] == "data: [DONE]"


@pytest.mark.parametrize(("error", "status", "sdk_error"), [
    ({"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}, 429, openai.RateLimitError),
    ({"message": "model overloaded", "type": "server_error"}, 502, openai.APIStatusError),
])
def test_a_json_error_answering_a_stream_request_is_that_error(
        servers: Any, error: dict[str, Any], status: int, sdk_error: type[Exception]) -> None:
    gw, bad, _ = servers
    bad.json(CHAT, {"error": error})  # a 200 with an error body instead of an event stream
    with pytest.raises(sdk_error) as caught:
        list(gw.openai_client().chat.completions.create(model="bad", messages=HI, stream=True))
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert error["message"] in str(caught.value)


def test_a_whole_completion_answering_a_stream_request_is_replayed_as_a_stream(servers: Any) -> None:
    gw, bad, _ = servers
    bad.json(CHAT, GOOD)  # a server that ignores "stream": true
    chunks = list(gw.openai_client().chat.completions.create(model="bad", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from good"


def test_an_anthropic_stream_cut_before_message_stop_is_an_error(gateway_server: Any) -> None:
    with FakeUpstream() as up:
        up.sse("/v1/messages", ANTHROPIC_TOOL_STREAM[:4])  # message_start .. first text delta, then closed
        gw = gateway_server({"providers": {"claude": {"type": "anthropic", "api_key": KEY, "base_url": up.url}}})
        status, lines = sse_lines(gw, CHAT, {"model": "claude/c", "messages": HI, "stream": True})
    assert status == 200 and "data: [DONE]" not in lines
    assert "message_stop" in lines[-1]


# -- answers that are not what they claim (items 7, 27) ------------------------------------------

MALFORMED_COMPLETIONS: list[tuple[str, bytes]] = [
    ("not JSON", b"<html>502 Bad Gateway</html>"),
    ("null", b"null"),
    ("a number", b"123"),
    ("a list", b"[1, 2]"),
    ("id is a number", b'{"id": 5, "choices": []}'),
    ("no choices", b'{"id": "x"}'),
    ("choices not a list", b'{"choices": "x"}'),
    ("a choice that is a string", b'{"choices": ["x"]}'),
    ("message not an object", b'{"choices": [{"index": 0, "message": "hi", "finish_reason": "stop"}]}'),
    ("usage a string", b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, '
                       b'"finish_reason": "stop"}], "usage": "x"}'),
    ("usage counts as strings", b'{"choices": [], "usage": {"prompt_tokens": "5"}}'),
    ("finish_reason a list", b'{"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": ["stop"]}]}'),
    ("index a list", b'{"choices": [{"index": [0], "message": {"content": "x"}, "finish_reason": "stop"}]}'),
    ("tool_calls an object", b'{"choices": [{"index": 0, "message": {"tool_calls": {"a": 1}}}]}'),
    ("tool call arguments a number", b'{"choices": [{"index": 0, "message": {"tool_calls": [{"id": "c", '
                                     b'"function": {"name": "f", "arguments": 5}}]}}]}'),
    ("content a number", b'{"choices": [{"index": 0, "message": {"content": 5}}]}'),
]


@pytest.mark.parametrize(("name", "body"), MALFORMED_COMPLETIONS, ids=[n for n, _ in MALFORMED_COMPLETIONS])
def test_a_malformed_answer_is_a_502_that_falls_back(servers: Any, caplog: pytest.LogCaptureFixture,
                                                    name: str, body: bytes) -> None:
    gw, bad, good = servers
    bad.add(CHAT, Reply(body=body))
    client = gw.openai_client()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="bad", messages=HI)
    assert caught.value.status_code == 502
    assert "provider 'bad'" in caught.value.message and "malformed" in caught.value.message
    with caplog.at_level(logging.WARNING):  # the alias falls back to the healthy target
        raw = client.chat.completions.with_raw_response.create(model="smart", messages=HI)
    assert raw.headers["x-portway-provider"] == "good"
    assert raw.parse().choices[0].message.content == "from good"
    assert not [r for r in caplog.records if r.exc_info], "a malformed answer is classified, not a traceback"


MALFORMED_EVENTS: list[tuple[str, bytes]] = [
    ("not JSON", b"data: {not json\n\n"),
    ("a number", b"data: 123\n\n"),
    ("a list", b"data: [1,2]\n\n"),
    ("choices a string", b'data: {"choices": "x"}\n\n'),
    ("delta a string", b'data: {"choices": [{"index": 0, "delta": "x"}]}\n\n'),
    ("index a list", b'data: {"choices": [{"index": [0], "delta": {"content": "x"}}]}\n\n'),
    ("finish_reason an object", b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": {"a": 1}}]}\n\n'),
    ("usage a string", b'data: {"choices": [], "usage": "x"}\n\n'),
    ("tool call index a string", b'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "0"}]}}]}\n\n'),
]


@pytest.mark.parametrize(("name", "event"), MALFORMED_EVENTS, ids=[n for n, _ in MALFORMED_EVENTS])
def test_a_malformed_first_event_falls_back_and_a_later_one_ends_the_stream(
        servers: Any, caplog: pytest.LogCaptureFixture, name: str, event: bytes) -> None:
    gw, bad, good = servers
    good.sse(CHAT, GOOD_STREAM, done=True)
    bad.add(CHAT, sse_reply([event]), sse_reply([openai_chunk({"content": "partial"}), event]))
    client = gw.openai_client()
    with caplog.at_level(logging.WARNING):
        with client.chat.completions.with_streaming_response.create(model="smart", messages=HI, stream=True) as raw:
            assert raw.headers["x-portway-provider"] == "good"
            assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "fine"
        # The second answer's first chunk went out before the bad event: an error event, not [DONE].
        status, lines = sse_lines(gw, CHAT, {"model": "smart", "messages": HI, "stream": True})
    assert status == 200 and "data: [DONE]" not in lines
    assert '"partial"' in lines[0] and "malformed" in lines[-1]
    assert not [r for r in caplog.records if r.exc_info]


MALFORMED_MESSAGES: list[tuple[str, dict[str, Any] | None]] = [
    ("null", None),
    ("text null", {"content": [{"type": "text", "text": None}], "stop_reason": "end_turn"}),
    ("content a string", {"content": "hi"}),
    ("stop_reason a list", {"content": [], "stop_reason": ["end_turn"]}),
    ("tool_use input a list", {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}),
    ("usage counts as strings", {"content": [], "usage": {"input_tokens": "3"}}),
]


@pytest.mark.parametrize(("name", "message"), MALFORMED_MESSAGES, ids=[n for n, _ in MALFORMED_MESSAGES])
def test_a_malformed_anthropic_answer_is_a_502(gateway_server: Any, name: str, message: Any) -> None:
    with FakeUpstream() as up:
        up.json("/v1/messages", message)
        gw = gateway_server({"providers": {"claude": {"type": "anthropic", "api_key": KEY, "base_url": up.url}}})
        with pytest.raises(anthropic.APIStatusError) as caught:
            gw.anthropic_client().messages.create(model="claude/c", max_tokens=5, messages=HI)
    assert caught.value.status_code == 502 and "malformed" in caught.value.message


MALFORMED_ANTHROPIC_EVENTS: list[tuple[str, Any]] = [
    ("delta text null", ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": None}})),
    ("index a list", ("content_block_delta", {"type": "content_block_delta", "index": [0],
                                              "delta": {"type": "text_delta", "text": "x"}})),
    ("stop_reason a list", ("message_delta", {"type": "message_delta", "delta": {"stop_reason": ["x"]}})),
    ("a list", ("content_block_delta", [1, 2])),
    ("message_start without a message", ("message_start", {"type": "message_start", "message": 5})),
]


class Watching:
    """A post_chunk hook: the gateway needs every event's canonical view."""

    @portway.hookimpl
    def post_chunk(self, ctx: Any, chunk: Any) -> None:
        return None


@pytest.mark.parametrize(("name", "event"), MALFORMED_ANTHROPIC_EVENTS, ids=[n for n, _ in MALFORMED_ANTHROPIC_EVENTS])
@pytest.mark.parametrize("client", ["openai", "anthropic-watched"])
def test_a_malformed_anthropic_event_ends_the_stream_cleanly(gateway_server: Any, name: str, event: Any,
                                                             client: str) -> None:
    """Whenever the gateway reads the events (a translation for an OpenAI
    client, or hooks that watch the chunks), a malformed one ends the stream
    with an error event, never with the format's normal end."""
    with FakeUpstream() as up:
        up.sse("/v1/messages", [*ANTHROPIC_TOOL_STREAM[:2], event, *ANTHROPIC_TOOL_STREAM[2:]])
        plugins = [("watching", Watching())] if client == "anthropic-watched" else []
        gw = gateway_server({"providers": {"claude": {"type": "anthropic", "api_key": KEY, "base_url": up.url}}},
                            plugins=plugins)
        if client == "openai":
            status, lines = sse_lines(gw, CHAT, {"model": "claude/c", "messages": HI, "stream": True})
            assert "data: [DONE]" not in lines
        else:
            status, lines = sse_lines(gw, "/v1/messages",
                                      {"model": "claude/c", "max_tokens": 5, "messages": HI, "stream": True})
            assert "event: message_stop" not in lines
    assert status in (200, 502)
    assert "malformed" in "".join(lines)


def test_an_unwatched_pass_through_relays_content_events_as_they_came(gateway_server: Any) -> None:
    """With no hook reading the chunks, an Anthropic client's stream from an
    Anthropic upstream is relayed as the upstream sent it: content events are
    not parsed (the client reads them as it would from Anthropic directly);
    the events the gateway needs (the start, usage, the end) still are."""
    odd = ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": None}})
    with FakeUpstream() as up:
        up.sse("/v1/messages", [*ANTHROPIC_TOOL_STREAM[:2], odd, *ANTHROPIC_TOOL_STREAM[2:]])
        gw = gateway_server({"providers": {"claude": {"type": "anthropic", "api_key": KEY, "base_url": up.url}}})
        status, lines = sse_lines(gw, "/v1/messages",
                                  {"model": "claude/c", "max_tokens": 5, "messages": HI, "stream": True})
    assert status == 200 and lines[-2:] == ["event: message_stop", 'data: {"type":"message_stop"}']
    assert '"text":null' in "".join(lines)


@pytest.mark.parametrize("status", [999, 600, 302])
def test_a_made_up_upstream_status_is_a_502(gateway_server: Any, status: int) -> None:
    body = b'{"error": {"message": "weird", "type": "server_error"}}'
    answer = (f"HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
              f"connection: close\r\n\r\n").encode() + body
    with RawUpstream(answer) as raw:
        gw = gateway_server({"providers": {"odd": {"type": "openai", "api_key": KEY, "base_url": raw.url + "/v1"}}})
        for stream in (False, True):
            response = httpx.post(gw.url + CHAT, json={"model": "odd/m", "messages": HI, "stream": stream})
            assert response.status_code == 502
            assert response.json()["error"]["message"].startswith("provider 'odd'")
        assert len(raw.requests) == 2


def test_an_adapter_bug_is_a_classified_502_that_falls_back(gateway_server: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A provider plugin that raises something unclassified (a bug) must not
    cost the request: it is logged with its traceback and fallen back from."""
    import portway
    from portway.providers import Provider

    class Buggy(Provider):
        type = "buggy"
        default_base_url = "http://unused.invalid"

        async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
            raise KeyError("choices")

    class Plugin:
        @portway.hookimpl
        def register_providers(self, register: Any) -> None:
            register(Buggy)

    config = {"providers": {"buggy": {"type": "buggy"}, "mock": {"type": "mock"}},
              "models": {"a": {"targets": [{"provider": "buggy", "model": "x"}, {"provider": "mock", "model": "echo"}]}}}
    gw = gateway_server(config, plugins=[("buggy", Plugin())])
    with caplog.at_level(logging.ERROR):
        raw = gw.openai_client().chat.completions.with_raw_response.create(model="a", messages=HI)
    assert raw.headers["x-portway-provider"] == "mock"
    assert any("KeyError" in r.getMessage() and r.exc_info for r in caplog.records)
    with pytest.raises(openai.APIStatusError) as caught:
        gw.openai_client().chat.completions.create(model="buggy/x", messages=HI)
    assert caught.value.status_code == 502 and "KeyError" in caught.value.message
