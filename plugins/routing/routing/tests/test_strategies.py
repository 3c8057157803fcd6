"""Routing strategies through a running gateway with the openai SDK, against
fake upstreams that answer, fail or hold on command: a weighted split,
nesting, conditional routing, least-latency, least-busy, cheapest, and
``fallback_on``."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import openai
import pytest

from portway.config import ConfigError
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import Gate, Reply, json_reply

KEY = "sk-strategy-test-0123456789"
MASTER = "pw-master-strategy-0123"
HI = [{"role": "user", "content": "hi"}]
NAMES = ("a", "b", "c")


def answer(text: str) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


BOOM = json_reply({"error": {"message": "boom", "type": "server_error", "code": None}}, 500)
LIMITED = json_reply({"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}, 429)


def path(name: str) -> str:
    return f"/{name}/v1/chat/completions"


def config(upstream: FakeUpstream, models: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"auth": {"master_key": MASTER},
            "providers": {n: {"type": "openai", "api_key": KEY, "base_url": f"{upstream.url}/{n}/v1"} for n in NAMES},
            "models": models, "routing": {"breaker": {"enabled": False}}, **extra}


def target(name: str, **more: Any) -> dict[str, Any]:
    return {"provider": name, "model": "m", **more}


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        for name in NAMES:
            up.add(path(name), json_reply(answer(f"from {name}")))
        yield up


def served(client: Any, model: str = "smart", **options: Any) -> str:
    return client.chat.completions.with_raw_response.create(model=model, messages=HI, **options).headers[
        "x-portway-provider"]


def test_loadbalance_splits_by_weight_within_three_points_over_1000_requests(upstream: FakeUpstream) -> None:
    models = {"smart": {"strategy": "loadbalance", "targets": [target("a", weight=3), target("b", weight=1)]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        first = [served(client) for _ in range(4)]
        counts = Counter(served(client) for _ in range(996))
    counts.update(first)
    assert abs(counts["a"] / 1000 - 0.75) <= 0.03 and abs(counts["b"] / 1000 - 0.25) <= 0.03, counts
    assert sorted(first) == ["a", "a", "a", "b"]  # interleaved, not 750 in a row


def test_loadbalance_falls_over_to_the_other_target_when_one_fails(upstream: FakeUpstream) -> None:
    upstream.add(path("a"), BOOM)
    models = {"smart": {"strategy": "loadbalance", "targets": [target("a"), target("b")]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        assert [served(client) for _ in range(10)] == ["b"] * 10


def test_nested_loadbalance_inside_fallback(upstream: FakeUpstream) -> None:
    """"Load-balance two regions, fall back to a third" is one config."""
    models = {"pool": {"strategy": "loadbalance", "targets": [target("a"), target("b")]},
              "smart": {"strategy": "fallback", "targets": [{"alias": "pool"}, target("c")]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        healthy = Counter(served(client) for _ in range(20))
        upstream.add(path("a"), BOOM)
        upstream.add(path("b"), BOOM)
        down = [served(client) for _ in range(5)]
    assert healthy == {"a": 10, "b": 10}
    assert down == ["c"] * 5


def test_the_outer_strategy_weighs_a_nested_alias_as_one_member(upstream: FakeUpstream) -> None:
    models = {"pool": {"targets": [target("a"), target("b")]},  # fallback inside: always a
              "smart": {"strategy": "loadbalance", "targets": [{"alias": "pool", "weight": 1}, target("c", weight=1)]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        assert Counter(served(client) for _ in range(20)) == {"a": 10, "c": 10}


def test_conditional_routes_on_metadata_images_and_tools(upstream: FakeUpstream) -> None:
    models = {"smart": {"strategy": "conditional", "targets": [target("a"), target("b"), target("c")],
                        "conditions": [{"when": 'metadata.tier == "free"', "then": "a/m"},
                                       {"when": "has_images or has_tools", "then": "b/m"},
                                       {"then": "c/m"}]}}
    image = [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        free = served(client, extra_headers={"x-portway-metadata": '{"tier": "free"}'})
        paid = served(client, extra_headers={"x-portway-metadata": '{"tier": "pro"}'})
        with_image = client.chat.completions.with_raw_response.create(model="smart", messages=image).headers[
            "x-portway-provider"]
        with_tools = served(client, tools=[tool])
        plain = served(client)
        upstream.add(path("a"), BOOM)
        free_but_a_down = served(client, extra_headers={"x-portway-metadata": '{"tier": "free"}'})
    assert (free, paid, with_image, with_tools, plain) == ("a", "c", "b", "b", "c")
    assert free_but_a_down == "c"  # the next rule that holds: the default


@pytest.mark.parametrize(("models", "problem"), [
    ({"smart": {"strategy": "conditional", "targets": [target("a")], "conditions": [{"when": "tier = 1", "then": "a/m"}]}},
     "models.smart.conditions.0.when"),
    ({"smart": {"strategy": "conditional", "targets": [target("a")], "conditions": [{"then": "b/m"}]}},
     "models.smart.conditions.0.then: 'b/m' is not one of its targets (a/m)"),
    ({"smart": {"targets": [target("a")], "conditions": [{"then": "a/m"}]}},
     "models.smart.conditions: only a conditional alias has conditions"),
    ({"smart": {"strategy": "round-robin", "targets": [target("a")]}}, "models.smart.strategy: Input should be"),
    ({"smart": {"targets": [target("a")], "fallback_on": ["everything"]}}, "models.smart.fallback_on.0: Input should be"),
])
def test_bad_routing_keys_are_config_errors(upstream: FakeUpstream, models: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info, GatewayServer(config(upstream, models)):
        pass
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_least_latency_prefers_the_faster_target_once_measured(upstream: FakeUpstream) -> None:
    slow = Reply(body=json_reply(answer("from a")).body, chunks=[b"", json_reply(answer("from a")).body], delay=0.5)
    upstream.add(path("a"), slow)
    models = {"smart": {"strategy": "least-latency", "targets": [target("a"), target("b")]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        warmup = [served(client) for _ in range(2)]  # neither measured: each is tried once
        after = [served(client) for _ in range(10)]
        view = httpx.get(server.url + "/admin/targets", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert sorted(warmup) == ["a", "b"] and after == ["b"] * 10
    latency = {row["target"]: row["latency_ms"] for row in view["targets"]}
    assert latency["a/m"] >= 500 > latency["b/m"]


def test_least_busy_avoids_the_target_with_requests_in_flight(upstream: FakeUpstream) -> None:
    gate = Gate()
    body = json_reply(answer("from a")).body
    upstream.add(path("a"), Reply(body=body, chunks=[gate, body]))
    models = {"smart": {"strategy": "least-busy", "targets": [target("a"), target("b")]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        held: list[str] = []
        first = threading.Thread(target=lambda: held.append(served(client)))
        first.start()
        gate.wait_reached()
        while_busy = [served(client) for _ in range(5)]
        gate.open()
        first.join(10)
    assert held == ["a"] and while_busy == ["b"] * 5


def test_cheapest_uses_the_catalogs_prices(upstream: FakeUpstream) -> None:
    models = {"smart": {"strategy": "cheapest", "targets": [target("a"), target("b"), target("c")]}}
    catalog = {"a/m": {"price": {"input": 5, "output": 15}}, "b/m": {"price": {"input": 0.5, "output": 1.5}}}
    with GatewayServer(config(upstream, models, catalog=catalog)) as server:
        client = server.openai_client(api_key=MASTER)
        cheap = [served(client) for _ in range(3)]
        upstream.add(path("b"), BOOM)
        next_cheapest = served(client)
        upstream.add(path("a"), BOOM)
        unpriced_last = served(client)
    assert cheap == ["b"] * 3 and next_cheapest == "a" and unpriced_last == "c"


def test_fallback_on_limits_which_errors_fall_back(upstream: FakeUpstream) -> None:
    models = {"smart": {"targets": [target("a"), target("b")], "fallback_on": ["rate_limit"]}}
    with GatewayServer(config(upstream, models)) as server:
        client = server.openai_client(api_key=MASTER)
        upstream.add(path("a"), LIMITED)
        assert served(client) == "b"
        upstream.add(path("a"), BOOM)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="smart", messages=HI)
    assert sum(1 for r in upstream.requests if r.path == path("b")) == 1


def test_fallback_on_can_add_content_filter(upstream: FakeUpstream) -> None:
    filtered = json_reply({"error": {"message": "flagged", "type": "invalid_request_error",
                                     "code": "content_filter"}}, 400)
    upstream.add(path("a"), filtered)
    plain = {"smart": {"targets": [target("a"), target("b")]}}
    with GatewayServer(config(upstream, plain)) as server:
        with pytest.raises(openai.BadRequestError):
            server.openai_client(api_key=MASTER).chat.completions.create(model="smart", messages=HI)
    widened = {"smart": {"targets": [target("a"), target("b")], "fallback_on": ["server_error", "content_filter"]}}
    with GatewayServer(config(upstream, widened)) as server:
        assert served(server.openai_client(api_key=MASTER)) == "b"


def test_round_robin_states_are_bounded() -> None:
    """Per-request configs are the clients' to vary: each new shape keeps a
    state, and the oldest go once there are MAX_WEIGHTED_GROUPS."""
    from types import SimpleNamespace

    from portway_routing import strategies

    from portway.context import Group, Target

    state = strategies.State(gateway=None)
    a, b = Target(SimpleNamespace(name="a"), "m"), Target(SimpleNamespace(name="b"), "m")
    first = Group("x-portway-config", (a, b), (1.0, 1.0), {"strategy": "loadbalance"})
    assert state.choose(None, first, {id(a), id(b)}) is a
    for weight in range(2, strategies.MAX_WEIGHTED_GROUPS + 10):
        group = Group("x-portway-config", (a, b), (1.0, float(weight)), {"strategy": "loadbalance"})
        assert state.choose(None, group, {id(a), id(b)}) is b
    assert len(state._current) == strategies.MAX_WEIGHTED_GROUPS
    # The first shape's state went first: it starts again from nothing (a, as the first time).
    assert state.choose(None, first, {id(a), id(b)}) is a
