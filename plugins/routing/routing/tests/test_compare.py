"""POST /v1/compare through a running gateway: models answered side by side
(one a fake OpenAI upstream, one the mock, one failing), streamed and not,
with latency, tokens and cost per model; bad requests refused before any
upstream call; the master key required; each model's request logged."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from portway import hookimpl, serialization
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import say
from portway.testing.upstream import Gate, Reply, json_reply

KEY = "sk-compare-test-0123456789"
MASTER = "pw-master-compare-0123"
HI = [{"role": "user", "content": "hi"}]


class Finished:
    def __init__(self) -> None:
        self.contexts: list[Any] = []

    @hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.contexts.append(ctx)


def config(upstream: FakeUpstream) -> dict[str, Any]:
    return {"auth": {"master_key": MASTER},
            "providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"},
                          "down": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/down/v1"},
                          "mock": {"type": "mock"}},
            "models": {"fast": {"target": {"provider": "oai", "model": "house"}}},
            "catalog": {"oai/house": {"price": {"input": 2.0, "output": 8.0}}}}


def post(server: GatewayServer, body: Any, **options: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/compare", json=body, timeout=10,
                      headers={"authorization": f"Bearer {MASTER}", **options.pop("headers", {})}, **options)


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def test_models_side_by_side_one_failing(upstream: FakeUpstream) -> None:
    api = OpenAIChatAPI([say("From the house model.", input_tokens=1000, output_tokens=200)], api_key=KEY)
    api.install(upstream)
    upstream.add("/down/v1/chat/completions", json_reply(
        {"error": {"message": "overloaded", "type": "server_error", "code": None}}, 503))
    finished = Finished()
    with GatewayServer(config(upstream), plugins=[("finished", finished)]) as server:
        response = post(server, {"models": ["fast", "down/any", "mock/echo"], "messages": HI, "max_tokens": 50})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "compare" and answer["id"] == response.headers["x-request-id"]
    fast, down, mock = answer["results"]
    assert [fast["model"], down["model"], mock["model"]] == ["fast", "down/any", "mock/echo"]
    assert fast["status"] == 200 and (fast["provider"], fast["served_model"]) == ("oai", "house")
    assert fast["response"]["choices"][0]["message"]["content"] == "From the house model."
    assert fast["usage"]["prompt_tokens"] == 1000 and fast["cost"] == pytest.approx((1000 * 2 + 200 * 8) / 1e6)
    assert fast["latency_ms"] > 0
    assert down["status"] == 503 and down["error"]["type"] == "overloaded_error" and "overloaded" in down["error"]["message"]
    assert "response" not in down and down["cost"] is None and down["provider"] == "down"
    assert mock["status"] == 200 and mock["response"]["choices"][0]["message"]["content"] == "Mock reply to: hi"
    assert mock["cost"] is None  # the mock is not priced: unknown, not zero
    assert [r.json()["max_tokens"] for r in upstream.requests if r.path == "/v1/chat/completions"] == [50]
    # each model's request went through the pipeline and was logged on its own
    assert sorted(ctx.request_id for ctx in finished.contexts) == [f"{answer['id']}.{n}" for n in range(3)]
    assert sorted(ctx.status for ctx in finished.contexts) == [200, 200, 503]


def test_the_models_run_at_once(upstream: FakeUpstream) -> None:
    # Every answer is held at a gate until all three requests have reached the upstream: one after the
    # other, the second would never arrive while the first is held, and the test would fail.
    gate = Gate()
    answer = serialization.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
    upstream.add("/v1/chat/completions", Reply(chunks=[gate, answer]))
    with GatewayServer(config(upstream)) as server, ThreadPoolExecutor(1) as pool:
        future = pool.submit(post, server, {"models": ["oai/a", "oai/b", "oai/c"], "messages": HI})
        deadline = time.monotonic() + 10
        while len(upstream.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        arrived = sorted(r.json()["model"] for r in upstream.requests)
        gate.open()
        response = future.result(timeout=10)
    assert arrived == ["a", "b", "c"]
    assert [r["status"] for r in response.json()["results"]] == [200, 200, 200]


def test_streamed_each_models_deltas_tagged(upstream: FakeUpstream) -> None:
    OpenAIChatAPI([say("House stream.")], api_key=KEY).install(upstream)
    upstream.add("/down/v1/chat/completions", json_reply({"error": {"message": "no", "type": "server_error"}}, 500))
    with GatewayServer(config(upstream)) as server, httpx.stream(
            "POST", server.url + "/v1/compare", timeout=10, headers={"authorization": f"Bearer {MASTER}"},
            json={"models": ["fast", "mock/echo", "down/x"], "messages": HI, "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    text = {model: "".join(e["chunk"]["choices"][0]["delta"].get("content") or "" for e in events
                           if e["model"] == model and "chunk" in e and e["chunk"]["choices"])
            for model in ("fast", "mock/echo")}
    assert text == {"fast": "House stream.", "mock/echo": "Mock reply to: hi"}
    done = {e["model"]: e for e in events if e.get("done")}
    assert set(done) == {"fast", "mock/echo", "down/x"}
    assert done["fast"]["status"] == 200 and done["fast"]["usage"]["total_tokens"] == 15
    assert done["fast"]["cost"] == pytest.approx((10 * 2 + 5 * 8) / 1e6)
    assert done["fast"]["time_to_first_token_ms"] is not None
    errors = [e for e in events if "error" in e]
    assert [(e["model"], e["error"]["type"]) for e in errors] == [("down/x", "api_error")]
    assert done["down/x"]["status"] == 500
    # each model's events end with its done event
    for model in done:
        assert [i for i, e in enumerate(events) if e["model"] == model][-1] == events.index(done[model])


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"messages": HI}, "models", "non-empty list"),
    ({"models": [], "messages": HI}, "models", "non-empty list"),
    ({"models": "fast", "messages": HI}, "models", "non-empty list"),
    ({"models": ["fast", 3], "messages": HI}, "models", "non-empty list"),
    ({"models": ["fast", "fast"], "messages": HI}, "models", "twice"),
    ({"models": [f"mock/m{i}" for i in range(9)], "messages": HI}, "models", "at most 8"),
    ({"model": "fast", "models": ["fast"], "messages": HI}, "model", "not 'model'"),
    ({"models": ["fast"], "messages": "hi"}, "messages", ""),
    ({"models": ["fast"], "messages": HI, "temperature": "hot"}, "temperature", ""),
])
def test_bad_requests_are_refused_before_anything_is_sent(upstream: FakeUpstream, body: dict[str, Any],
                                                          param: str, words: str) -> None:
    with GatewayServer(config(upstream)) as server:
        response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and words in error["message"]
    assert upstream.requests == []


def test_the_master_key_is_required(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream)) as server:
        response = httpx.post(server.url + "/v1/compare", json={"models": ["mock/echo"], "messages": HI}, timeout=10)
        wrong = post(server, {"models": ["mock/echo"], "messages": HI}, headers={"authorization": "Bearer nope"})
    assert response.status_code == 401 and wrong.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_client_that_leaves_a_streamed_compare_cancels_the_upstream_requests(upstream: FakeUpstream) -> None:
    api = OpenAIChatAPI([say("one two three four five six seven eight nine ten " * 5)], api_key=KEY)
    api.stream_delay = 0.05
    api.install(upstream)
    with GatewayServer(config(upstream)) as server:
        with httpx.stream("POST", server.url + "/v1/compare", timeout=10, headers={"authorization": f"Bearer {MASTER}"},
                          json={"models": ["fast", "mock/echo"], "messages": HI, "stream": True}) as response:
            for line in response.iter_lines():
                if '"fast"' in line and '"chunk"' in line:
                    break  # the first of fast's chunks: leave
        assert api.disconnected.wait(5), "the upstream stream was not closed when the client left"
