"""The sink through a running gateway: a dead store costs records, counted,
never a request; ``store: false``; bodies (off by default, full, redacted,
capped); retention; deletion by key; the master key in front of it all."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from portway_log.record import redact

from portway import hookimpl
from portway.endpoints.common import key_id
from portway.testing import FakeUpstream, json_reply
from portway.testing.gateway import GatewayServer

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        up.add("/v1/chat/completions", json_reply({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Mail me at bob@example.com"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}))
        yield up


def config(upstream: FakeUpstream, **sections: Any) -> dict[str, Any]:
    return {"providers": {"up": {"type": "openai", "api_key": "sk-up-0123456789", "base_url": upstream.url + "/v1"}},
            "models": {"fast": {"target": {"provider": "up", "model": "m"}}}, **sections}


def get(server: GatewayServer, path: str, key: str | None = None, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(server.url + path, params=params, headers=headers, timeout=30)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)
    return value


def test_a_dead_store_drops_and_counts_records_and_fails_no_request(upstream: FakeUpstream) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    with GatewayServer(config(upstream, store={"url": dead}, log={"queue_size": 5})) as server:
        client = server.openai_client()
        answers = [client.chat.completions.create(model="fast", messages=HI).choices[0].message.content
                   for _ in range(30)]
        assert answers == ["Mail me at bob@example.com"] * 30

        def settled() -> dict[str, Any] | None:
            stats = get(server, "/admin/logs/stats").json()
            # Every record is dropped or still waiting for the store to come back; none written.
            return stats if stats["dropped"] + stats["queue_depth"] == 30 and stats["dropped_store_error"] else None

        stats = wait_for(settled, "the dead store's records to be counted")
        assert stats["written"] == 0 and stats["connected"] is False
        assert stats["dropped_queue_full"] >= 30 - 5 - stats["dropped_store_error"]  # the queue holds 5
        assert stats["write_errors"] >= 1 and "ConnectionRefused" in stats["last_error"]
        assert "postgres@127.0.0.1" in stats["store"]
        # The API that needs the store says it is unavailable, in the API's shape.
        answer = get(server, "/admin/logs")
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "store_unavailable"


def test_a_store_that_never_answers_holds_up_no_request(upstream: FakeUpstream) -> None:
    """A PostgreSQL "server" that accepts connections and never says a word: the
    writer waits out its connect timeout, requests are answered all along."""
    with socket.socket() as tarpit:
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(64)  # the kernel completes the handshakes; nobody ever reads or writes
        slow = f"postgresql://postgres@127.0.0.1:{tarpit.getsockname()[1]}/test"
        with GatewayServer(config(upstream, store={"url": slow})) as server:
            client = server.openai_client()
            for _ in range(20):
                assert client.chat.completions.create(model="fast", messages=HI).choices[0].message.content
            stats = get(server, "/admin/logs/stats").json()
            assert stats["written"] == 0 and stats["accepted"] == 20  # all queued while the writer waits
            stats = wait_for(lambda: (now := get(server, "/admin/logs/stats").json())["dropped_store_error"] and now,
                             "the connect timeout to count the batch as dropped")
            assert "Timeout" in stats["last_error"]


def test_store_false_turns_the_log_off(upstream: FakeUpstream, portway_data_dir: Any) -> None:
    with GatewayServer(config(upstream, store=False)) as server:
        server.openai_client().chat.completions.create(model="fast", messages=HI)
        answer = get(server, "/admin/logs")
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "log_disabled"
    assert list(portway_data_dir.iterdir()) == []  # no database was made


def test_with_no_store_key_the_log_is_sqlite_in_the_data_dir(upstream: FakeUpstream, portway_data_dir: Any) -> None:
    with GatewayServer(config(upstream)) as server:
        server.openai_client().chat.completions.create(model="fast", messages=HI, extra_headers={"x-request-id": "r1"})
        assert get(server, "/admin/logs/r1").json()["output_tokens"] == 5
        assert get(server, "/admin/logs/stats").json()["store"] == f"sqlite:///{portway_data_dir / 'portway.db'}"
    assert (portway_data_dir / "portway.db").exists()


@pytest.mark.parametrize(("log", "request_body", "response_body"), [
    ({}, None, None),
    ({"log_bodies": False}, None, None),  # YAML reads a bare `off` as false
    ({"log_bodies": "full"}, "write to alice@example.com with sk-abcdefghijklmnopqrstuvwx",
     "Mail me at bob@example.com"),
    ({"log_bodies": "redacted"}, "write to [REDACTED:email] with [REDACTED:key]", "Mail me at [REDACTED:email]"),
])
def test_bodies(upstream: FakeUpstream, log: dict[str, Any], request_body: str | None,
                response_body: str | None) -> None:
    import orjson

    with GatewayServer(config(upstream, log=log)) as server:
        for stream in (False, True):
            request_id = f"bodies-{stream}"
            client = server.openai_client()
            messages = [{"role": "user", "content": "write to alice@example.com with sk-abcdefghijklmnopqrstuvwx"}]
            if stream:
                list(client.chat.completions.create(model="fast", messages=messages, stream=True,
                                                    extra_headers={"x-request-id": request_id}))
            else:
                client.chat.completions.create(model="fast", messages=messages, extra_headers={"x-request-id": request_id})
            record = get(server, f"/admin/logs/{request_id}").json()
            if request_body is None:
                assert (record["request_body"], record["response_body"]) == (None, None)
                continue
            sent = orjson.loads(record["request_body"])
            assert sent["messages"][0]["content"] == request_body
            answered = orjson.loads(record["response_body"])  # a stream's answer assembled
            assert answered["choices"][0]["message"]["content"] == response_body
            assert record["body_truncated"] is False


def test_bodies_are_cut_at_the_cap(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream, log={"log_bodies": "full", "max_body_bytes": 256})) as server:
        server.openai_client().chat.completions.create(model="fast", messages=[{"role": "user", "content": "x" * 5000}],
                                                       extra_headers={"x-request-id": "big"})
        record = get(server, "/admin/logs/big").json()
        assert len(record["request_body"]) == 256 and record["body_truncated"] is True
        assert record["request_body"].startswith('{"model":"fast","messages":[{"role":"user","content":"xxx')


@pytest.mark.parametrize(("text", "expected"), [
    ("key sk-proj-AbCdEfGhIjKlMnOpQrStUv here", "key [REDACTED:key] here"),
    ("anthropic sk-ant-api03-AbCdEfGhIjKlMnOpQrSt", "anthropic [REDACTED:key]"),
    ("aws AKIAABCDEFGHIJKLMNOP", "aws [REDACTED:key]"),
    ("Authorization: Bearer abcdefghijklmnop.qrstuvwx", "Authorization: [REDACTED:key]"),
    ("mail a.b+c@mail.example.org now", "mail [REDACTED:email] now"),
    ("card 4111 1111 1111 1111 ok", "card [REDACTED:card] ok"),
    ("card 4111-1111-1111-1111", "card [REDACTED:card]"),
    ("not a card 4111 1111 1111 1112", "not a card 4111 1111 1111 1112"),  # fails the Luhn check
    ("order 12345 of 2026", "order 12345 of 2026"),
    ("skip the sk-short key", "skip the sk-short key"),
])
def test_redaction(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_retention_sweeps_old_records(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream, log={"retention": "1s"})) as server:
        server.openai_client().chat.completions.create(model="fast", messages=HI, extra_headers={"x-request-id": "old"})
        wait_for(lambda: get(server, "/admin/logs/stats").json()["written"] == 1, "the record to be written")
        wait_for(lambda: get(server, "/admin/logs/old").status_code == 404, "the sweep to delete the old record")
        assert get(server, "/admin/logs/stats").json()["swept"] == 1


def test_delete_by_key_removes_that_key_s_records_only(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream)) as server:
        for n, key in enumerate(["sk-alice-0123456789", "sk-bob-0123456789", "sk-alice-0123456789"]):
            server.openai_client(api_key=key).chat.completions.create(model="fast", messages=HI,
                                                                      extra_headers={"x-request-id": f"r{n}"})
        alice = key_id("sk-alice-0123456789")
        gone = httpx.delete(server.url + "/admin/logs", params={"key_id": alice}, timeout=30)
        assert gone.json() == {"deleted": 2}
        assert [r["request_id"] for r in get(server, "/admin/logs").json()["data"]] == ["r1"]
        refused = httpx.delete(server.url + "/admin/logs", params={"model": "fast"}, timeout=30)
        assert refused.status_code == 400  # deleting needs a key or a tag: never everything by accident
        assert len(get(server, "/admin/logs").json()["data"]) == 1


@pytest.mark.parametrize(("method", "path"), [("GET", "/admin/logs"), ("GET", "/admin/logs/x"),
                                              ("GET", "/admin/analytics"), ("GET", "/admin/logs/stats"),
                                              ("DELETE", "/admin/logs?key_id=k"), ("POST", "/v1/feedback")])
def test_the_api_is_behind_the_master_key(upstream: FakeUpstream, method: str, path: str) -> None:
    master = "pw-master-log-0123456789"
    with GatewayServer(config(upstream, auth={"master_key": master})) as server:
        assert httpx.request(method, server.url + path, timeout=30).status_code == 401
        assert httpx.request(method, server.url + path, headers={"authorization": "Bearer wrong"},
                             timeout=30).status_code == 401
        allowed = httpx.request(method, server.url + path, headers={"authorization": f"Bearer {master}"},
                                json={"request_id": "x", "score": 1}, timeout=30)
        assert allowed.status_code in (200, 201, 404)


def test_delete_by_metadata_removes_the_tagged_records_only(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream)) as server:
        for n, user in enumerate(["u1", "u2", "u1"]):
            server.openai_client().chat.completions.create(
                model="fast", messages=HI,
                extra_headers={"x-request-id": f"r{n}", "x-portway-metadata": f'{{"user": "{user}", "app": "chat"}}'})
        gone = httpx.delete(server.url + "/admin/logs", params={"tag.user": "u1"}, timeout=30)
        assert gone.json() == {"deleted": 2}
        left = get(server, "/admin/logs").json()["data"]
        assert [(r["request_id"], r["tags"]) for r in left] == [("r1", {"user": "u2", "app": "chat"})]
        assert get(server, "/admin/logs", **{"tag.user": "u1"}).json()["data"] == []


class Marks:
    """A stand-in for a cache and a guardrail: sets what they would set."""

    @hookimpl
    def pre_request(self, ctx: Any) -> None:
        ctx.cache_status = "miss"
        ctx.verdicts.append({"check": "pii", "type": "regex", "action": "allow", "category": None,
                             "stage": "input", "duration_ms": 0.1})


def test_cache_status_and_guardrail_verdicts_are_recorded(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream), plugins=[("marks", Marks())]) as server:
        server.openai_client().chat.completions.create(model="fast", messages=HI, extra_headers={"x-request-id": "m"})
        record = get(server, "/admin/logs/m").json()
        assert record["cache_status"] == "miss"
        assert record["verdicts"] == [{"check": "pii", "type": "regex", "action": "allow", "category": None,
                                       "stage": "input", "duration_ms": 0.1}]


@pytest.mark.parametrize(("log", "keeps_answers"), [({}, False), ({"log_bodies": "redacted"}, True)])
def test_answers_are_kept_only_when_bodies_are_logged(upstream: FakeUpstream, log: dict[str, Any],
                                                      keeps_answers: bool) -> None:
    """No post_response implementation unless bodies are logged: otherwise every stream would be assembled."""
    with GatewayServer(config(upstream, log=log)) as server:
        assert ("log.bodies" in server.gateway.hooks.implementers("post_response")) is keeps_answers
        assert server.gateway.hooks.implemented("post_response") is keeps_answers


def test_a_store_whose_tables_cannot_be_made_is_unavailable_not_a_crash(upstream: FakeUpstream, pg_url: str) -> None:
    """A table of someone else's in the way: migrating fails, the API says the store is unavailable."""
    import asyncio

    import asyncpg

    async def squat() -> None:
        base, _, schema = pg_url.partition("?schema=")
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.execute(f'CREATE TABLE "{schema}".log_requests (squatter INTEGER)')
        finally:
            await conn.close()

    asyncio.run(squat())
    with GatewayServer(config(upstream, store={"url": pg_url})) as server:
        assert server.openai_client().chat.completions.create(model="fast", messages=HI).choices
        answer = get(server, "/admin/logs")
        assert answer.status_code == 503, answer.text
        assert "cannot migrate the log's tables" in answer.json()["error"]["message"]
        stats = wait_for(lambda: (now := get(server, "/admin/logs/stats").json())["dropped_store_error"] and now,
                         "the record to be counted as dropped")
        assert stats["written"] == 0


def test_past_the_queue_s_body_budget_records_go_without_bodies(upstream: FakeUpstream,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import portway_log.sink

    monkeypatch.setattr(portway_log.sink, "BODY_BUDGET", 0)  # any body is over it
    with GatewayServer(config(upstream, log={"log_bodies": "full"})) as server:
        server.openai_client().chat.completions.create(model="fast", messages=HI, extra_headers={"x-request-id": "b"})
        record = get(server, "/admin/logs/b").json()
        assert (record["request_body"], record["response_body"], record["body_truncated"]) == (None, None, True)
        assert record["output_tokens"] == 5  # the record itself is whole
        assert get(server, "/admin/logs/stats").json()["bodies_skipped"] == 1
