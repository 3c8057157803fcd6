"""Queueing over a provider's max_concurrency: a burst is shed with 429 and
Retry-After while admitted requests succeed; no more than the limit reach
the upstream at once; waiting keys are served in turn."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from portway_routing.queue import Limiter

from portway.errors import PortwayError
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import Gate, Reply, json_reply

MASTER = "pw-master-queue-0123"
HI = [{"role": "user", "content": "hi"}]
ANSWER = json_reply({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}).body


def config(upstream: FakeUpstream, limit: int, waiting: int, timeout: str) -> dict[str, Any]:
    return {"auth": {"master_key": MASTER},
            "providers": {"p": {"type": "openai", "api_key": "sk-q-0123456789", "base_url": upstream.url + "/v1",
                                "max_concurrency": limit}},
            "routing": {"queue": {"max_waiting": waiting, "timeout": timeout}}}


def queues(server: GatewayServer) -> dict[str, Any]:
    view = httpx.get(server.url + "/admin/targets", headers={"authorization": f"Bearer {MASTER}"}, timeout=5).json()
    return view["queues"][0]


def wait_until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.01)


def test_a_burst_is_shed_with_429_while_admitted_requests_succeed() -> None:
    gate = Gate()
    with FakeUpstream() as upstream:
        upstream.add("/v1/chat/completions", Reply(body=ANSWER, chunks=[gate, ANSWER]))
        with GatewayServer(config(upstream, limit=2, waiting=2, timeout="30s")) as server:
            client = server.openai_client(api_key=MASTER)

            def ask(_: int) -> Any:
                try:
                    return client.chat.completions.create(model="p/m", messages=HI).choices[0].message.content
                except openai.RateLimitError as exc:
                    return exc

            with ThreadPoolExecutor(10) as pool:
                results = [pool.submit(ask, i) for i in range(10)]
                wait_until(lambda: queues(server)["shed"] == 6)
                state = queues(server)
                in_flight_at_upstream = len(upstream.requests)
                gate.open()
                outcomes = [r.result(30) for r in results]
            after = queues(server)
    assert (state["in_flight"], state["waiting"], in_flight_at_upstream) == (2, 2, 2)
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["ok"] * 4
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(refused) == 6 and all(r.code == "queue_full" and r.response.headers["retry-after"] == "30"
                                     for r in refused)
    assert "at its limit of 2 requests at once and its queue is full" in refused[0].message
    assert (after["in_flight"], after["waiting"]) == (0, 0) and len(upstream.requests) == 4


def test_a_wait_longer_than_the_timeout_is_a_429() -> None:
    gate = Gate()
    with FakeUpstream() as upstream:
        upstream.add("/v1/chat/completions", Reply(body=ANSWER, chunks=[gate, ANSWER]))
        with GatewayServer(config(upstream, limit=1, waiting=5, timeout="200ms")) as server:
            client = server.openai_client(api_key=MASTER)
            with ThreadPoolExecutor(1) as pool:
                held = pool.submit(lambda: client.chat.completions.create(model="p/m", messages=HI))
                gate.wait_reached()
                with pytest.raises(openai.RateLimitError) as info:
                    client.chat.completions.create(model="p/m", messages=HI)
                gate.open()
                assert held.result(30).choices[0].message.content == "ok"
            assert queues(server)["waiting"] == 0
    assert "no slot was free within 0.2 s" in info.value.message


def test_waiting_keys_are_served_in_turn() -> None:
    async def scenario() -> list[str]:
        limiter = Limiter("p", limit=1, max_waiting=10, timeout=30)
        assert limiter.try_acquire()
        served: list[str] = []

        async def request(key: str, n: int) -> None:
            await limiter.acquire(key)
            served.append(f"{key}{n}")
            await asyncio.sleep(0)
            limiter.release()

        tasks = [asyncio.create_task(request("a", n)) for n in range(4)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(request("b", 0)))
        await asyncio.sleep(0)
        limiter.release()
        await asyncio.gather(*tasks)
        assert (limiter.active, limiter.waiting) == (0, 0)
        return served

    assert asyncio.run(scenario()) == ["a0", "b0", "a1", "a2", "a3"]  # b waits for one of a's turns, not four


def test_a_waiter_that_gives_up_frees_its_place() -> None:
    async def scenario() -> Limiter:
        limiter = Limiter("p", limit=1, max_waiting=1, timeout=30)
        assert limiter.try_acquire()
        waiting = asyncio.create_task(limiter.acquire("a"))
        await asyncio.sleep(0)
        with pytest.raises(PortwayError, match="queue is full"):
            await limiter.acquire("b")
        waiting.cancel()  # the client went away
        await asyncio.gather(waiting, return_exceptions=True)
        limiter.release()
        return limiter

    limiter = asyncio.run(scenario())
    assert (limiter.active, limiter.waiting, limiter.shed) == (0, 0, 1)


def test_a_targets_own_limit_applies_to_that_target_only() -> None:
    gate = Gate()
    with FakeUpstream() as upstream:
        upstream.add("/v1/chat/completions", Reply(body=ANSWER, chunks=[gate, ANSWER]))
        config = {"auth": {"master_key": MASTER},
                  "providers": {"p": {"type": "openai", "api_key": "sk-q-0123456789", "base_url": upstream.url + "/v1"}},
                  "models": {"scarce": {"target": {"provider": "p", "model": "m", "max_concurrency": 1}}},
                  "routing": {"queue": {"max_waiting": 0}}}
        with GatewayServer(config) as server:
            client = server.openai_client(api_key=MASTER)
            with ThreadPoolExecutor(2) as pool:
                held = pool.submit(lambda: client.chat.completions.create(model="scarce", messages=HI))
                gate.wait_reached()
                with pytest.raises(openai.RateLimitError) as info:
                    client.chat.completions.create(model="scarce", messages=HI)
                other = pool.submit(lambda: client.chat.completions.create(model="p/other", messages=HI))
                wait_until(lambda: len(upstream.requests) == 2)  # another model of the provider is not held back
                view = queues(server)
                gate.open()
                assert held.result(30).choices[0].message.content == other.result(30).choices[0].message.content
    assert "'p/m' is at its limit of 1 requests at once" in info.value.message
    assert view == {"target": "p/m", "max_concurrency": 1, "in_flight": 1, "waiting": 0, "shed": 1, "mean_wait_ms": 0.0}


def test_a_slot_handed_over_as_its_waiter_is_cancelled_is_passed_on() -> None:
    """The slot reached the waiter, but its request was cancelled before it
    could run: the slot must not be lost."""
    async def scenario() -> Limiter:
        limiter = Limiter("p", limit=1, max_waiting=5, timeout=30)
        assert limiter.try_acquire()
        waiting = asyncio.create_task(limiter.acquire("a"))
        await asyncio.sleep(0)
        limiter.release()  # hands the slot to the waiter...
        waiting.cancel()  # ...which is cancelled before it resumes
        await asyncio.gather(waiting, return_exceptions=True)
        return limiter

    limiter = asyncio.run(scenario())
    assert (limiter.active, limiter.waiting) == (0, 0)
