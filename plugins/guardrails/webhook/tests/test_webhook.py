"""The webhook check through a running gateway, against a real local HTTP
service: what it is sent, its verdicts, and a service that hangs, whose
timeout and failure policy decide (the answer arrives while the service
still holds the call: proof that the timeout, not the service, ended it)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portway.testing import FakeUpstream, ThreadedServer, json_reply
from portway.testing.gateway import GatewayServer

KEY = "sk-webhook-test-0123456789"
TOKEN = "hook-token-0123456789"


class Service:
    """A team's guardrail service: answers as told, or hangs until released."""

    def __init__(self) -> None:
        self.answer: Any = {"match": False}
        self.status = 200
        self.hang = False
        self.release = threading.Event()
        self.seen: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.server = ThreadedServer(Starlette(routes=[Route("/check", self.check, methods=["POST"])]))

    async def check(self, request: Request) -> Response:
        self.seen.append(await request.json())
        self.headers.append(dict(request.headers))
        while self.hang and not self.release.is_set():
            await asyncio.sleep(0.01)
        if isinstance(self.answer, bytes):
            return Response(self.answer, status_code=self.status)
        return JSONResponse(self.answer, status_code=self.status)


@pytest.fixture
def service():
    svc = Service()
    svc.server.start()
    yield svc
    svc.release.set()
    svc.server.stop()


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        up.add("/v1/chat/completions", json_reply({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}]}))
        yield up


def config(upstream: FakeUpstream, service: Service, **check: Any) -> dict[str, Any]:
    hook = {"type": "webhook", "url": service.server.url + "/check", "action": "deny", "on": ["input"],
            "timeout": 0.2, "headers": {"authorization": f"Bearer {TOKEN}"}, **check}
    return {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
            "models": {"plain": {"target": {"provider": "oai", "model": "m"}}},
            "guardrails": {"checks": {"team": hook}, "default": ["team"]}}


def ask(server: GatewayServer, text: str = "hello there") -> Any:
    return server.openai_client(timeout=60).chat.completions.with_raw_response.create(
        model="plain", messages=[{"role": "user", "content": text}])


def test_the_service_gets_the_text_and_passes_it(upstream: FakeUpstream, service: Service) -> None:
    with GatewayServer(config(upstream, service)) as server:
        raw = ask(server, "hello there")
    assert raw.parse().choices[0].message.content == "fine"
    [seen] = service.seen
    assert seen["check"] == "team" and seen["stage"] == "input" and seen["text"] == "hello there"
    assert seen["model"] == "plain" and seen["request_id"] == raw.headers["x-request-id"]
    assert service.headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert len(upstream.requests) == 1


def test_a_match_denies_with_the_services_reason(upstream: FakeUpstream, service: Service) -> None:
    service.answer = {"match": True, "category": "off_topic", "reason": "asks about a competitor"}
    with GatewayServer(config(upstream, service)) as server:
        with pytest.raises(openai.BadRequestError) as caught:
            ask(server)
    assert caught.value.code == "guardrail_denied"
    assert "asks about a competitor" in caught.value.message
    assert caught.value.response.headers["x-portway-guardrails"] == "team=deny:off_topic@input"
    assert upstream.requests == []


@pytest.mark.parametrize(("policy", "passes"), [("closed", False), ("open", True)])
def test_a_hanging_service_obeys_the_timeout_and_the_policy(upstream: FakeUpstream, service: Service,
                                                             policy: str, passes: bool) -> None:
    service.hang = True
    with GatewayServer(config(upstream, service, on_failure=policy)) as server:
        if passes:
            assert ask(server).parse().choices[0].message.content == "fine"
        else:
            with pytest.raises(openai.BadRequestError) as caught:
                ask(server)
            assert "did not answer within 0.2 s (fail-closed)" in caught.value.message
        assert not service.release.is_set()  # answered while the service still held the call
        assert len(service.seen) == 1
    assert len(upstream.requests) == (1 if passes else 0)


@pytest.mark.parametrize(("status", "answer"), [
    (500, {"error": "boom"}),
    (200, b"not json"),
    (200, {"verdict": "ok"}),          # no boolean match
    (200, {"match": "yes"}),
])
def test_a_broken_answer_is_a_failure_and_the_policy_applies(upstream: FakeUpstream, service: Service,
                                                              status: int, answer: Any) -> None:
    service.status, service.answer = status, answer
    with GatewayServer(config(upstream, service)) as server:
        with pytest.raises(openai.BadRequestError, match="fail-closed"):
            ask(server)
    with GatewayServer(config(upstream, service, on_failure="open")) as server:
        assert ask(server).parse().choices[0].message.content == "fine"


