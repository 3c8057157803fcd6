"""The hook contract, end to end: gateways built in-process with extra
plugins (objects with ``@portway.hookimpl`` methods, registered exactly like
installed ones), served on a real socket and driven with the openai SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse

import portway
from portway.config import ConfigError
from portway.errors import PortwayError
from portway.testing.gateway import GatewayServer
from portway_mock import MockProvider

MOCK = {"providers": {"mock": {"type": "mock"}}}

Start = Callable[..., GatewayServer]


def completion(content: str, model: str = "cached") -> dict[str, Any]:
    return {
        "id": "chatcmpl-plugin",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def ask(server: GatewayServer, content: str = "hello", model: str = "mock/echo", **options: Any) -> Any:
    """A non-streamed chat completion; returns the raw response (headers + parse())."""
    return server.openai_client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **options
    )


def stream_text(server: GatewayServer, content: str = "hello", model: str = "mock/echo") -> tuple[str, list[Any]]:
    chunks = list(server.openai_client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], stream=True
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- pre_request -----------------------------------------------------------------------


class Recorder:
    def __init__(self, name: str, log: list[str], answer: Any = None) -> None:
        self.name, self.log, self.answer = name, log, answer


def test_async_pre_request_trylast_answer_is_served(gateway_server: Start) -> None:
    calls: list[str] = []

    class Passes(Recorder):
        @portway.hookimpl
        async def pre_request(self, ctx: Any) -> Any:
            await asyncio.sleep(0.01)
            self.log.append(self.name)
            return None

    class Cache(Recorder):
        @portway.hookimpl(trylast=True)
        async def pre_request(self, ctx: Any) -> Any:
            await asyncio.sleep(0.01)  # a real await: the answer is only known after it
            self.log.append(self.name)
            return completion("from the cache")

    server = gateway_server(MOCK, plugins=[("cache", Cache("cache", calls)), ("passes", Passes("passes", calls))])
    raw = ask(server)
    assert raw.parse().choices[0].message.content == "from the cache"
    assert raw.headers["x-portway-provider"] == "cache"
    assert calls == ["passes", "cache"]

    # A streamed request is answered from the same answer, replayed as chunks.
    calls.clear()
    text, _ = stream_text(server)
    assert text == "from the cache"
    assert calls == ["passes", "cache"]


def test_pre_request_first_answer_wins_and_the_rest_are_not_called(gateway_server: Start) -> None:
    calls: list[str] = []

    class Normal(Recorder):
        @portway.hookimpl
        async def pre_request(self, ctx: Any) -> Any:
            self.log.append(self.name)
            return completion("normal")

    class First(Recorder):
        @portway.hookimpl(tryfirst=True)
        async def pre_request(self, ctx: Any) -> Any:
            self.log.append(self.name)
            return completion("tryfirst")

    # Registered first, so without tryfirst it would run last.
    server = gateway_server(MOCK, plugins=[("first", First("first", calls)), ("normal", Normal("normal", calls))])
    assert ask(server).parse().choices[0].message.content == "tryfirst"
    assert calls == ["first"]


def test_pre_request_rewrites_the_body_the_provider_sees(gateway_server: Start) -> None:
    seen: list[dict[str, Any]] = []

    class Spy(MockProvider):
        type = "spy"

        async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
            seen.append(body)
            return await super().chat(body, ctx)

    class Rewriter:
        @portway.hookimpl
        def register_providers(self, register: Any) -> None:
            register(Spy)

        @portway.hookimpl
        async def pre_request(self, ctx: Any) -> None:
            ctx.body["model"] = "spy/echo"  # the client asked for a model that does not exist
            ctx.body["messages"][-1]["content"] = ctx.body["messages"][-1]["content"].replace("SECRET", "[redacted]")

    server = gateway_server({"providers": {"spy": {"type": "spy"}}}, plugins=[("rewriter", Rewriter())])
    raw = ask(server, "my SECRET plan", model="nowhere/at-all")
    assert raw.parse().choices[0].message.content == "Mock reply to: my [redacted] plan"
    assert raw.headers["x-portway-provider"] == "spy" and raw.headers["x-portway-model"] == "echo"
    assert seen[0]["model"] == "echo"
    assert seen[0]["messages"][-1]["content"] == "my [redacted] plan"


def test_pre_request_portway_error_is_the_clients_error(gateway_server: Start) -> None:
    class Guard:
        @portway.hookimpl
        async def pre_request(self, ctx: Any) -> None:
            raise PortwayError("blocked by policy: no talking about fight club", kind="bad_request",
                               code="policy_violation")

    server = gateway_server(MOCK, plugins=[("guard", Guard())])
    with pytest.raises(openai.BadRequestError) as info:
        ask(server)
    assert info.value.status_code == 400
    assert "blocked by policy: no talking about fight club" in info.value.message
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "policy_violation" and body["type"] == "invalid_request_error"


def test_plugin_crash_is_a_500_naming_the_plugin_without_traceback(gateway_server: Start) -> None:
    class Buggy:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> None:
            raise RuntimeError("internal detail /home/me/secret-path")

    server = gateway_server(MOCK, plugins=[("buggy-plugin", Buggy())])
    response = httpx.post(server.base_url + "/chat/completions",
                          json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 500
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == "api_error"
    assert "buggy-plugin" in error["message"]
    assert "Traceback" not in response.text and "secret-path" not in response.text
    assert server.gateway.hooks.errors == {"buggy-plugin": 1}

    with pytest.raises(openai.InternalServerError) as info:
        ask(server)
    assert "buggy-plugin" in info.value.message


# -- select_provider -------------------------------------------------------------------------

TWO_TARGETS = {
    "providers": {"m1": {"type": "mock"}, "m2": {"type": "mock"}},
    "models": {"duo": {"targets": [{"provider": "m1", "model": "echo"}, {"provider": "m2", "model": "echo"}]}},
}


def test_async_select_provider_chooses_the_second_target(gateway_server: Start) -> None:
    offered: list[list[str]] = []

    class Router:
        @portway.hookimpl
        async def select_provider(self, ctx: Any, candidates: list[Any]) -> Any:
            await asyncio.sleep(0)
            offered.append([t.name for t in candidates])
            return candidates[1]

    server = gateway_server(TWO_TARGETS, plugins=[("router2", Router())])
    raw = ask(server, model="duo")
    assert raw.headers["x-portway-provider"] == "m2"
    assert offered == [["m1/echo", "m2/echo"]]

    plain = gateway_server(TWO_TARGETS)  # the built-in router takes the first
    assert ask(plain, model="duo").headers["x-portway-provider"] == "m1"


# -- on_error ---------------------------------------------------------------------------------


class Flaky(MockProvider):
    """Fails with a non-retryable error (so the built-in policy would give
    up at once) the first ``failures`` times, then answers."""

    type = "flaky"
    failures = 0
    calls = 0

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise self.make_error("flaky says no", kind="bad_request", status=400)
        return await super().chat(body, ctx)


class Policy:
    def __init__(self, action: str, limit: int = 10) -> None:
        self.action, self.limit = action, limit
        self.seen: list[tuple[str, int, str]] = []

    @portway.hookimpl
    def register_providers(self, register: Any) -> None:
        register(Flaky)

    @portway.hookimpl
    async def on_error(self, ctx: Any, error: Any, candidates: list[Any]) -> Any:
        self.seen.append((error.kind, len(candidates), ctx.target.name))
        return self.action if len(self.seen) <= self.limit else None


def test_on_error_fallback_on_a_non_retryable_error(gateway_server: Start) -> None:
    config = {"providers": {"m": {"type": "mock"}},
              "models": {"a": {"targets": [{"provider": "m", "model": "error-400"}, {"provider": "m", "model": "echo"}]}}}
    with pytest.raises(openai.BadRequestError):  # the built-in policy: a 400 is not worth another target
        ask(gateway_server(config), model="a")

    policy = Policy("fallback")
    raw = ask(gateway_server(config, plugins=[("policy", policy)]), model="a")
    assert raw.headers["x-portway-model"] == "echo"
    assert raw.parse().choices[0].message.content == "Mock reply to: hello"
    assert policy.seen == [("bad_request", 2, "m/error-400")]


def test_on_error_retry_tries_the_same_target_again(gateway_server: Start) -> None:
    Flaky.failures, Flaky.calls = 2, 0
    finished: list[int] = []

    class Attempts:
        @portway.hookimpl
        def request_finished(self, ctx: Any) -> None:
            finished.append(ctx.attempts)

    policy = Policy("retry")
    config = {"providers": {"f": {"type": "flaky"}}, "routing": {"retry": {"backoff": {"initial": 0}}}}
    server = gateway_server(config, plugins=[("policy", policy), ("attempts", Attempts())])
    raw = ask(server, model="f/echo")
    assert raw.parse().choices[0].message.content == "Mock reply to: hello"
    assert Flaky.calls == 3
    assert policy.seen == [("bad_request", 1, "f/echo")] * 2
    assert finished == [3]


def test_on_error_raise_skips_retries_and_fallback(gateway_server: Start) -> None:
    config = {"providers": {"m": {"type": "mock"}}, "routing": {"retry": {"attempts": 3, "backoff": {"initial": 0}}},
              "models": {"a": {"targets": [{"provider": "m", "model": "error-500"}, {"provider": "m", "model": "echo"}]}}}
    assert ask(gateway_server(config), model="a").headers["x-portway-model"] == "echo"  # built-in: retry, fall back

    policy = Policy("raise")
    with pytest.raises(openai.InternalServerError) as info:
        ask(gateway_server(config, plugins=[("policy", policy)]), model="a")
    assert "mock failure 500" in info.value.message
    assert policy.seen == [("server_error", 2, "m/error-500")]


def test_on_error_none_defers_to_the_builtin_policy(gateway_server: Start) -> None:
    config = {"providers": {"m": {"type": "mock"}}, "routing": {"retry": {"backoff": {"initial": 0}}},
              "models": {"a": {"targets": [{"provider": "m", "model": "error-429"}, {"provider": "m", "model": "echo"}]}}}
    policy = Policy("ignored", limit=0)  # always answers None
    raw = ask(gateway_server(config, plugins=[("policy", policy)]), model="a")
    assert raw.headers["x-portway-model"] == "echo"
    assert policy.seen == [("rate_limit", 2, "m/error-429")]


# -- streams: post_chunk, post_response --------------------------------------------------


def test_post_chunk_modifies_and_drops_chunks(gateway_server: Start) -> None:
    class Shout:
        @portway.hookimpl
        async def post_chunk(self, ctx: Any, chunk: dict[str, Any]) -> Any:
            for choice in chunk["choices"]:
                content = choice["delta"].get("content")
                if content == " beta":
                    return False
                if content:
                    choice["delta"]["content"] = content.upper()
            return None

    server = gateway_server(MOCK, plugins=[("shout", Shout())])
    text, chunks = stream_text(server, "alpha beta gamma")
    assert text == "MOCK REPLY TO: ALPHA GAMMA"
    assert chunks[-1].choices[0].finish_reason == "stop"  # other chunks untouched
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage


def test_post_response_sees_the_assembled_stream(gateway_server: Start) -> None:
    seen: list[tuple[bool, dict[str, Any]]] = []

    class Audit:
        @portway.hookimpl
        async def post_response(self, ctx: Any, response: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            seen.append((ctx.stream, response))

    server = gateway_server(MOCK, plugins=[("audit", Audit())])
    text, _ = stream_text(server, "one two three")
    assert text == "Mock reply to: one two three"
    wait_for(lambda: len(seen) == 1)
    streamed, response = seen[0]
    assert streamed
    assert response["object"] == "chat.completion"
    assert response["choices"][0]["message"]["content"] == "Mock reply to: one two three"
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"]["completion_tokens"] > 0

    ask(server, "non streamed")
    wait_for(lambda: len(seen) == 2)
    assert seen[1][0] is False
    assert seen[1][1]["choices"][0]["message"]["content"] == "Mock reply to: non streamed"


def test_post_response_for_a_stream_sees_what_post_chunk_let_through(gateway_server: Start) -> None:
    """hookspecs: for a stream, post_response gets the stream "assembled ...
    after the stream ended" and "the client already has it", i.e. what the
    client received.  A redacting post_chunk plus an auditing/caching
    post_response must not leak the original text, and dropped chunks are
    not part of the response."""
    seen: list[str] = []

    class Redact:
        @portway.hookimpl
        def post_chunk(self, ctx: Any, chunk: dict[str, Any]) -> Any:
            for choice in chunk["choices"]:
                if choice["delta"].get("content") == " secret":
                    choice["delta"]["content"] = " [redacted]"
                if choice["delta"].get("content") == " dropped":
                    return False
            return None

    class Audit:
        @portway.hookimpl
        def post_response(self, ctx: Any, response: dict[str, Any]) -> None:
            seen.append(response["choices"][0]["message"]["content"])

    server = gateway_server(MOCK, plugins=[("redact", Redact()), ("audit", Audit())])
    text, _ = stream_text(server, "my secret dropped plan")
    assert text == "Mock reply to: my [redacted] plan"
    wait_for(lambda: len(seen) == 1)
    assert seen == [text]


def test_post_response_can_change_a_non_streamed_response(gateway_server: Start) -> None:
    class Stamp:
        @portway.hookimpl
        def post_response(self, ctx: Any, response: dict[str, Any]) -> None:
            response["choices"][0]["message"]["content"] += " [checked]"

    server = gateway_server(MOCK, plugins=[("stamp", Stamp())])
    assert ask(server).parse().choices[0].message.content == "Mock reply to: hello [checked]"


# -- request_finished -----------------------------------------------------------------------


class Finished:
    """Records each request_finished, with the moments (perf_counter) that
    other hooks of the same request ran: the latency is proved to span the
    request by the order of events, not by a stopwatch."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.seen: dict[str, dict[str, float]] = {}

    def _stamp(self, ctx: Any, what: str) -> None:
        self.seen.setdefault(ctx.request_id, {})[what] = time.perf_counter()

    @portway.hookimpl
    def pre_request(self, ctx: Any) -> None:
        self._stamp(ctx, "pre_request")

    @portway.hookimpl
    def post_chunk(self, ctx: Any, chunk: Any) -> None:
        self._stamp(ctx, "last_chunk")

    @portway.hookimpl
    def post_response(self, ctx: Any, response: Any) -> None:
        self._stamp(ctx, "post_response")

    @portway.hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.records.append({
            "request_id": ctx.request_id, "stream": ctx.stream, "latency": ctx.latency, "usage": ctx.usage,
            "ttft": ctx.time_to_first_token, "status": ctx.status, "error": ctx.error, "started": ctx.started,
            "first_token_at": ctx.first_token_at, "finished_at": ctx.finished_at,
            **self.seen.get(ctx.request_id, {}),
        })


