"""The cache through a running gateway, driven by the openai and anthropic
SDKs, in front of a fake upstream that counts its calls; each behaviour on
every backend (memory, SQLite in a temporary file, the real Redis under a
prefix of its own)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from portway_cache.testing import CHAT, EMBED, CacheUpstream, gateway_config

from portway.testing import FakeUpstream, json_reply, sse_reply
from portway.testing.anthropic_api import AnthropicAPI
from portway.testing.gateway import GatewayServer
from portway.testing.script import say

REDIS_URL = "redis://127.0.0.1:6379/0"
MASTER = "pw-master-cache-test-0123"
BACKENDS = ["memory", "sqlite", "redis"]


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def upstream() -> Iterator[CacheUpstream]:
    with FakeUpstream() as fake:
        yield CacheUpstream(fake)


def backend_section(name: str, tmp_path: Path, prefix: str) -> dict[str, Any]:
    if name == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "cache.db")}
    if name == "redis":
        return {"backend": "redis", "redis_url": REDIS_URL, "prefix": prefix}
    return {"backend": "memory"}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str) -> dict[str, Any]:
    return backend_section(request.param, tmp_path, redis_prefix)


def serve(upstream: CacheUpstream, cache: dict[str, Any] | None, **options: Any) -> GatewayServer:
    return GatewayServer(gateway_config(upstream.upstream, cache, **options))


def chat(client: openai.OpenAI, text: str, **options: Any) -> tuple[str | None, httpx.Headers]:
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=ask(text), **options)
    return raw.parse().choices[0].message.content, raw.headers


def streamed(client: openai.OpenAI, text: str, **options: Any) -> tuple[str, str | None, Any, httpx.Headers]:
    """The text, finish reason and usage a streamed answer parses into, and its headers."""
    with client.chat.completions.with_streaming_response.create(model="fast", messages=ask(text), stream=True,
                                                                **options) as raw:
        parts, finish, usage = [], None, None
        for chunk in raw.parse():
            if chunk.usage is not None:
                usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        return "".join(parts), finish, usage, raw.headers


# -- exact hits ---------------------------------------------------------------------------


def test_a_second_identical_request_does_not_reach_the_upstream(upstream: CacheUpstream,
                                                               backend: dict[str, Any]) -> None:
    with serve(upstream, backend) as server:
        client = server.openai_client()
        first, first_headers = chat(client, "what is a cache?")
        second, second_headers = chat(client, "what is a cache?")
        other, _ = chat(client, "what is a queue?")
    assert first == second == upstream.answer("what is a cache?")
    assert other == upstream.answer("what is a queue?")
    assert first_headers["x-portway-cache"] == "miss" and first_headers["x-portway-provider"] == "up"
    assert second_headers["x-portway-cache"] == "hit" and second_headers["x-portway-provider"] == "cache"
    assert int(second_headers["age"]) >= 0 and "age" not in first_headers
    assert second_headers["x-portway-cache-key"] == first_headers["x-portway-cache-key"]
    assert upstream.chat_calls() == 2


@pytest.mark.parametrize(("change", "hits"), [
    ({}, True),
    ({"user": "someone-else"}, True),                 # who asked does not change the answer
    ({"metadata": {"trace": "x"}, "store": False}, True),
    ({"temperature": 0.5}, False),                      # sampling does
    ({"max_tokens": 5}, False),
    ({"seed": 7}, False),
    ({"response_format": {"type": "json_object"}}, False),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, False),
])
def test_what_is_in_the_key(upstream: CacheUpstream, change: dict[str, Any], hits: bool) -> None:
    with serve(upstream, {}) as server:
        client = server.openai_client()
        chat(client, "the same words")
        _, headers = chat(client, "the same words", **change)
    assert headers["x-portway-cache"] == ("hit" if hits else "miss")
    assert upstream.chat_calls() == (1 if hits else 2)


def test_the_key_is_of_the_resolved_model_not_the_name_the_client_typed(upstream: CacheUpstream) -> None:
    models = {"same-as-fast": {"target": {"provider": "up", "model": "m"}},
              "elsewhere": {"target": {"provider": "up", "model": "other"}}}
    with serve(upstream, {}, models=models) as server:
        client = server.openai_client()
        client.chat.completions.create(model="fast", messages=ask("hello"))
        same = client.chat.completions.with_raw_response.create(model="same-as-fast", messages=ask("hello"))
        direct = client.chat.completions.with_raw_response.create(model="up/m", messages=ask("hello"))
        other = client.chat.completions.with_raw_response.create(model="elsewhere", messages=ask("hello"))
    assert [r.headers["x-portway-cache"] for r in (same, direct, other)] == ["hit", "hit", "miss"]
    assert upstream.chat_calls() == 2


def test_no_cache_section_no_caching(upstream: CacheUpstream) -> None:
    with serve(upstream, None) as server:
        client = server.openai_client()
        _, first = chat(client, "hi")
        chat(client, "hi")
    assert "x-portway-cache" not in first and upstream.chat_calls() == 2


# -- streams ----------------------------------------------------------------------------------


def test_a_stream_replay_parses_like_the_live_stream_in_the_openai_sdk(upstream: CacheUpstream,
                                                                        backend: dict[str, Any]) -> None:
    with serve(upstream, backend) as server:
        client = server.openai_client()
        live = streamed(client, "tell me a story", stream_options={"include_usage": True})
        replay = streamed(client, "tell me a story", stream_options={"include_usage": True})
        without_usage = streamed(client, "tell me a story")
        whole, whole_headers = chat(client, "tell me a story")  # non-streamed, from the streamed entry
        raw = httpx.post(server.base_url + "/chat/completions", timeout=10,
                         headers={"authorization": "Bearer portway-test"},  # the SDK's key: the same namespace
                         json={"model": "fast", "messages": ask("tell me a story"), "stream": True})
    assert live[3]["x-portway-cache"] == "miss" and replay[3]["x-portway-cache"] == "hit"
    assert live[:3] == replay[:3] == (upstream.answer("tell me a story"), "stop",
                                      {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    assert without_usage[:3] == (upstream.answer("tell me a story"), "stop", None)
    assert whole == upstream.answer("tell me a story") and whole_headers["x-portway-cache"] == "hit"
    assert raw.headers["x-portway-cache"] == "hit" and raw.text.endswith("data: [DONE]\n\n")
    assert upstream.chat_calls() == 1


def test_a_stream_is_served_from_a_non_streamed_entry(upstream: CacheUpstream) -> None:
    with serve(upstream, {}) as server:
        client = server.openai_client()
        whole, _ = chat(client, "a plain answer")
        text, finish, _, headers = streamed(client, "a plain answer")
    assert text == whole and finish == "stop" and headers["x-portway-cache"] == "hit"
    assert upstream.chat_calls() == 1


def test_tool_calls_replay_in_both_shapes(upstream: CacheUpstream) -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    with serve(upstream, {}) as server:
        client = server.openai_client()
        live = client.chat.completions.create(model="fast", messages=ask("weather?"), tools=tools)
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in client.chat.completions.create(model="fast", messages=ask("weather?"), tools=tools,
                                                    stream=True):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] += call.id or ""
                    entry["name"] += call.function.name or "" if call.function else ""
                    entry["arguments"] += call.function.arguments or "" if call.function else ""
    call = live.choices[0].message.tool_calls[0]
    assert live.choices[0].finish_reason == "tool_calls" == finish
    assert calls == {0: {"id": call.id, "name": "weather", "arguments": call.function.arguments}}
    assert upstream.chat_calls() == 1


def test_anthropic_sdk_replays_parse_like_live_answers(upstream: CacheUpstream, backend: dict[str, Any]) -> None:
    with serve(upstream, backend) as server:
        client = server.anthropic_client()

        def stream_text() -> tuple[str, str | None, int, str]:
            with client.messages.with_streaming_response.create(
                    model="fast", max_tokens=100, messages=ask("explain tides"), stream=True) as raw:
                text, stop, output = "", None, 0
                for event in raw.parse():
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        text += event.delta.text
                    elif event.type == "message_delta":
                        stop, output = event.delta.stop_reason, event.usage.output_tokens
                return text, stop, output, raw.headers["x-portway-cache"]

        live = stream_text()
        replay = stream_text()
        whole = client.messages.with_raw_response.create(model="fast", max_tokens=100, messages=ask("explain tides"))
    assert live == (upstream.answer("explain tides"), "end_turn", 7, "miss")
    assert replay == (upstream.answer("explain tides"), "end_turn", 7, "hit")
    message = whole.parse()
    assert whole.headers["x-portway-cache"] == "hit" and message.content[0].text == upstream.answer("explain tides")
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 7
    assert upstream.chat_calls() == 1


def test_an_interrupted_stream_is_not_stored(upstream: CacheUpstream) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    broken = sse_reply([{**chunk, "choices": [{"index": 0, "delta": {"content": "half an"}, "finish_reason": None}]}])
    upstream.upstream.add(CHAT, broken, upstream._chat)  # the first call breaks off, then the fake answers
    with serve(upstream, {}) as server:
        client = server.openai_client()
        with pytest.raises(openai.APIError):
            streamed(client, "a long answer")
        text, _, _, headers = streamed(client, "a long answer")
        _, again = chat(client, "a long answer")
    assert headers["x-portway-cache"] == "miss" and text == upstream.answer("a long answer")
    assert again["x-portway-cache"] == "hit"
    assert upstream.chat_calls() == 2


# -- errors, TTL, headers ---------------------------------------------------------------------------


def test_errors_are_not_cached(upstream: CacheUpstream, backend: dict[str, Any]) -> None:
    upstream.fail = 500
    with serve(upstream, backend) as server:
        client = server.openai_client()
        with pytest.raises(openai.InternalServerError):
            chat(client, "fragile")
        failed_calls = upstream.chat_calls()  # the gateway's own retries included
        upstream.fail = None
        first, headers = chat(client, "fragile")
        _, again = chat(client, "fragile")
    assert first == upstream.answer("fragile") and headers["x-portway-cache"] == "miss"
    assert again["x-portway-cache"] == "hit"
    assert upstream.chat_calls() == failed_calls + 1


@pytest.mark.parametrize(("finish", "stored"), [("stop", True), ("length", True), ("content_filter", False)])
@pytest.mark.parametrize("stream", [False, True])
def test_only_complete_answers_are_stored(upstream: CacheUpstream, finish: str, stored: bool, stream: bool) -> None:
    upstream.finish_reason = finish
    with serve(upstream, {}) as server:
        client = server.openai_client()
        for _ in range(2):
            if stream:
                streamed(client, "filtered?")
            else:
                chat(client, "filtered?")
    assert upstream.chat_calls() == (1 if stored else 2)


def test_an_entry_expires_after_its_ttl(upstream: CacheUpstream, backend: dict[str, Any]) -> None:
    import time

    with serve(upstream, {**backend, "ttl": "1s"}) as server:
        client = server.openai_client()
        chat(client, "fleeting")
        _, within = chat(client, "fleeting")
        time.sleep(1.2)
        _, after = chat(client, "fleeting")
    assert within["x-portway-cache"] == "hit" and after["x-portway-cache"] == "miss"
    assert upstream.chat_calls() == 2


@pytest.mark.parametrize(("value", "status", "stored"), [
    ("no-cache", "bypass", True),
    ("no-store", "hit", True),      # the entry made by the first request is found
    ("refresh", "bypass", True),
    ("ttl=60", "hit", True),
    ("No-Store, ttl=5", "hit", True),
])
def test_the_request_header(upstream: CacheUpstream, value: str, status: str, stored: bool) -> None:
    with serve(upstream, {}) as server:
        client = server.openai_client()
        chat(client, "steered")
        _, headers = chat(client, "steered", extra_headers={"x-portway-cache": value})
        _, after = chat(client, "steered")
    assert headers["x-portway-cache"] == status
    assert after["x-portway-cache"] == "hit"
    assert upstream.chat_calls() == (2 if status == "bypass" else 1)


def test_no_store_stores_nothing_and_no_cache_stores(upstream: CacheUpstream) -> None:
    with serve(upstream, {}) as server:
        client = server.openai_client()
        _, first = chat(client, "kept?", extra_headers={"x-portway-cache": "no-store"})
        _, second = chat(client, "kept?", extra_headers={"x-portway-cache": "no-cache"})
        _, third = chat(client, "kept?")
    assert (first["x-portway-cache"], second["x-portway-cache"], third["x-portway-cache"]) == ("miss", "bypass", "hit")
    assert upstream.chat_calls() == 2


def test_a_header_ttl_overrides_the_configured_one(upstream: CacheUpstream) -> None:
    import time

    with serve(upstream, {"ttl": "1h"}) as server:
        client = server.openai_client()
        chat(client, "short-lived", extra_headers={"x-portway-cache": "ttl=1"})
        time.sleep(1.2)
        _, after = chat(client, "short-lived")
    assert after["x-portway-cache"] == "miss" and upstream.chat_calls() == 2


@pytest.mark.parametrize("value", ["maybe", "ttl=0", "ttl=-3", "ttl=abc", "no-cache;no-store", "ttl=1e9"])
def test_a_bad_header_is_a_400_in_the_clients_shape(upstream: CacheUpstream, value: str) -> None:
    with serve(upstream, {}) as server:
        with pytest.raises(openai.BadRequestError) as openai_error:
            chat(server.openai_client(), "x", extra_headers={"x-portway-cache": value})
        with pytest.raises(anthropic.BadRequestError) as anthropic_error:
            server.anthropic_client().messages.create(model="fast", max_tokens=10, messages=ask("x"),
                                                      extra_headers={"x-portway-cache": value})
    assert openai_error.value.code == "invalid_cache_header" and "x-portway-cache" in openai_error.value.message
    assert anthropic_error.value.body["error"]["type"] == "invalid_request_error"
    assert "x-portway-cache" in anthropic_error.value.body["error"]["message"]
    assert upstream.chat_calls() == 0


def test_an_alias_can_turn_caching_off_or_change_it(upstream: CacheUpstream) -> None:
    models = {"creative": {"target": {"provider": "up", "model": "m"}, "cache": False},
              "brief": {"target": {"provider": "up", "model": "m"}, "cache": {"ttl": 1}}}
    import time

    with serve(upstream, {"ttl": "1h"}, models=models) as server:
        client = server.openai_client()
        heads = [client.chat.completions.with_raw_response.create(model="creative", messages=ask("poem")).headers
                 for _ in range(2)]
        client.chat.completions.create(model="brief", messages=ask("note"))
        time.sleep(1.2)
        brief = client.chat.completions.with_raw_response.create(model="brief", messages=ask("note")).headers
    assert [h["x-portway-cache"] for h in heads] == ["bypass", "bypass"]
    assert brief["x-portway-cache"] == "miss"
    assert upstream.chat_calls() == 4


# -- namespaces and admin --------------------------------------------------------------------------


def test_namespaces_isolate_keys(upstream: CacheUpstream, backend: dict[str, Any]) -> None:
    with serve(upstream, backend) as server:
        alice, bob = server.openai_client(api_key="sk-alice"), server.openai_client(api_key="sk-bob")
        chat(alice, "a secret question")
        _, bobs = chat(bob, "a secret question")
        _, alices = chat(alice, "a secret question")
    assert bobs["x-portway-cache"] == "miss" and alices["x-portway-cache"] == "hit"
    assert bobs["x-portway-cache-key"].split(":")[0] != alices["x-portway-cache-key"].split(":")[0]
    assert upstream.chat_calls() == 2


def test_a_per_request_alias_can_turn_caching_off_but_not_change_its_namespace(upstream: CacheUpstream) -> None:
    import json

    def config(cache: Any) -> dict[str, str]:
        return {"x-portway-config": json.dumps({"targets": [{"provider": "up", "model": "m"}], "cache": cache})}

    with serve(upstream, {}) as server:
        alice, bob = server.openai_client(api_key="sk-alice"), server.openai_client(api_key="sk-bob")
        _, off = chat(alice, "per request", extra_headers=config(False))
        chat(alice, "per request", extra_headers=config({"namespace": "shared"}))
        _, bobs = chat(bob, "per request", extra_headers=config({"namespace": "shared"}))
    assert off["x-portway-cache"] == "bypass"
    assert bobs["x-portway-cache"] == "miss" and not bobs["x-portway-cache-key"].startswith("shared:")
    assert upstream.chat_calls() == 3


def test_a_shared_namespace_serves_every_key(upstream: CacheUpstream) -> None:
    with serve(upstream, {"namespace": "shared"}) as server:
        chat(server.openai_client(api_key="sk-alice"), "a common question")
        _, bobs = chat(server.openai_client(api_key="sk-bob"), "a common question")
    assert bobs["x-portway-cache"] == "hit" and bobs["x-portway-cache-key"].startswith("shared:")
    assert upstream.chat_calls() == 1


def test_admin_cache_deletes_by_key_namespace_or_all(upstream: CacheUpstream, backend: dict[str, Any]) -> None:
    admin = {"authorization": f"Bearer {MASTER}"}
    with serve(upstream, backend, master_key=MASTER) as server:
        client = server.openai_client(api_key=MASTER)
        _, one = chat(client, "one")
        chat(client, "two")
        chat(client, "three")
        url = server.url + "/admin/cache"
        assert httpx.delete(url).status_code == 401
        assert httpx.delete(url, params={"key": one["x-portway-cache-key"]}, headers=admin).json() == {"deleted": 1}
        after_key = [chat(client, q)[1]["x-portway-cache"] for q in ("one", "two")]
        namespace = one["x-portway-cache-key"].split(":")[0]
        assert httpx.delete(url, params={"namespace": "somebody-else"}, headers=admin).json() == {"deleted": 0}
        assert httpx.delete(url, params={"namespace": namespace}, headers=admin).json() == {"deleted": 3}
        after_namespace = chat(client, "two")[1]["x-portway-cache"]
        assert httpx.delete(url, headers=admin).json()["deleted"] >= 1
        after_all = chat(client, "two")[1]["x-portway-cache"]
        stats = httpx.get(url, headers=admin).json()
    assert after_key == ["miss", "hit"] and after_namespace == "miss" and after_all == "miss"
    assert stats["backend"] == backend["backend"] and stats["hit"] == 1 and stats["miss"] == 6


# -- single flight -----------------------------------------------------------------------------------


def test_fifty_concurrent_identical_requests_make_one_upstream_call(upstream: CacheUpstream,
                                                                    backend: dict[str, Any]) -> None:
    with serve(upstream, backend) as server:
        async def burst() -> list[Any]:
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-burst", max_retries=0) as client:
                return await asyncio.gather(*[
                    client.chat.completions.with_raw_response.create(model="fast", messages=ask("stampede"))
                    for _ in range(50)])

        answers = asyncio.run(burst())
    assert {a.parse().choices[0].message.content for a in answers} == {upstream.answer("stampede")}
    statuses = [a.headers["x-portway-cache"] for a in answers]
    assert statuses.count("miss") == 1 and statuses.count("hit") == 49
    assert upstream.chat_calls() == 1


def test_waiters_go_upstream_themselves_when_the_leader_fails(upstream: CacheUpstream) -> None:
    upstream.fail = 500
    with serve(upstream, {}) as server:
        async def burst() -> list[Any]:
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-burst", max_retries=0) as client:
                return await asyncio.gather(*[
                    client.chat.completions.create(model="fast", messages=ask("doomed")) for _ in range(5)],
                    return_exceptions=True)

        outcomes = asyncio.run(burst())
    assert all(isinstance(o, openai.InternalServerError) for o in outcomes)
    assert upstream.chat_calls() == 5  # no failure was shared or stored


# -- semantic ------------------------------------------------------------------------------------------


def semantic(backend: dict[str, Any], threshold: float = 0.85) -> dict[str, Any]:
    return {**backend, "mode": "semantic", "semantic": {"embedding_model": "embed", "threshold": threshold}}


def test_a_near_identical_prompt_hits_and_a_different_question_does_not(upstream: CacheUpstream,
                                                                        backend: dict[str, Any]) -> None:
    original = "please tell me what the capital city of France is"
    with serve(upstream, semantic(backend)) as server:
        client = server.openai_client()
        first, first_headers = chat(client, original)
        near, near_headers = chat(client, "Please tell me, what the capital city of France was?")
        other, other_headers = chat(client, "how many legs does a spider have")
        text, _, _, stream_headers = streamed(client, "please tell me what the capital city of France was")
    assert first_headers["x-portway-cache"] == "miss"
    assert near_headers["x-portway-cache"] == "semantic-hit" and near == first == text
    assert 0.85 <= float(near_headers["x-portway-cache-similarity"]) < 1
    assert stream_headers["x-portway-cache"] == "semantic-hit"
    assert other_headers["x-portway-cache"] == "miss" and other == upstream.answer("how many legs does a spider have")
    assert "x-portway-cache-similarity" not in other_headers
    assert upstream.chat_calls() == 2


@pytest.mark.parametrize(("change", "hits"), [
    ({}, True),
    ({"temperature": 0.9}, False),                                             # other parameters
    ({"history": [{"role": "user", "content": "earlier"},
                  {"role": "assistant", "content": "reply"}]}, False),         # another conversation
    ({"api_key": "sk-other-client"}, False),                                   # another namespace
])
def test_semantic_hits_stay_within_model_parameters_history_and_namespace(upstream: CacheUpstream,
                                                                         change: dict[str, Any],
                                                                         hits: bool) -> None:
    with serve(upstream, semantic({})) as server:
        chat(server.openai_client(), "what colour is the sky on a clear day")
        client = server.openai_client(api_key=change.get("api_key", "portway-test"))
        options = {"temperature": change["temperature"]} if "temperature" in change else {}
        raw = client.chat.completions.with_raw_response.create(
            model="fast", messages=[*change.get("history", []), *ask("what colour is the sky on a clear day?")],
            **options)
    assert raw.headers["x-portway-cache"] == ("semantic-hit" if hits else "miss")


def test_the_embedding_call_failing_is_a_miss_not_an_error(upstream: CacheUpstream) -> None:
    upstream.upstream.add(EMBED, json_reply({"error": {"message": "no", "type": "server_error"}}, 500))
    with serve(upstream, semantic({})) as server:
        client = server.openai_client()
        first, headers = chat(client, "anything at all")
        _, again = chat(client, "anything at all")
    assert first == upstream.answer("anything at all") and headers["x-portway-cache"] == "miss"
    assert again["x-portway-cache"] == "hit"  # the exact cache still works


def test_an_alias_can_be_semantic_under_an_exact_section(upstream: CacheUpstream) -> None:
    models = {"faq": {"target": {"provider": "up", "model": "m"},
                      "cache": {"mode": "semantic", "embedding_model": "embed", "threshold": 0.8}}}
    with serve(upstream, {"mode": "exact"}, models=models) as server:
        client = server.openai_client()
        for model in ("faq", "fast"):
            client.chat.completions.create(model=model, messages=ask("how do I reset my password"))
        faq = client.chat.completions.with_raw_response.create(model="faq", messages=ask("how do I reset my password?!"))
        fast = client.chat.completions.with_raw_response.create(model="fast", messages=ask("how do I reset my password?!"))
    assert faq.headers["x-portway-cache"] == "semantic-hit" and fast.headers["x-portway-cache"] == "miss"


# -- what a hit records -------------------------------------------------------------------------------


def test_a_hit_is_logged_with_the_cost_it_saved_and_counted(upstream: CacheUpstream,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    config = gateway_config(upstream.upstream, {}, master_key=MASTER)
    config["catalog"] = {"up/m": {"price": {"input": 1.0, "output": 2.0}}}  # USD per million tokens
    with caplog.at_level(logging.INFO, logger="portway.access"), GatewayServer(config) as server:
        client = server.openai_client(api_key=MASTER)
        _, paid = chat(client, "worth keeping")
        _, free = chat(client, "worth keeping")
        stats = httpx.get(server.url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert paid["x-portway-cost"] == "0.000025"  # 11 input and 7 output tokens
    assert free["x-portway-cost"] == "0.0"
    lines = [r for r in caplog.records if r.name == "portway.access" and r.endpoint == "chat.completions"]
    assert [(r.cache, r.cost_saved_usd) for r in lines] == [("miss", None), ("hit", pytest.approx(0.000025))]
    assert lines[1].getMessage().endswith("cache=hit saved=0.000025")
    assert stats["hit"] == 1 and stats["miss"] == 1 and stats["saved_usd"] == pytest.approx(0.000025)


# -- an Anthropic upstream spoken to as it is (pass-through) ---------------------------------------


@pytest.mark.parametrize("first_streamed", [False, True])
def test_pass_through_answers_are_stored_and_hits_render_as_anthropic_messages(first_streamed: bool) -> None:
    api = AnthropicAPI([say("The tide turns twice a day.", input_tokens=12, output_tokens=8)], api_key="sk-ant-test")
    with FakeUpstream() as fake:
        api.install(fake)
        config = {"providers": {"claude": {"type": "anthropic", "api_key": "sk-ant-test", "base_url": fake.url}},
                  "models": {"sonnet": {"target": {"provider": "claude", "model": "claude-sonnet-4-5"}}},
                  "cache": {}}
        with GatewayServer(config) as server:
            client = server.anthropic_client()
            request = {"model": "sonnet", "max_tokens": 100, "messages": ask("when does the tide turn?")}
            if first_streamed:
                with client.messages.stream(**request) as stream:
                    live_text = stream.get_final_text()
            else:
                live_text = client.messages.create(**request).content[0].text
            hit = client.messages.with_raw_response.create(**request)
            with client.messages.with_streaming_response.create(**request, stream=True) as raw:
                events = list(raw.parse())
                replay_status = raw.headers["x-portway-cache"]
    message = hit.parse()
    assert live_text == message.content[0].text == "The tide turns twice a day."
    assert hit.headers["x-portway-cache"] == "hit" and message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8
    assert replay_status == "hit"
    assert [e.type for e in events][0] == "message_start" and events[-1].type == "message_stop"
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "The tide turns twice a day."
    assert len(api.calls) == 1


@pytest.mark.parametrize(("section", "registered"), [(None, False), ({}, True)])
def test_the_request_hooks_exist_only_with_a_cache_section(upstream: CacheUpstream, section: Any,
                                                           registered: bool) -> None:
    with serve(upstream, section) as server:
        hooks = server.gateway.hooks
        found = {name: "cache-lookup" in hooks.implementers(name)
                 for name in ("pre_request", "post_response", "request_finished")}
    assert found == dict.fromkeys(found, registered)


# -- config errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cache", "models", "message"), [
    ({"backend": "nosuch"}, {}, "cache.backend: no cache backend named 'nosuch' (installed: memory, redis, sqlite"),
    ({"backend": "memory", "path": "x.db"}, {}, "cache.path: Extra inputs are not permitted"),
    ({"backend": "sqlite", "max_entries": 5}, {}, "cache.max_entries: Extra inputs are not permitted"),
    ({"mode": "semantic", "semantic": {"embedding_model": "nowhere/x"}}, {},
     "cache.semantic.embedding_model: model 'nowhere/x' is not configured"),
    ({}, {"faq": {"target": {"provider": "up", "model": "m"}, "cache": {"mode": "semantic"}}},
     "models.faq.cache: mode 'semantic' needs an embedding_model"),
])
def test_config_errors_name_the_key(upstream: CacheUpstream, cache: dict[str, Any], models: dict[str, Any],
                                    message: str) -> None:
    from portway import config as config_module
    from portway.config import ConfigError
    from portway.gateway import Gateway

    parsed = config_module.parse(gateway_config(upstream.upstream, cache, models=models), "portway.yaml", {})
    with pytest.raises(ConfigError) as caught:
        Gateway(parsed)
    assert message in str(caught.value) and str(caught.value).startswith("portway.yaml: ")


@pytest.mark.parametrize("cache", [{"mode": "sometimes"}, {"ttl": 0}, {"ttl": "soon"}, {"namespace": "mine"},
                                   {"mode": "semantic"}, {"semantic": {"embedding_model": "embed", "threshold": 2}}])
def test_bad_section_values_are_config_errors(upstream: CacheUpstream, cache: dict[str, Any]) -> None:
    from portway import config as config_module
    from portway.config import ConfigError
    from portway.gateway import Gateway

    with pytest.raises(ConfigError) as caught:
        Gateway(config_module.parse(gateway_config(upstream.upstream, cache), "portway.yaml", {}))
    assert "cache" in str(caught.value)


def test_the_key_is_of_the_request_after_other_pre_request_hooks_changed_it(upstream: CacheUpstream) -> None:
    import portway

    class Redactor:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> None:
            for message in ctx.body["messages"]:
                message["content"] = message["content"].replace("4111-1111", "[card]")

    config = gateway_config(upstream.upstream, {})
    with GatewayServer(config, plugins=[("redactor", Redactor())]) as server:
        client = server.openai_client()
        first, _ = chat(client, "my card is 4111-1111")
        second, headers = chat(client, "my card is [card]")
    assert first == second == upstream.answer("my card is [card]")
    assert headers["x-portway-cache"] == "hit" and upstream.chat_calls() == 1


def test_a_guardrail_that_denies_the_prompt_is_not_bypassed_by_a_cached_answer(upstream: CacheUpstream) -> None:
    config = gateway_config(upstream.upstream, {})
    config["guardrails"] = {"checks": {"nope": {"type": "regex", "pattern": "(?i)forbidden", "action": "deny",
                                                "on": ["input"]}}}
    with GatewayServer(config) as server:
        client = server.openai_client()
        _, first = chat(client, "a forbidden question")  # no check asked for: answered and stored
        with pytest.raises(openai.APIStatusError) as denied:
            chat(client, "a forbidden question", extra_headers={"x-portway-guardrails": "nope"})
        _, again = chat(client, "a forbidden question")
    assert first["x-portway-cache"] == "miss" and again["x-portway-cache"] == "hit"
    assert denied.value.status_code == 400
    assert upstream.chat_calls() == 1