# -- parallel: true ----------------------------------------------------------------------

COMPLETION = b'{"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, ' \
             b'"message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}]}'


class Watching(Service):
    """A service that answers only once the model's upstream has been called
    (or says "match" after 5 s without it): proof the two ran together."""

    def __init__(self, upstream_called: threading.Event, match: bool) -> None:
        super().__init__()
        self.upstream_called = upstream_called
        self.match = match

    async def check(self, request: Request) -> Response:
        self.seen.append(await request.json())
        for _ in range(500):
            if self.upstream_called.is_set():
                return JSONResponse({"match": self.match, "category": "late", "reason": "said no late"})
            await asyncio.sleep(0.01)
        return JSONResponse({"match": True, "category": "sequential", "reason": "the upstream was never called"})


def parallel_setup(upstream: FakeUpstream, match: bool, hold: bool) -> tuple[Watching, threading.Event, Any]:
    from portway.testing import Gate, Reply

    called = threading.Event()
    gate = Gate()

    def answer(request: Any) -> Reply:
        called.set()
        if hold:  # the answer's body stays open until the test ends: a call in flight
            return Reply(chunks=[COMPLETION[:20], gate, COMPLETION[20:]])
        return Reply(body=COMPLETION)

    upstream.add("/v1/chat/completions", answer)
    return Watching(called, match), called, gate


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_starts_the_upstream_call_while_the_check_runs(upstream: FakeUpstream, stream: bool) -> None:
    service, _, _ = parallel_setup(upstream, match=False, hold=False)
    if stream:
        from portway.testing import sse_reply

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        streamed = sse_reply([chunk({"role": "assistant", "content": ""}), chunk({"content": "fine"}),
                              chunk({}, "stop")], done=True)
        upstream.add("/v1/chat/completions", lambda request: (service.upstream_called.set(), streamed)[1])
    service.server.start()
    try:
        cfg = config(upstream, service, timeout=30)
        cfg["guardrails"]["parallel"] = True
        with GatewayServer(cfg) as server:
            client = server.openai_client(timeout=60)
            if stream:
                chunks = client.chat.completions.create(model="plain", stream=True,
                                                        messages=[{"role": "user", "content": "hi"}])
                assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fine"
            else:
                assert ask(server).parse().choices[0].message.content == "fine"
    finally:
        service.server.stop()
    assert len(service.seen) == 1


def test_parallel_cancels_the_upstream_call_on_a_deny(upstream: FakeUpstream) -> None:
    service, called, gate = parallel_setup(upstream, match=True, hold=True)
    service.server.start()
    try:
        cfg = config(upstream, service, timeout=30)
        cfg["guardrails"]["parallel"] = True
        with GatewayServer(cfg) as server:
            with pytest.raises(openai.BadRequestError) as caught:
                ask(server)
            assert caught.value.code == "guardrail_denied" and "said no late" in caught.value.message
            assert called.is_set()
            # The gateway closed the call it had started: the fake saw the client go.
            assert upstream.disconnected.wait(10)
    finally:
        gate.open()
        service.server.stop()


def test_without_parallel_the_upstream_waits_for_the_check(upstream: FakeUpstream) -> None:
    service, called, _ = parallel_setup(upstream, match=False, hold=False)
    service.server.start()
    try:
        with GatewayServer(config(upstream, service, timeout=30)) as server:
            with pytest.raises(openai.BadRequestError, match="the upstream was never called"):
                ask(server)
    finally:
        service.server.stop()
    assert not called.is_set()


def test_parallel_holds_an_answer_a_hook_gave_until_the_check_passes(upstream: FakeUpstream) -> None:
    """A plugin answering in pre_request (a cache hit) after the guardrails' own pre_request: its
    answer still waits for the remote check, and a deny replaces it."""
    from portway import hookimpl

    class Cache:
        @hookimpl(trylast=True)
        def pre_request(self, ctx: Any) -> Any:
            return {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "cached"}, "finish_reason": "stop"}]}

    called = threading.Event()
    service = Watching(called, match=True)
    service.server.start()
    try:
        cfg = config(upstream, service, timeout=30)
        cfg["guardrails"]["parallel"] = True
        with GatewayServer(cfg, plugins=[("cache", Cache())]) as server:
            called.set()  # no upstream call will come: let the service answer at once
            with pytest.raises(openai.BadRequestError, match="said no late"):
                ask(server)
    finally:
        service.server.stop()
    assert upstream.requests == []