def test_request_finished_once_per_request_with_latency_and_usage(gateway_server: Start) -> None:
    sink = Finished()
    server = gateway_server({"providers": {"mock": {"type": "mock", "latency_ms": 20}}}, plugins=[("sink", sink)])
    raw = ask(server, "count my tokens")
    usage = raw.parse().usage
    # Non-streamed: request_finished runs before the response is sent, so it is there already.
    assert len(sink.records) == 1
    record = sink.records[0]
    assert record["request_id"] == raw.headers["x-request-id"]
    # The latency is the span from the context's creation to the end, covering every hook of the request.
    assert record["started"] <= record["pre_request"] <= record["post_response"] <= record["finished_at"]
    assert record["latency"] == record["finished_at"] - record["started"]
    assert record["usage"] == {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                               "total_tokens": usage.total_tokens}
    assert record["status"] == 200 and record["error"] is None

    with pytest.raises(openai.NotFoundError):
        ask(server, model="nowhere/x")
    assert len(sink.records) == 2
    assert sink.records[1]["status"] == 404 and isinstance(sink.records[1]["error"], PortwayError)
    # Once per request: a third request brings exactly one more record, its own.
    third = ask(server, "again")
    assert [r["request_id"] for r in sink.records] == [
        raw.headers["x-request-id"], sink.records[1]["request_id"], third.headers["x-request-id"]]


