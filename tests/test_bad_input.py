"""Whatever a client sends, it gets a clear error in its API's shape: never a
500, never a dropped connection, never a body that grows the process
without bound, and the upstream is not called for a request that was
refused."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

import portway
from portway.formats.anthropic import openai_to_anthropic_request
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.servers import raw_request

KEY = "sk-bad-input-test-0123456789"
HI = [{"role": "user", "content": "hi"}]


class Finished:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    @portway.hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.statuses.append(ctx.status)


@pytest.fixture(scope="module")
def rejecting() -> Iterator[tuple[GatewayServer, FakeUpstream, Finished]]:
    """A gateway in front of an OpenAI fake, an Anthropic fake and the mock,
    with a 1 MiB body limit; tests check that refused requests never reach
    the fakes."""
    finished = Finished()
    with FakeUpstream() as upstream:
        config = {
            "server": {"max_body_bytes": 1024 * 1024},
            "providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"},
                          "claude": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url},
                          "mock": {"type": "mock"}},
        }
        with GatewayServer(config, plugins=[("finished", finished)]) as server:
            yield server, upstream, finished


def post(server: GatewayServer, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, headers={"content-type": "application/json"}, timeout=30)


# -- strict types at the boundary (item 23) ---------------------------------------------------

OPENAI_BAD: list[tuple[dict[str, Any], str]] = [
    ({"stream": "false"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"max_tokens": "5"}, "max_tokens"),
    ({"max_tokens": 5.0}, "max_tokens"),
    ({"temperature": "0.5"}, "temperature"),
    ({"n": True}, "n"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"messages": [{"role": "assistant", "content": "x", "thinking_blocks": [1]}]}, "messages[0].thinking_blocks[0]"),
    ({"output_config": "x"}, "output_config"),
    ({"system": 5}, "system"),
    ({"stop_sequences": 5}, "stop_sequences"),
    ({"top_k": "3"}, "top_k"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content"),
]


@pytest.mark.parametrize(("change", "param"), OPENAI_BAD, ids=[p for _, p in OPENAI_BAD])
def test_lax_types_are_refused_on_chat_completions(rejecting: Any, change: dict[str, Any], param: str) -> None:
    server, upstream, _ = rejecting
    before = len(upstream.requests)
    response = post(server, "/v1/chat/completions", {"model": "oai/gpt-4o", "messages": HI, **change})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith(param.split("[")[0]) and param.split(".")[0].split("[")[0] in error["message"]
    assert len(upstream.requests) == before


def test_lax_embeddings_dimensions_are_refused(rejecting: Any) -> None:
    server, upstream, _ = rejecting
    response = post(server, "/v1/embeddings", {"model": "oai/text-embedding-3-small", "input": "x", "dimensions": "8"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "dimensions"


ANTHROPIC_BAD: list[tuple[dict[str, Any], str]] = [
    ({"stream": "true"}, "stream"),
    ({"max_tokens": "5"}, "max_tokens"),
    ({"output_config": "x"}, "output_config"),
    ({"system": 5}, "system"),
    ({"system": [{"type": "text", "text": 5}]}, "system[0].text"),
    ({"stop_sequences": 5}, "stop_sequences"),
    ({"stop_sequences": [5]}, "stop_sequences[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
     "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 5}]}]},
     "messages[0].content[0].content"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]},
     "messages[0].content[0].input"),
    ({"messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]"),
    ({"thinking": "on"}, "thinking"),
    ({"metadata": {"user_id": 5}}, "metadata.user_id"),
]


@pytest.mark.parametrize(("change", "param"), ANTHROPIC_BAD, ids=[p for _, p in ANTHROPIC_BAD])
def test_mistyped_messages_bodies_are_400s_naming_the_parameter(rejecting: Any, change: dict[str, Any],
                                                                param: str) -> None:
    """Any Messages request that needs a translation (here: to an OpenAI-format
    upstream) is checked in full first."""
    server, upstream, _ = rejecting
    before = len(upstream.requests)
    body = {"model": "oai/gpt-4o", "max_tokens": 10, "messages": HI, **change}
    response = post(server, "/v1/messages", body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert param in error["error"]["message"]
    assert len(upstream.requests) == before
    if "max_tokens" not in change:  # (the SDK itself computes with max_tokens)
        with pytest.raises(anthropic.BadRequestError):  # the SDK reads it as the API's own error
            server.anthropic_client().messages.create(**body)


def test_a_request_passed_through_as_it_is_is_checked_by_its_upstream(rejecting: Any) -> None:
    """To an Anthropic upstream, with no hook reading it, a Messages request
    goes as it was sent: the gateway checks what it reads itself (model,
    stream), and the upstream the rest; its 400 reaches the client as it is."""
    server, upstream, _ = rejecting
    upstream.json("/v1/messages", {"type": "error", "error": {
        "type": "invalid_request_error", "message": "stop_sequences: Input should be a valid list"}}, status=400)
    body = {"model": "claude/claude-sonnet-4-5", "max_tokens": 10, "messages": HI, "stop_sequences": 5}
    response = post(server, "/v1/messages", body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "provider 'claude': stop_sequences: Input should be a valid list"
    assert upstream.last.json() == {**body, "model": "claude-sonnet-4-5"}
    for envelope, param in [({"stream": "yes"}, "stream"), ({"model": 5}, "model"), ({"model": ""}, "model")]:
        refused = post(server, "/v1/messages", {**body, **envelope})
        assert refused.status_code == 400 and param in refused.json()["error"]["message"]


def test_unknown_content_blocks_still_pass_validation(rejecting: Any) -> None:
    server, upstream, _ = rejecting
    body = {"model": "mock/echo", "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"},
                                                      {"type": "brand_new_block", "payload": {"a": 1}}]}]}
    response = post(server, "/v1/messages", body)
    # Carried as it is (an Anthropic upstream would get it); the mock reads only the text.
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Mock reply to: hi"


# -- bodies: size and depth (items 12, 13) --------------------------------------------------------


def test_a_client_that_leaves_mid_body_is_no_server_error(rejecting: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Half a body, then the connection closes: the request ends quietly
    (a client that left), not as an internal error with a traceback."""
    server, _, _ = rejecting
    host, port = server.url.removeprefix("http://").split(":")
    with caplog.at_level("ERROR", logger="portway"), socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 1000\r\n\r\n{\"model\": ")
        time.sleep(0.2)
    # The gateway goes on serving, and has logged no failure for the one that left.
    assert post(server, "/v1/chat/completions", {"model": "mock/x", "messages": [{"role": "user", "content": "hi"}]}
                ).status_code == 200
    assert not [r for r in caplog.records if "failed" in r.getMessage()], [r.getMessage() for r in caplog.records]


