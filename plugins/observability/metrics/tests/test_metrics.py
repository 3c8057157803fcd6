"""GET /metrics through a running gateway: a mixed run (OpenAI and Anthropic
clients, streamed and not, a fallback, retries, client errors) and what the
families say of it, checked against what the clients themselves saw."""

from __future__ import annotations

import threading
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portway import hookimpl, serialization
from portway.errors import PortwayError
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import Gate, Reply, json_reply

MASTER = "pw-master-metrics-0123"
HI = [{"role": "user", "content": "hello there gateway"}]

CONFIG: dict[str, Any] = {
    "providers": {"mock": {"type": "mock"}, "slow": {"type": "mock", "chunk_delay_ms": 50}},
    "models": {
        "echo": {"target": {"provider": "mock", "model": "echo"}},
        # The first target always fails with a 503: every request falls back to the second.
        "flaky": {"targets": [{"provider": "mock", "model": "error-503"}, {"provider": "mock", "model": "echo"}]},
        # Two tries on a target that always fails with a 500, then the error.
        "broken": {"target": {"provider": "mock", "model": "error-500"},
                   "retry": {"attempts": 2, "backoff": {"initial": "1ms", "max": "2ms"}}},
        "claude-*": {"target": {"provider": "mock", "model": "echo-*"}},
    },
}


def scrape(server: GatewayServer, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def test_a_mixed_run_is_counted_as_the_clients_saw_it() -> None:
    with GatewayServer(CONFIG) as server:
        client = server.openai_client()
        claude = server.anthropic_client()
        seen_in = seen_out = 0
        for _ in range(3):
            usage = client.chat.completions.create(model="echo", messages=HI).usage
            seen_in, seen_out = seen_in + usage.prompt_tokens, seen_out + usage.completion_tokens
        for _ in range(2):
            usage = client.chat.completions.create(model="flaky", messages=HI).usage
            seen_in, seen_out = seen_in + usage.prompt_tokens, seen_out + usage.completion_tokens
        chunks = list(client.chat.completions.create(model="echo", messages=HI, stream=True,
                                                     stream_options={"include_usage": True}))
        seen_in, seen_out = seen_in + chunks[-1].usage.prompt_tokens, seen_out + chunks[-1].usage.completion_tokens
        message = claude.messages.create(model="claude-3-haiku", max_tokens=50, messages=HI)
        seen_in, seen_out = seen_in + message.usage.input_tokens, seen_out + message.usage.output_tokens
        with claude.messages.stream(model="echo", max_tokens=50, messages=HI) as stream:
            final = stream.get_final_message()
        seen_in, seen_out = seen_in + final.usage.input_tokens, seen_out + final.usage.output_tokens
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="broken", messages=HI)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model-8b1f", messages=HI)
        with pytest.raises(anthropic.NotFoundError):
            claude.messages.create(model="mock-nope/x", max_tokens=5, messages=HI)
        samples = scrape(server)

    requests = "portway_requests_total"
    assert value(samples, requests, endpoint="chat.completions", model="echo", provider="mock", status="200") == 4
    assert value(samples, requests, endpoint="chat.completions", model="flaky", provider="mock", status="200") == 2
    assert value(samples, requests, endpoint="messages", model="claude-*", provider="mock", status="200") == 1
    assert value(samples, requests, endpoint="messages", model="echo", provider="mock", status="200") == 1
    assert value(samples, requests, endpoint="chat.completions", model="broken", provider="mock", status="500") == 1
    # Client-chosen names that the config does not know are one label, not one series each.
    assert value(samples, requests, endpoint="chat.completions", model="other", provider="none", status="404") == 1
    assert value(samples, requests, endpoint="messages", model="other", provider="none", status="404") == 1
    assert total(samples, requests) == 11
    assert value(samples, "portway_request_errors_total", endpoint="chat.completions", kind="server_error") == 1
    assert total(samples, "portway_request_errors_total", kind="not_found") == 2

    # Tokens agree with what the clients were told, to the token.
    assert total(samples, "portway_input_tokens_total") == seen_in
    assert total(samples, "portway_output_tokens_total") == seen_out
    assert total(samples, "portway_request_input_tokens_sum") == seen_in

    # Two fallbacks (flaky), one retry (broken: two tries), and every attempt by provider.
    assert value(samples, "portway_fallbacks_total", model="flaky") == 2
    assert value(samples, "portway_retries_total", provider="mock") == 1
    assert value(samples, "portway_upstream_attempts_total", provider="mock") == 4 + 2 * 2 + 2 + 2
    assert total(samples, "portway_upstream_failures_total", provider="mock") == 2 + 2
    assert value(samples, "portway_request_attempts_count", endpoint="chat.completions") == 4 + 2 + 1

    # Streams: one each way, with a first token, a duration and their chunks.
    assert total(samples, "portway_streams_total") == 2
    assert total(samples, "portway_time_to_first_token_seconds_count") == 2
    assert total(samples, "portway_stream_chunks_count") == 2
    assert total(samples, "portway_stream_chunks_sum") >= len(chunks)
    # Every request has a latency and an overhead; the overhead is never more than the latency.
    assert total(samples, "portway_request_duration_seconds_count") == 11
    assert total(samples, "portway_gateway_overhead_seconds_count") == 11
    assert total(samples, "portway_gateway_overhead_seconds_sum") <= total(
        samples, "portway_request_duration_seconds_sum")
    assert value(samples, "portway_requests_in_flight") == 0