def test_request_finished_for_a_stream_after_it_ends(gateway_server: Start) -> None:
    sink = Finished()
    server = gateway_server({"providers": {"mock": {"type": "mock", "chunk_delay_ms": 5}}}, plugins=[("sink", sink)])
    text, _ = stream_text(server, "five little words right here")
    assert text == "Mock reply to: five little words right here"
    wait_for(lambda: len(sink.records) == 1)
    record = sink.records[0]
    assert record["stream"] is True and record["status"] == 200
    # It ran when the stream had ended: after the last chunk and the assembled post_response.
    assert record["started"] <= record["first_token_at"] <= record["last_chunk"] <= record["post_response"] \
        <= record["finished_at"]
    assert record["ttft"] == record["first_token_at"] - record["started"]
    assert record["latency"] == record["finished_at"] - record["started"]
    assert record["usage"] and record["usage"]["completion_tokens"] == 8  # the usage chunk the client never saw
    # Once per request: the next stream brings exactly one more record.
    stream_text(server, "again")
    wait_for(lambda: len(sink.records) == 2)
    assert sink.records[0]["request_id"] != sink.records[1]["request_id"]
    stream_text(server, "and again")
    wait_for(lambda: len(sink.records) == 3)
    assert len({r["request_id"] for r in sink.records}) == 3


