"""Open circuits shared through the real Redis: two gateways (as two workers
would be), one opens a dead target's circuit, the other stops calling it
without failing requests of its own; a closed probe clears it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
import redis

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import json_reply

MASTER = "pw-master-shared-0123"
HI = [{"role": "user", "content": "hi"}]
DOWN, GOOD = "/down/v1/chat/completions", "/v1/chat/completions"
OK = json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
BOOM = json_reply({"error": {"message": "boom", "type": "server_error", "code": None}}, 500)
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def key():
    name = f"portway-test:breakers:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(REDIS).delete(name)


def config(upstream: FakeUpstream, key: str, cooldown: str) -> dict[str, Any]:
    return {"auth": {"master_key": MASTER},
            "providers": {"down": {"type": "openai", "api_key": "sk-s-0123456789", "base_url": upstream.url + "/down/v1"},
                          "good": {"type": "openai", "api_key": "sk-s-0123456789", "base_url": upstream.url + "/v1"}},
            "models": {"smart": {"targets": [{"provider": "down", "model": "m"}, {"provider": "good", "model": "m"}]}},
            "routing": {"breaker": {"failures": 2, "window": "1m", "cooldown": cooldown, "redis_url": REDIS,
                                    "redis_key": key, "sync_interval": "100ms"}}}


def state(server: GatewayServer, target: str = "down/m") -> str:
    view = httpx.get(server.url + "/admin/targets", headers={"authorization": f"Bearer {MASTER}"}, timeout=5).json()
    return next((t["state"] for t in view["targets"] if t["target"] == target), "closed")


def eventually(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def calls(upstream: FakeUpstream) -> int:
    return sum(1 for r in upstream.requests if r.path == DOWN)


def test_a_circuit_opened_by_one_gateway_is_open_in_the_other(key: str) -> None:
    with FakeUpstream() as upstream:
        upstream.add(DOWN, BOOM)
        upstream.add(GOOD, OK)
        with GatewayServer(config(upstream, key, "10m")) as first, GatewayServer(config(upstream, key, "10m")) as second:
            one = first.openai_client(api_key=MASTER)
            for _ in range(2):
                one.chat.completions.create(model="smart", messages=HI)
            assert state(first) == "open" and calls(upstream) == 2
            eventually(lambda: state(second) == "open")
            two = second.openai_client(api_key=MASTER)
            served = [two.chat.completions.with_raw_response.create(model="smart", messages=HI).headers[
                "x-portway-provider"] for _ in range(20)]
            assert served == ["good"] * 20 and calls(upstream) == 2  # the second never paid for the first's lesson
        assert redis.Redis.from_url(REDIS).hexists(key, "down/m")


def test_a_closed_probe_clears_the_shared_circuit(key: str) -> None:
    with FakeUpstream() as upstream:
        upstream.add(DOWN, BOOM)
        upstream.add(GOOD, OK)
        with GatewayServer(config(upstream, key, "300ms")) as server:
            client = server.openai_client(api_key=MASTER)
            for _ in range(2):
                client.chat.completions.create(model="smart", messages=HI)
            eventually(lambda: redis.Redis.from_url(REDIS).hexists(key, "down/m"))
            upstream.add(DOWN, OK)
            time.sleep(0.4)  # the cooldown ends; the next request is the probe
            assert client.chat.completions.with_raw_response.create(model="smart", messages=HI).headers[
                "x-portway-provider"] == "down"
            eventually(lambda: not redis.Redis.from_url(REDIS).hexists(key, "down/m"))


def test_redis_down_leaves_each_gateway_its_own_breakers(key: str) -> None:
    with FakeUpstream() as upstream:
        upstream.add(DOWN, BOOM)
        upstream.add(GOOD, OK)
        broken = config(upstream, key, "10m")
        broken["routing"]["breaker"]["redis_url"] = "redis://127.0.0.1:1/0"
        with GatewayServer(broken) as server:
            client = server.openai_client(api_key=MASTER)
            served = [client.chat.completions.with_raw_response.create(model="smart", messages=HI).headers[
                "x-portway-provider"] for _ in range(5)]
            assert served == ["good"] * 5 and state(server) == "open" and calls(upstream) == 2
