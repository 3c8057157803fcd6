"""Per-request config: ``x-portway-config`` carries an alias's shape, is
validated like the file, overrides the body's model, and can never point
the gateway at anything the server's config does not name."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import openai
import pytest

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import json_reply

MASTER = "pw-master-header-0123"
HI = [{"role": "user", "content": "hi"}]


def answer(text: str) -> Any:
    return json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})


BOOM = json_reply({"error": {"message": "boom", "type": "server_error", "code": None}}, 500)


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def server(upstream: FakeUpstream):
    upstream.reset()
    for name in ("a", "b"):
        upstream.add(f"/{name}/v1/chat/completions", answer(f"from {name}"))
    config = {"auth": {"master_key": MASTER},
              "providers": {n: {"type": "openai", "api_key": "sk-h-0123456789", "base_url": f"{upstream.url}/{n}/v1"}
                            for n in ("a", "b")},
              "models": {"only-b": {"target": {"provider": "b", "model": "m"}}},
              "routing": {"breaker": {"enabled": False}}}
    with GatewayServer(config) as running:
        yield running


def ask(server: GatewayServer, header: Any, model: str = "not-configured") -> Any:
    text = header if isinstance(header, str) else json.dumps(header)
    return server.openai_client(api_key=MASTER).chat.completions.with_raw_response.create(
        model=model, messages=HI, extra_headers={"x-portway-config": text})


def test_the_header_routes_the_call_whatever_the_body_says(server: GatewayServer) -> None:
    config = {"strategy": "loadbalance", "targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}]}
    served = Counter(ask(server, config).headers["x-portway-provider"] for _ in range(10))
    assert served == {"a": 5, "b": 5}
    assert ask(server, {"target": {"alias": "only-b"}}).headers["x-portway-provider"] == "b"


def test_each_headers_round_robin_is_its_own(server: GatewayServer) -> None:
    """Two headers with the same members in another order, interleaved: each
    splits its own calls evenly (one shared state sent both to the same one)."""
    a, b = {"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}
    ab, ba = {"strategy": "loadbalance", "targets": [a, b]}, {"strategy": "loadbalance", "targets": [b, a]}
    served: dict[str, Counter] = {"ab": Counter(), "ba": Counter()}
    for _ in range(4):
        for name, config in (("ab", ab), ("ba", ba)):
            served[name][ask(server, config).headers["x-portway-provider"]] += 1
    assert served == {"ab": {"a": 2, "b": 2}, "ba": {"a": 2, "b": 2}}


def test_each_headers_conditions_are_its_own(server: GatewayServer) -> None:
    both = [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}]
    to_a = {"strategy": "conditional", "targets": both, "conditions": [{"when": "true", "then": "a/m"}]}
    to_b = {"strategy": "conditional", "targets": both, "conditions": [{"when": "true", "then": "b/m"}]}
    served = [ask(server, config).headers["x-portway-provider"] for config in (to_a, to_b, to_a)]
    assert served == ["a", "b", "a"]


def test_the_headers_retry_and_fallback_apply(server: GatewayServer, upstream: FakeUpstream) -> None:
    upstream.add("/a/v1/chat/completions", BOOM, answer("from a"))
    reply = ask(server, {"targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}],
                         "retry": {"attempts": 2, "backoff": {"initial": "10ms"}}})
    assert reply.headers["x-portway-provider"] == "a" and reply.headers["x-portway-attempts"] == "2"
    upstream.add("/a/v1/chat/completions", BOOM)
    reply = ask(server, {"targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}]})
    assert reply.headers["x-portway-provider"] == "b" and "a/m: server_error 500" in reply.headers["x-portway-fallback"]


@pytest.mark.parametrize(("header", "problem"), [
    ({"target": {"provider": "a", "model": "m", "base_url": "http://evil.example"}}, "may not set base_url"),
    ({"target": {"provider": "a", "model": "m", "params": {"headers": {"x": "y"}}}}, "may not set headers"),
    ({"target": {"provider": "a", "model": "m"}, "api_key": "sk-mine"}, "may not set api_key"),
    ({"providers": {"x": {"type": "openai", "base_url": "http://evil.example"}}}, "may not set providers, type, base_url"),
    ({"target": {"provider": "nope", "model": "m"}}, "target.provider: no provider named 'nope' (defined: a, b)"),
    ({"target": {"alias": "nope"}}, "no alias named 'nope'"),
    ({"target": {"provider": "a", "model": "m"}, "strategy": "random"}, "strategy: Input should be"),
    ({"target": {"provider": "a", "model": "m"}, "colour": "red"}, "colour: unknown key"),
    ({"targets": []}, "give exactly one of 'target' or 'targets'"),
    ({"target": {"provider": "a", "model": "m", "max_concurrency": 1}}, "may not set max_concurrency"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
])
def test_a_bad_or_dangerous_header_is_a_400_that_says_why(server: GatewayServer, upstream: FakeUpstream,
                                                         header: Any, problem: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(server, header)
    assert info.value.code == "invalid_config" and info.value.body["message"].startswith("x-portway-config: ")
    assert problem.replace("providers, type, base_url", "base_url, providers, type") in info.value.message
    assert not upstream.requests  # nothing was sent anywhere