def test_request_finished_failure_is_contained(gateway_server: Start) -> None:
    class BrokenSink:
        @portway.hookimpl
        def request_finished(self, ctx: Any) -> None:
            raise RuntimeError("sink down")

    server = gateway_server(MOCK, plugins=[("broken-sink", BrokenSink())])
    assert ask(server).parse().choices[0].message.content == "Mock reply to: hello"
    assert server.gateway.hooks.errors == {"broken-sink": 1}


# -- plugins.order --------------------------------------------------------------------------


def test_plugins_order_changes_the_call_order(gateway_server: Start) -> None:
    def plugins(log: list[str]) -> list[tuple[str, Any]]:
        class Named(Recorder):
            @portway.hookimpl
            def pre_request(self, ctx: Any) -> Any:
                self.log.append(self.name)
                return self.answer

        return [("alpha", Named("alpha", log)), ("beta", Named("beta", log)), ("gamma", Named("gamma", log))]

    default: list[str] = []
    ask(gateway_server(MOCK, plugins=plugins(default)))
    assert default == ["gamma", "beta", "alpha"]  # pluggy: the last registered runs first

    ordered: list[str] = []
    config = {**MOCK, "plugins": {"order": {"pre_request": ["alpha", "beta"]}}}
    server = gateway_server(config, plugins=plugins(ordered))
    ask(server)
    assert ordered == ["alpha", "beta", "gamma"]
    assert server.gateway.hooks.implementers("pre_request") == ["alpha", "beta", "gamma"]

    # The order decides who answers first, too.
    answering: list[str] = []
    entries = plugins(answering)
    for _, plugin in entries:
        plugin.answer = completion(f"answered by {plugin.name}")
    config = {**MOCK, "plugins": {"order": {"pre_request": ["beta"]}}}
    assert ask(gateway_server(config, plugins=entries)).parse().choices[0].message.content == "answered by beta"
    assert answering == ["beta"]