def test_every_family_is_exposed_before_any_traffic() -> None:
    from portway_metrics.families import FAMILIES

    with GatewayServer(CONFIG) as server:
        text = httpx.get(server.url + "/metrics", timeout=10).text
    exposed = {family.name for family in text_string_to_metric_families(text)}
    assert {family.name for family in FAMILIES} <= exposed
    assert len([name for name in exposed if name.startswith("portway_")]) >= 40
    assert any(name.startswith("process_") for name in exposed)  # prometheus-client's process collector


def test_a_stream_is_in_flight_until_it_ends() -> None:
    with GatewayServer(CONFIG) as server:
        client = server.openai_client()
        stream = client.chat.completions.create(model="slow/echo", messages=HI, stream=True)
        next(iter(stream))  # the stream has started and is open
        during = value(scrape(server), "portway_requests_in_flight")
        rest = list(stream)
        after = value(scrape(server), "portway_requests_in_flight")
    assert rest and (during, after) == (1, 0)


@pytest.mark.parametrize(("public", "key", "status"), [
    (True, None, 200),
    (False, None, 401),
    (False, "wrong-key", 401),
    (False, MASTER, 200),
])
def test_metrics_public_or_behind_the_master_key(public: bool, key: str | None, status: int) -> None:
    config = {**CONFIG, "auth": {"master_key": MASTER}, "metrics": {"public": public}}
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with GatewayServer(config) as server:
        response = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"
    else:
        assert "portway_requests_total" in response.text


def test_an_unknown_metrics_key_is_a_config_error() -> None:
    from portway.config import ConfigError

    with pytest.raises(ConfigError, match="metrics"):
        GatewayServer({**CONFIG, "metrics": {"pubic": True}})


class FailingSink:
    @hookimpl
    def request_finished(self, ctx: Any) -> None:
        raise RuntimeError("sink down")


def test_hook_calls_and_errors_per_plugin() -> None:
    with GatewayServer(CONFIG, plugins=[("failing-sink", FailingSink())]) as server:
        client = server.openai_client()
        for _ in range(3):
            client.chat.completions.create(model="echo", messages=HI)
        samples = scrape(server)
    labels = {"plugin": "failing-sink", "hook": "request_finished"}
    assert value(samples, "portway_hook_errors_total", **labels) == 3
    assert value(samples, "portway_hook_calls_total", **labels) == 3
    assert value(samples, "portway_hook_calls_total", plugin="metrics", hook="request_finished") == 3
    assert value(samples, "portway_hook_duration_seconds_total", plugin="metrics", hook="request_finished") > 0


