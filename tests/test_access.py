"""Who may use the gateway, and what plugins learn about the client's key:
the master key (empty, non-ASCII), plugin routes and ``/health`` behind it,
the key id on the context, and the request-id headers clients read."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

import portway
from portway.testing.gateway import GatewayServer
from portway.testing.servers import RawResponse, raw_request

MASTER = "pw-master-key-0123456789"
MOCK = {"providers": {"mock": {"type": "mock"}}}
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}


def secured(key: str = MASTER, **extra: Any) -> dict[str, Any]:
    return {**MOCK, "auth": {"master_key": key}, **extra}


# -- the presented key --------------------------------------------------------------


def post_raw(server: GatewayServer, extra_headers: bytes) -> RawResponse:
    """A chat request with header lines an HTTP library would refuse to send."""
    body = json.dumps(CHAT).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n" + extra_headers)
    return raw_request(server.url, head, body)


@pytest.mark.parametrize("headers", [
    b"authorization: Bearer \r\n",
    b"authorization: Bearer    \r\n",
    b"authorization: \r\n",
    b"x-api-key: \r\n",
    b"api-key:  \r\n",
    b"authorization: Bearer \r\nx-api-key: \r\n",
])
def test_an_empty_presented_key_counts_as_no_key(gateway_server: Any, headers: bytes) -> None:
    server = gateway_server(secured())
    response = post_raw(server, headers)
    assert response.status == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_an_empty_bearer_falls_through_to_x_api_key(gateway_server: Any) -> None:
    server = gateway_server(secured())
    response = post_raw(server, b"authorization: Bearer \r\nx-api-key: " + MASTER.encode() + b"\r\n")
    assert response.status == 200


def test_a_repeated_header_counts_with_its_first_value(gateway_server: Any) -> None:
    server = gateway_server(secured())
    first_right = post_raw(server, b"authorization: Bearer " + MASTER.encode() + b"\r\nauthorization: Bearer wrong\r\n")
    assert first_right.status == 200
    first_wrong = post_raw(server, b"authorization: Bearer wrong\r\nauthorization: Bearer " + MASTER.encode() + b"\r\n")
    assert first_wrong.status == 401
    ids = post_raw(server, b"authorization: Bearer " + MASTER.encode() + b"\r\nx-request-id: one\r\nx-request-id: two\r\n")
    assert ids.headers["x-request-id"] == "one"


def test_a_get_on_an_api_path_is_405_in_the_api_shape(gateway_server: Any) -> None:
    """The API's POST paths are served ahead of the router; other methods still reach it."""
    server = gateway_server(MOCK)
    answer = httpx.get(server.url + "/v1/chat/completions")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("key", ["clé-ñ-秘密-0123", "ключ-доступа-42"])
def test_a_non_ascii_master_key_matches_the_bytes_a_client_sends(gateway_server: Any, key: str) -> None:
    server = gateway_server(secured(key))
    sent = key.encode("utf-8")
    ok = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"x-api-key": sent})
    assert ok.status_code == 200, ok.text
    bearer = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"authorization": b"Bearer " + sent})
    assert bearer.status_code == 200
    wrong = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"x-api-key": sent[:-1] + b"x"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    # Latin-1 lookalikes of the UTF-8 bytes must not pass either.
    latin = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"x-api-key": key.encode("latin-1",
                                                                                                        "replace")})
    assert latin.status_code == 401


# -- plugin routes and /health ----------------------------------------------------------


class Routes:
    @portway.hookimpl
    def register_routes(self, register: Any) -> None:
        async def private(request: Request) -> JSONResponse:
            return JSONResponse({"secret": "plugin data"})

        async def public(request: Request) -> JSONResponse:
            return JSONResponse({"hello": "world"})

        register("/plugin/private", private)
        register("/plugin/private-post", private, methods=["POST"])
        register("/plugin/public", public, public=True)