def test_plugins_order_can_put_a_router_before_the_builtin(gateway_server: Start) -> None:
    class Last:
        @portway.hookimpl(trylast=True)
        def select_provider(self, ctx: Any, candidates: list[Any]) -> Any:
            return candidates[-1]

    plugins = [("last", Last())]
    assert ask(gateway_server(TWO_TARGETS, plugins=plugins), model="duo").headers["x-portway-provider"] == "m1"
    config = {**TWO_TARGETS, "plugins": {"order": {"select_provider": ["last"]}}}
    assert ask(gateway_server(config, plugins=plugins), model="duo").headers["x-portway-provider"] == "m2"


# -- register_routes, register_config ------------------------------------------------------


def test_register_routes_adds_an_endpoint(gateway_server: Start) -> None:
    async def status(request: Request) -> JSONResponse:
        gateway = request.app.state.gateway
        return JSONResponse({"plugin": "ok", "providers": sorted(gateway.providers)})

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"got": await request.json()})

    class Routes:
        @portway.hookimpl
        def register_routes(self, register: Any) -> None:
            register("/plugin/status", status)
            register("/plugin/echo", echo, methods=["POST"])

    server = gateway_server(MOCK, plugins=[("routes", Routes())])
    response = httpx.get(server.url + "/plugin/status")
    assert response.status_code == 200 and response.json() == {"plugin": "ok", "providers": ["mock"]}
    assert httpx.post(server.url + "/plugin/echo", json={"a": 1}).json() == {"got": {"a": 1}}
    assert httpx.get(server.url + "/plugin/echo").status_code == 405
    assert ask(server).status_code == 200  # the built-in routes are still there


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl: int = 60
    namespace: str = "default"