def test_a_chunked_upload_is_refused_as_soon_as_it_passes_the_limit(rejecting: Any) -> None:
    server, _, _ = rejecting
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"transfer-encoding: chunked\r\n\r\n")
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    stop = threading.Event()

    def upload() -> None:
        # 32 MiB that never ends: the old gateway buffered it all before looking at the size.
        try:
            for _ in range(512):
                if stop.is_set():
                    return
                sock.sendall(chunk)
        except OSError:
            return

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            assert more, "the gateway closed the connection without answering"
            answer += more
    finally:
        stop.set()
        sock.close()
        sender.join(5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in head.lower()


def test_a_declared_oversized_body_is_refused_before_it_is_read(rejecting: Any) -> None:
    server, _, _ = rejecting
    response = raw_request(server.url, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                                       b"content-type: application/json\r\ncontent-length: 5000000")
    assert response.status == 413 and response.json()["error"]["code"] == "request_too_large"


def test_a_body_just_under_the_limit_is_read(rejecting: Any) -> None:
    server, _, _ = rejecting
    text = "y " * (1024 * 1024 // 2 - 200)
    response = post(server, "/v1/chat/completions", {"model": "mock/echo", "messages": [{"role": "user",
                                                                                           "content": text}]})
    assert response.status_code == 200


def nested(depth: int) -> Any:
    """A value ``depth`` containers deep, lists and objects in turn."""
    value: Any = "leaf"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def nested_json(depth: int) -> bytes:
    """The JSON of :func:`nested`, built as text (json.dumps itself stops at ~1000)."""
    opens = "".join('{"a":' if level % 2 else "[" for level in reversed(range(depth)))
    closes = "".join("}" if level % 2 else "]" for level in range(depth))
    return (opens + '"leaf"' + closes).encode()


#: A long field: a body past serialization.WALK_BELOW_BYTES is checked by the encoder, not a walk.
PADDING = b', "pad": "' + b"x" * 8192 + b'"'


@pytest.mark.parametrize("padding", [b"", PADDING], ids=["small", "large"])
@pytest.mark.parametrize("depth", [101, 150, 300, 1100])
def test_deeply_nested_json_is_a_400(rejecting: Any, depth: int, padding: bytes) -> None:
    server, upstream, _ = rejecting
    before = len(upstream.requests)
    deep = nested_json(depth)
    for path, body in [("/v1/chat/completions", b'{"model": "oai/gpt-4o", "messages": [{"role": "user", '
                                                 b'"content": "hi"}], "extra": ' + deep + padding + b"}"),
                       ("/v1/messages", b'{"model": "claude/c", "max_tokens": 5, "messages": [{"role": "user", '
                                        b'"content": "hi"}], "metadata": {"deep": ' + deep + b"}" + padding + b"}")]:
        response = post(server, path, body)
        assert response.status_code == 400, response.text[:200]
        error = response.json()["error"]
        assert error["message"] == "the request body nests deeper than 100 levels"
    assert len(upstream.requests) == before


@pytest.mark.parametrize("pad", ["", "x" * 8192], ids=["small", "large"])
def test_moderately_nested_json_is_served(rejecting: Any, pad: str) -> None:
    server, _, _ = rejecting
    # 100 levels in all: the body, "extra", and 98 below it.
    response = post(server, "/v1/chat/completions", {"model": "mock/echo", "messages": HI, "extra": nested(99),
                                                     "pad": pad})
    assert response.status_code == 200


# -- client text in response headers (item 14) --------------------------------------------------


@pytest.mark.parametrize("model", ["mock/é☃", "mock/a\r\nx-evil: 1", "mock/100%", "mock/\x00nul"])
def test_any_model_name_gives_a_well_formed_answer_and_one_request_finished(rejecting: Any, model: str) -> None:
    server, _, finished = rejecting
    before = len(finished.statuses)
    for stream in (False, True):
        response = post(server, "/v1/chat/completions", {"model": model, "messages": HI, "stream": stream})
        assert response.status_code == 200
        assert "x-evil" not in response.headers
        header = response.headers["x-portway-model"]
        assert header.isascii() and header.isprintable()
        assert httpx.URL("http://x/" + header).path  # percent-encoded, decodable
    deadline = time.monotonic() + 5
    while len(finished.statuses) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert finished.statuses[before:] == [200, 200]


def test_the_mock_answers_for_a_non_ascii_model_with_its_name_encoded(rejecting: Any) -> None:
    server, _, _ = rejecting
    raw = server.openai_client().chat.completions.with_raw_response.create(model="mock/é☃", messages=HI)
    assert raw.headers["x-portway-model"] == "%C3%A9%E2%98%83"


# -- the mock is the embedded default: it answers 400s like any adapter (item 26) ---------------------


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": "x"},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": "abc"},
    {"type": ["string", "null"]},
    {"enum": {"a": 1}},
    {"type": "array", "items": [1, 2]},
    {"type": 5},
    nested(60),
])
def test_the_mock_calls_a_tool_whatever_its_schema(rejecting: Any, schema: Any) -> None:
    server, _, _ = rejecting
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    response = post(server, "/v1/chat/completions", {"model": "mock/tools", "messages": HI, "tools": [tool]})
    assert response.status_code == 200, response.text
    call = response.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "f"
    json.loads(call["function"]["arguments"])