def test_plugin_routes_are_behind_the_master_key_unless_declared_public(gateway_server: Any) -> None:
    server = gateway_server(secured(), plugins=[("routes", Routes())])
    for method, path in [("GET", "/plugin/private"), ("POST", "/plugin/private-post")]:
        refused = httpx.request(method, server.url + path)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "missing_api_key"
        assert "plugin data" not in refused.text
        wrong = httpx.request(method, server.url + path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        allowed = httpx.request(method, server.url + path, headers={"authorization": f"Bearer {MASTER}"})
        assert allowed.status_code == 200 and allowed.json() == {"secret": "plugin data"}
    assert httpx.get(server.url + "/plugin/public").json() == {"hello": "world"}


def test_plugin_routes_without_a_master_key_are_open(gateway_server: Any) -> None:
    server = gateway_server(MOCK, plugins=[("routes", Routes())])
    assert httpx.get(server.url + "/plugin/private").json() == {"secret": "plugin data"}


class Broken:
    @portway.hookimpl
    def pre_request(self, ctx: Any) -> None:
        raise RuntimeError("boom")


def test_health_is_public_but_only_says_ok(gateway_server: Any) -> None:
    config = secured(providers={"mock": {"type": "mock"}, "gone": {"type": "not-installed-anywhere"}})
    server = gateway_server(config, plugins=[("broken", Broken())])
    assert httpx.post(server.url + "/v1/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {MASTER}"}).status_code == 500
    public = httpx.get(server.url + "/health")
    assert public.status_code == 200 and public.json() == {"status": "ok"}
    wrong = httpx.get(server.url + "/health", headers={"authorization": "Bearer wrong"})
    assert wrong.json() == {"status": "ok"}
    detailed = httpx.get(server.url + "/health", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert detailed["status"] == "ok"
    assert detailed["providers"] == ["mock"]
    assert "not-installed-anywhere" in detailed["unavailable"]["gone"]
    assert detailed["plugin_errors"] == {"broken": 1}


def test_health_without_a_master_key_shows_the_details(gateway_server: Any) -> None:
    detailed = httpx.get(gateway_server(MOCK).url + "/health").json()
    assert detailed["providers"] == ["mock"] and "uptime_s" in detailed


# -- what plugins see of the key --------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.contexts: list[Any] = []

    @portway.hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.contexts.append(ctx)


def test_plugins_get_a_stable_key_id_never_the_key(gateway_server: Any) -> None:
    first, second = Seen(), Seen()
    one = gateway_server(secured(), plugins=[("seen", first)])
    two = gateway_server(secured(), plugins=[("seen", second)])
    headers = {"authorization": f"Bearer {MASTER}", "cookie": "session=abc123secret",
               "proxy-authorization": "Basic c2VjcmV0", "x-api-key": MASTER, "api-key": MASTER,
               "x-custom": "kept"}
    httpx.post(one.url + "/v1/chat/completions", json=CHAT, headers=headers)
    httpx.post(two.url + "/v1/chat/completions", json=CHAT, headers=headers)
    a, b = first.contexts[0], second.contexts[0]
    assert re.fullmatch(r"key_[0-9a-f]{16}", a.key_id)
    assert a.key_id == b.key_id  # the same key, another gateway (or worker, or machine): the same id
    assert not hasattr(a, "api_key")
    for secret in (MASTER, "abc123secret", "c2VjcmV0"):
        assert secret not in repr(a)
        assert all(secret not in value for value in a.headers.values())
    for name in ("authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"):
        assert name not in a.headers
    assert a.headers["x-custom"] == "kept"


def test_different_keys_get_different_ids_and_no_key_gets_none(gateway_server: Any) -> None:
    seen = Seen()
    server = gateway_server(MOCK, plugins=[("seen", seen)])
    for headers in ({"authorization": "Bearer team-a"}, {"authorization": "Bearer team-b"}, {}):
        httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers=headers)
    ids = [ctx.key_id for ctx in seen.contexts]
    assert ids[0] != ids[1] and ids[0] and ids[1] and ids[2] is None


# -- request ids ---------------------------------------------------------------------


def test_anthropic_clients_find_the_request_id(gateway_server: Any) -> None:
    server: GatewayServer = gateway_server(MOCK)
    client = server.anthropic_client()
    raw = client.messages.with_raw_response.create(model="mock/echo", max_tokens=10,
                                                   messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert raw.parse()._request_id == raw.headers["x-request-id"]
    with client.messages.stream(model="mock/echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as s:
        assert s.response.headers["request-id"].startswith("req_")
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nowhere/x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.request_id and caught.value.request_id == caught.value.response.headers["x-request-id"]


def test_a_client_request_id_is_echoed_only_when_sane(gateway_server: Any) -> None:
    server: GatewayServer = gateway_server(MOCK)
    kept = httpx.post(server.url + "/v1/chat/completions", json=CHAT, headers={"x-request-id": "trace-42.a:b_c"})
    assert kept.headers["x-request-id"] == "trace-42.a:b_c"
    for odd in ["a b", "x" * 129, "é"]:
        replaced = httpx.post(server.url + "/v1/chat/completions", json=CHAT,
                              headers={"x-request-id": odd.encode("utf-8")})
        assert replaced.status_code == 200
        assert re.fullmatch(r"req_[0-9a-f]{32}", replaced.headers["x-request-id"])


def test_openai_sdk_request_id(gateway_server: Any) -> None:
    server: GatewayServer = gateway_server(MOCK)
    reply = server.openai_client().chat.completions.create(**CHAT)
    assert reply._request_id and reply._request_id.startswith("req_")
    with pytest.raises(openai.NotFoundError) as caught:
        server.openai_client().chat.completions.create(model="nowhere/x", messages=CHAT["messages"])
    assert caught.value.request_id == caught.value.response.headers["x-request-id"]