class CachePlugin:
    def __init__(self) -> None:
        self.settings: Any = None

    @portway.hookimpl
    def register_config(self, register: Any) -> None:
        register("my_cache", CacheSettings)

    @portway.hookimpl
    async def startup(self, gateway: Any) -> None:
        self.settings = gateway.plugin_config["my_cache"]


def test_register_config_section_is_validated_and_available(gateway_server: Start) -> None:
    plugin = CachePlugin()
    server = gateway_server({**MOCK, "my_cache": {"ttl": "30"}}, plugins=[("my-cache", plugin)])
    assert isinstance(plugin.settings, CacheSettings)
    assert plugin.settings.ttl == 30 and plugin.settings.namespace == "default"
    assert server.gateway.plugin_config["my_cache"] is plugin.settings

    defaults = CachePlugin()
    gateway_server(MOCK, plugins=[("my-cache", defaults)])  # section absent: the model's defaults
    assert defaults.settings == CacheSettings()


@pytest.mark.parametrize(("section", "key"), [
    ({"ttl": "soon"}, "my_cache.ttl"),
    ({"tll": 5}, "my_cache.tll"),
])
def test_register_config_errors_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        GatewayServer({**MOCK, "my_cache": section}, plugins=[("my-cache", CachePlugin())])
    assert "<test config>" in str(info.value) and key in str(info.value)


def test_section_without_its_plugin_is_unknown() -> None:
    with pytest.raises(ConfigError) as info:
        GatewayServer({**MOCK, "my_cache": {"ttl": 5}})
    assert "my_cache" in str(info.value) and "unknown section" in str(info.value)


def test_explicit_plugin_replaces_the_installed_one_of_that_name() -> None:
    import portway_mock
    from portway.testing.gateway import GatewayServer

    with GatewayServer({"providers": {"mock": {"type": "mock"}}}, plugins=[("mock", portway_mock)]) as gw:
        reply = gw.openai_client().chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "Mock reply to: x"
        assert [p.name for p in gw.gateway.plugins].count("mock") == 1


def test_request_hooks_reach_their_gateways_config() -> None:
    from portway import hookimpl
    from portway.testing.gateway import GatewayServer

    class Settings(BaseModel):
        greeting: str

    class Plugin:
        @hookimpl
        def register_config(self, register: Any) -> None:
            register("greeter", Settings)

        @hookimpl
        def pre_request(self, ctx: Any) -> None:
            ctx.body["messages"][-1]["content"] = ctx.gateway.plugin_config["greeter"].greeting

    config = {"providers": {"mock": {"type": "mock"}}, "greeter": {"greeting": "bonjour"}}
    with GatewayServer(config, plugins=[("greeter", Plugin())]) as gw:
        reply = gw.openai_client().chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content == "Mock reply to: bonjour"


def test_a_failing_observability_plugin_is_skipped_and_counted() -> None:
    from portway import hookimpl
    from portway.testing.gateway import GatewayServer

    class Sink:
        PORTWAY_PLUGIN_KIND = "observability"

        @hookimpl
        async def post_response(self, ctx: Any, response: Any) -> None:
            raise RuntimeError("disk full")

    class Guard:
        PORTWAY_PLUGIN_KIND = "guardrail"

        @hookimpl
        def post_response(self, ctx: Any, response: Any) -> None:
            if "crash" in response["choices"][0]["message"]["content"]:
                raise RuntimeError("bug")

    with GatewayServer({"providers": {"mock": {"type": "mock"}}}, plugins=[("sink", Sink()), ("guard", Guard())]) as gw:
        client = gw.openai_client()
        reply = client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "fine"}])
        assert reply.choices[0].message.content == "Mock reply to: fine"
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "crash"}])
        assert "guard" in failed.value.body["message"]
        errors = httpx.get(gw.url + "/health").json()["plugin_errors"]
    # The second request stopped at the guard (registered last, so called first): the sink ran once.
    assert errors == {"sink": 1, "guard": 1}