def test_the_mock_ignores_server_tools_from_anthropic_clients(rejecting: Any) -> None:
    server, _, _ = rejecting
    reply = server.anthropic_client().messages.create(
        model="mock/echo", max_tokens=20, messages=HI,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],  # no input_schema
    )
    assert reply.content[0].type == "text" and reply.content[0].text == "Mock reply to: hi"


@pytest.mark.parametrize("dimensions", [4097, 65537, 10_000_000])
def test_the_mock_refuses_huge_embeddings(rejecting: Any, dimensions: int) -> None:
    server, _, _ = rejecting
    with pytest.raises(openai.BadRequestError) as caught:
        server.openai_client().embeddings.create(model="mock/embed", input="x", dimensions=dimensions)
    assert caught.value.body["param"] == "dimensions"  # type: ignore[index]
    vector = server.openai_client().embeddings.create(model="mock/embed", input="x", dimensions=4096,
                                                      encoding_format="float").data[0].embedding
    assert len(vector) == 4096


# -- a long run of same-role messages (item 25) ----------------------------------------------------


def test_a_long_run_of_user_messages_reaches_anthropic_as_one_turn(gateway_server: Any) -> None:
    with FakeUpstream() as up:
        up.json("/v1/messages", {"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                                 "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                                 "usage": {"input_tokens": 1, "output_tokens": 1}})
        gw = gateway_server({"providers": {"claude": {"type": "anthropic", "api_key": KEY, "base_url": up.url}}})
        messages = [{"role": "user", "content": f"m{i}"} for i in range(20_000)]
        response = post(gw, "/v1/chat/completions", {"model": "claude/c", "messages": messages})
        assert response.status_code == 200
        sent = up.last.json()["messages"]
    assert len(sent) == 1 and sent[0]["role"] == "user"
    assert [block["text"] for block in sent[0]["content"]] == [f"m{i}" for i in range(20_000)]