def test_breaker_state_and_trips_are_read_at_scrape_time() -> None:
    with FakeUpstream() as upstream:
        upstream.add("/down/v1/chat/completions",
                     json_reply({"error": {"message": "boom", "type": "server_error"}}, 500))
        upstream.add("/v1/chat/completions", json_reply({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}))
        config = {"providers": {"down": {"type": "openai", "api_key": "sk-x", "base_url": upstream.url + "/down/v1"},
                                "good": {"type": "openai", "api_key": "sk-x", "base_url": upstream.url + "/v1"}},
                  "models": {"smart": {"targets": [{"provider": "down", "model": "m"}, {"provider": "good", "model": "m"}]}},
                  "routing": {"breaker": {"failures": 2, "cooldown": "10m"}}}
        with GatewayServer(config) as server:
            client = server.openai_client()
            for _ in range(5):
                client.chat.completions.create(model="smart", messages=HI)
            samples = scrape(server)
    state = "portway_breaker_state"
    assert value(samples, state, target="down/m", state="open") == 1
    assert value(samples, state, target="down/m", state="closed") == 0
    assert value(samples, state, target="good/m", state="closed") == 1
    assert value(samples, "portway_breaker_trips_total", target="down/m") == 1
    assert value(samples, "portway_fallbacks_total", model="smart") == 2  # then the breaker skipped it
    assert value(samples, "portway_upstream_failures_total", provider="down", kind="server_error") == 2
    assert value(samples, "portway_upstream_connections_limit", provider="good") == 1000