def test_a_plugin_failing_to_register_is_counted_and_the_rest_still_serve() -> None:
    from portway.testing.gateway import GatewayServer

    class Broken:
        @portway.hookimpl
        def register_providers(self, register: Any) -> None:
            raise RuntimeError("cannot import vendor SDK")

        @portway.hookimpl
        def register_routes(self, register: Any) -> None:
            raise RuntimeError("no routes today")

    with GatewayServer({"providers": {"mock": {"type": "mock"}}}, plugins=[("broken", Broken())]) as gw:
        reply = gw.openai_client().chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "x"}])
        assert reply.choices[0].message.content == "Mock reply to: x"
        assert httpx.get(gw.url + "/health").json()["plugin_errors"] == {"broken": 2}


def test_a_pre_request_answer_replayed_as_a_stream_keeps_its_usage(gateway_server: Start) -> None:
    """A cache hit answering a streamed request: the client that asked for
    usage gets the stored usage in the last chunk, one that did not gets none."""
    class Answer:
        @portway.hookimpl
        def pre_request(self, ctx: Any) -> Any:
            return completion("from the store")

    server = gateway_server(MOCK, plugins=[("answer", Answer())])
    chunks = list(server.openai_client().chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from the store"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump(exclude_none=True) == {"prompt_tokens": 1, "completion_tokens": 2,
                                                               "total_tokens": 3}
    plain = list(server.openai_client().chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "x"}], stream=True))
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason == "stop"


def test_every_implementation_counts_its_calls_time_and_failures(gateway_server: Start) -> None:
    """``Hooks.stats``: per plugin and hook, what the metrics plugin exposes."""

    class Sometimes:
        calls = 0

        @portway.hookimpl
        async def pre_request(self, ctx: Any) -> None:
            await asyncio.sleep(0)
            Sometimes.calls += 1
            if Sometimes.calls == 2:
                raise RuntimeError("second time unlucky")

        @portway.hookimpl
        def request_finished(self, ctx: Any) -> None:
            raise ValueError("a broken sink")

    server = gateway_server(MOCK, plugins=[("sometimes", Sometimes())])
    outcomes = []
    for _ in range(3):
        response = httpx.post(server.base_url + "/chat/completions",
                              json={"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
        outcomes.append(response.status_code)
    stats = server.gateway.hooks.stats
    pre, finished = stats[("sometimes", "pre_request")], stats[("sometimes", "request_finished")]
    assert outcomes == [200, 500, 200]
    assert (pre.calls, pre.errors) == (3, 1) and pre.seconds > 0
    assert (finished.calls, finished.errors) == (3, 3)
    assert server.gateway.hooks.errors == {"sometimes": 4}


def test_awaitable_answers_are_awaited_whatever_came_before() -> None:
    """The host remembers answer types that are not awaitable, to skip the
    check; a generator is awaitable or not by how it was made, so a plain
    one seen first must not make a later generator-based coroutine pass
    unawaited."""
    import types

    from portway.hooks import Hooks
    from portway.plugins import new_manager

    def plain() -> Any:
        yield "not awaited"

    @types.coroutine
    def legacy() -> Any:
        yield from ()
        return "awaited (generator-based)"

    async def native() -> str:
        return "awaited (native)"

    class Plain:
        pass

    marker = Plain()
    answers = iter([plain(), legacy(), marker, marker, native(), "text"])

    class Plugin:
        @portway.hookimpl
        def select_provider(self, ctx: Any, candidates: list[Any]) -> Any:
            return next(answers)

    pm = new_manager()
    pm.register(Plugin(), name="answers")
    hooks = Hooks(pm)

    async def main() -> list[Any]:
        return [await hooks.first("select_provider", ctx=None, candidates=[]) for _ in range(6)]

    got = asyncio.run(main())
    assert isinstance(got[0], types.GeneratorType)  # a plain generator is an answer, not awaited
    assert got[1:] == ["awaited (generator-based)", marker, marker, "awaited (native)", "text"]
