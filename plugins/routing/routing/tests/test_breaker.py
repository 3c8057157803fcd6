"""Circuit breaking through a running gateway with the openai SDK, against a
fake upstream that fails on command: a dead target called only as often as
the breaker allows, half-open probes that reopen or close it, a 503 with
Retry-After when every target is open, and the state at /admin/targets."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import json_reply

KEY = "sk-breaker-test-0123456789"
MASTER = "pw-master-breaker-0123"
HI = [{"role": "user", "content": "hi"}]
DOWN = "/down/v1/chat/completions"
GOOD = "/v1/chat/completions"


def answer(text: str) -> Any:
    return json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})


BOOM = json_reply({"error": {"message": "boom", "type": "server_error", "code": None}}, 500)


def config(upstream: FakeUpstream, breaker: dict[str, Any] | None = None, *targets: str) -> dict[str, Any]:
    return {"auth": {"master_key": MASTER},
            "providers": {"down": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/down/v1"},
                          "good": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
            "models": {"smart": {"targets": [{"provider": p, "model": "m"} for p in targets or ("down", "good")]}},
            "routing": {"breaker": breaker or {}}}


def calls(upstream: FakeUpstream, path: str) -> int:
    return sum(1 for r in upstream.requests if r.path == path)


def states(server: GatewayServer) -> dict[str, str]:
    view = httpx.get(server.url + "/admin/targets", headers={"authorization": f"Bearer {MASTER}"}, timeout=5).json()
    return {t["target"]: t["state"] for t in view["targets"]}


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def test_a_dead_target_is_called_only_as_often_as_the_breaker_allows(upstream: FakeUpstream) -> None:
    upstream.add(DOWN, BOOM)
    upstream.add(GOOD, answer("from good"))
    with GatewayServer(config(upstream, {"failures": 5, "window": "30s", "cooldown": "10m"})) as server:
        client = server.openai_client(api_key=MASTER)
        texts = [client.chat.completions.create(model="smart", messages=HI).choices[0].message.content
                 for _ in range(1000)]
        assert states(server) == {"down/m": "open", "good/m": "closed"}
    assert texts == ["from good"] * 1000
    assert calls(upstream, DOWN) == 5 and calls(upstream, GOOD) == 1000


def test_half_open_probes_reopen_then_close(upstream: FakeUpstream) -> None:
    upstream.add(DOWN, BOOM)
    upstream.add(GOOD, answer("from good"))
    with GatewayServer(config(upstream, {"failures": 2, "window": 30, "cooldown": "300ms"})) as server:
        client = server.openai_client(api_key=MASTER)

        def ask() -> str:
            return client.chat.completions.with_raw_response.create(model="smart", messages=HI).headers[
                "x-portway-provider"]

        assert [ask() for _ in range(4)] == ["good"] * 4
        assert calls(upstream, DOWN) == 2 and states(server)["down/m"] == "open"
        time.sleep(0.35)
        assert ask() == "good"  # the probe went to "down", failed, and fell back
        assert calls(upstream, DOWN) == 3 and states(server)["down/m"] == "open"
        assert ask() == "good" and calls(upstream, DOWN) == 3  # open again: not tried
        upstream.add(DOWN, answer("from down, healthy again"))
        time.sleep(0.35)
        assert ask() == "down"  # the probe succeeded: closed
        assert states(server)["down/m"] == "closed"
        assert [ask() for _ in range(3)] == ["down"] * 3


def test_every_target_open_is_a_503_with_retry_after_and_no_upstream_call(upstream: FakeUpstream) -> None:
    upstream.add(DOWN, BOOM)
    with GatewayServer(config(upstream, {"failures": 2, "cooldown": "20s"}, "down")) as server:
        client = server.openai_client(api_key=MASTER)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="smart", messages=HI)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="smart", messages=HI)
    assert caught.value.status_code == 503 and caught.value.code == "circuit_open"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 20
    assert "down/m" in caught.value.message
    assert calls(upstream, DOWN) == 2


def test_breaking_can_be_turned_off(upstream: FakeUpstream) -> None:
    upstream.add(DOWN, BOOM)
    upstream.add(GOOD, answer("from good"))
    with GatewayServer(config(upstream, {"enabled": False, "failures": 1})) as server:
        client = server.openai_client(api_key=MASTER)
        for _ in range(5):
            client.chat.completions.create(model="smart", messages=HI)
        view = httpx.get(server.url + "/admin/targets", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert calls(upstream, DOWN) == 5 and view["breaker"] == "disabled"
    assert [sorted(row) for row in view["targets"]] == [["in_flight", "latency_ms", "target"]] * 2  # no breaker state


def test_the_admin_view_needs_the_master_key_and_lists_every_aliass_targets(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream)) as server:
        assert httpx.get(server.url + "/admin/targets").status_code == 401
        view = httpx.get(server.url + "/admin/targets", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert view["breaker"] == "enabled"
    assert [(t["target"], t["state"], t["trips"]) for t in view["targets"]] == [("down/m", "closed", 0),
                                                                                ("good/m", "closed", 0)]