def test_model_labels_stay_few_whatever_clients_send() -> None:
    with GatewayServer(CONFIG) as server:
        client = server.openai_client()
        names = [f"mock/made-up-{n}" for n in range(5)] + ["mock/echo", "echo", "claude-x", "claude-y"]

        def ask(name: str) -> None:
            client.chat.completions.create(model=name, messages=HI)

        threads = [threading.Thread(target=ask, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        samples = scrape(server)
    models = {dict(labels)["model"] for (name, labels) in samples if name == "portway_requests_total"}
    assert models == {"mock/other", "mock/echo", "echo", "claude-*"}
    assert value(samples, "portway_requests_total", endpoint="chat.completions", model="mock/other",
                 provider="mock", status="200") == 5


class CacheAndGuard:
    """A stand-in for the cache and guardrail plugins: what they leave on the context."""

    @hookimpl
    def pre_request(self, ctx: Any) -> Any:
        text = ctx.body["messages"][-1]["content"]
        if "blocked" in text:
            ctx.verdicts.append({"check": "no-secrets", "type": "regex", "action": "block", "category": "secret",
                                 "stage": "input", "duration_ms": 0.1})
            raise PortwayError("blocked by a guardrail", kind="content_filter", code="guardrail_denied")
        if "cached" in text:
            ctx.cache_status = "hit"
            return {"id": "c", "object": "chat.completion", "created": 1, "model": ctx.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "from cache"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}
        ctx.cache_status = "miss"
        return None


def test_cache_results_and_guardrail_verdicts() -> None:
    with GatewayServer(CONFIG, plugins=[("cache-and-guard", CacheAndGuard())]) as server:
        client = server.openai_client()
        for text in ("cached one", "cached two", "fresh", "blocked please"):
            try:
                client.chat.completions.create(model="echo", messages=[{"role": "user", "content": text}])
            except openai.BadRequestError:
                assert text == "blocked please"
        samples = scrape(server)
    assert value(samples, "portway_cache_requests_total", endpoint="chat.completions", result="hit") == 2
    assert value(samples, "portway_cache_requests_total", endpoint="chat.completions", result="miss") == 1  # the blocked one never reached the cache
    assert value(samples, "portway_requests_total", endpoint="chat.completions", model="echo", provider="cache",
                 status="200") == 2
    assert value(samples, "portway_guardrail_verdicts_total", check="no-secrets", action="block", stage="input") == 1
    assert value(samples, "portway_guardrail_blocked_requests_total", endpoint="chat.completions") == 1
    assert value(samples, "portway_request_errors_total", endpoint="chat.completions", kind="content_filter") == 1


def test_concurrency_limits_and_their_queue() -> None:
    body = serialization.dumps({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    gate = Gate()
    with FakeUpstream() as upstream:
        upstream.add("/v1/chat/completions", Reply(chunks=[gate, body]), json_reply(serialization.loads(body)))
        config = {"providers": {"oai": {"type": "openai", "api_key": "sk-x", "base_url": upstream.url + "/v1",
                                        "max_concurrency": 1}},
                  "models": {"m": {"target": {"provider": "oai", "model": "m"}}},
                  "routing": {"queue": {"max_waiting": 1, "timeout": "20s"}}}
        with GatewayServer(config) as server:
            client = server.openai_client()
            results: list[Any] = []

            def ask() -> None:
                results.append(client.chat.completions.create(model="m", messages=HI).choices[0].message.content)

            first, second = threading.Thread(target=ask), threading.Thread(target=ask)
            first.start()
            gate.wait_reached()  # the first request holds the only slot
            second.start()
            deadline = time.monotonic() + 10
            while value(scrape(server), "portway_queue_depth", limiter="oai") != 1:  # the second one waits
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.01)
            during = scrape(server)
            with pytest.raises(openai.RateLimitError):  # the queue is full: refused at once
                client.chat.completions.create(model="m", messages=HI)
            gate.open()
            first.join()
            second.join()
            after = scrape(server)
    assert results == ["ok", "ok"]
    assert value(during, "portway_concurrency_in_use", limiter="oai") == 1
    assert value(during, "portway_concurrency_limit", limiter="oai") == 1
    assert value(during, "portway_upstream_connections_in_use", provider="oai") == 1  # the held request's
    assert value(after, "portway_upstream_connections_in_use", provider="oai") == 0
    assert value(after, "portway_queue_depth", limiter="oai") == 0
    assert value(after, "portway_concurrency_in_use", limiter="oai") == 0
    assert value(after, "portway_queue_waited_requests_total", limiter="oai") == 1
    assert value(after, "portway_queue_wait_seconds_total", limiter="oai") > 0
    assert value(after, "portway_queue_rejections_total", limiter="oai") == 1
    assert value(after, "portway_request_errors_total", endpoint="chat.completions", kind="rate_limit") == 1


def test_the_real_cache_and_guardrails_as_metrics() -> None:
    config = {**CONFIG,
              "cache": {"mode": "exact", "backend": "memory", "ttl": "10m"},
              "guardrails": {"checks": {"nope": {"type": "regex", "pattern": "(?i)forbidden", "action": "deny",
                                                 "on": ["input"]},
                                        "hello": {"type": "regex", "pattern": "(?i)hello", "action": "flag",
                                                  "on": ["input"]}},
                             "default": ["nope", "hello"]}}
    with GatewayServer(config) as server:
        client = server.openai_client()
        for _ in range(3):  # the first is a miss, the two others hits
            client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello cache"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "forbidden"}])
        samples = scrape(server)
    assert value(samples, "portway_cache_requests_total", endpoint="chat.completions", result="miss") == 1
    assert value(samples, "portway_cache_requests_total", endpoint="chat.completions", result="hit") == 2
    assert value(samples, "portway_requests_total", endpoint="chat.completions", model="echo", provider="cache",
                 status="200") == 2
    assert value(samples, "portway_guardrail_verdicts_total", check="hello", action="flag", stage="input") == 3
    assert value(samples, "portway_guardrail_verdicts_total", check="nope", action="deny", stage="input") == 1
    assert value(samples, "portway_guardrail_blocked_requests_total", endpoint="chat.completions") == 1
    # Only the miss went upstream.
    assert value(samples, "portway_upstream_attempts_total", provider="mock") == 1