def test_merging_same_role_messages_copies_each_block_a_bounded_number_of_times(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The quadratic version re-copied the whole merged turn for every new
    message (n²/2 block copies for n messages); counting the blocks the merge
    copies tells linear from quadratic without a stopwatch."""
    from portway.formats.anthropic import upstream as converter

    copied = 0
    original = converter.as_blocks

    def counting(content: Any) -> Any:
        nonlocal copied
        blocks = original(content)
        copied += len(blocks)
        return blocks

    monkeypatch.setattr(converter, "as_blocks", counting)
    n = 5_000
    body = {"model": "c", "messages": [{"role": "user", "content": f"m{i}"} for i in range(n)]}
    out = openai_to_anthropic_request(body)
    assert len(out["messages"]) == 1 and len(out["messages"][0]["content"]) == n
    assert copied <= 3 * n, f"{copied} block copies for {n} messages"


# -- what uvicorn itself would answer in plain text (item 28) ------------------------------------------


@pytest.mark.parametrize("head", [
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-bad: a\x00b\r\ncontent-length: 2",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: abc",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-bad: a\rb\r\ncontent-length: 2",
    b"GARBAGE\r\n",
])
def test_unparseable_requests_get_a_json_400(rejecting: Any, head: bytes) -> None:
    server, _, _ = rejecting
    response = raw_request(server.url, head, b"{}")
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_http_request"


def test_oversized_request_headers_get_a_431(rejecting: Any) -> None:
    server, _, _ = rejecting
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        def send() -> None:
            try:
                sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n")
            except OSError:
                pass  # the gateway hung up after its 431

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        while True:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        sender.join(5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    assert json.loads(body)["error"]["code"] == "request_header_too_large"


def test_normal_headers_are_fine(rejecting: Any) -> None:
    server, _, _ = rejecting
    response = httpx.get(server.url + "/health", headers={"x-big": "a" * 30_000})
    assert response.status_code == 200
