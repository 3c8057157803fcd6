"""The request log through a running gateway: a mixed run (OpenAI and
Anthropic clients, streamed and not, a fallback, failures) against fake
upstreams, then the log API, analytics, pagination, filters and feedback,
on SQLite (the default store) and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import asyncpg
import httpx
import openai
import pytest

from portway.endpoints.common import key_id
from portway.testing import FakeUpstream, RecordedRequest, Reply, json_reply, sse_reply
from portway.testing.anthropic_api import stream_events
from portway.testing.gateway import GatewayServer

PG_BASE = os.environ.get("PORTWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
OPENAI_KEY = "sk-client-openai-0123456789"
ANTHROPIC_KEY = "sk-client-anthropic-0123456789"
HI = [{"role": "user", "content": "hi"}]

#: Every answer's usage: 100 prompt tokens (40 of them cached), 50 completion tokens (10 of them reasoning).
USAGE = {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
         "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {"reasoning_tokens": 10}}
#: USD per million tokens, as the tests' catalog: entries price the good target.
PRICE = {"input": 1.0, "output": 2.0, "cache_read": 0.5, "reasoning": 3.0}
#: The cost of USAGE at PRICE: 60 fresh input, 40 cached, 40 plain output, 10 reasoning.
COST = (60 * 1.0 + 40 * 0.5 + 40 * 2.0 + 10 * 3.0) / 1_000_000


def answer(request: RecordedRequest) -> Reply:
    """A chat answer in OpenAI's wire format, streamed when asked, always with :data:`USAGE`."""
    body = request.json()
    model = body["model"]
    if not body.get("stream"):
        return json_reply({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there."},
                                        "finish_reason": "stop"}], "usage": USAGE})
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": " there."}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": USAGE},
    ]
    return sse_reply(events, done=True)


#: What the Anthropic-format upstream answers: 60 fresh input tokens, 40 read from the cache, 50 output.
CLAUDE_USAGE = {"input_tokens": 60, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 0,
                "output_tokens": 50}
#: Its cost at PRICE: no reasoning tokens this time.
CLAUDE_COST = (60 * 1.0 + 40 * 0.5 + 50 * 2.0) / 1_000_000


def claude_answer(request: RecordedRequest) -> Reply:
    """A Messages API answer, streamed as the API streams it when asked."""
    body = request.json()
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
               "content": [{"type": "text", "text": "Hello there."}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": CLAUDE_USAGE}
    if body.get("stream"):
        return sse_reply(list(stream_events(message)))
    return json_reply(message)


BOOM = json_reply({"error": {"message": "boom", "type": "server_error", "code": None}}, 500)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        up.add("/good/v1/chat/completions", answer)
        up.add("/down/v1/chat/completions", BOOM)
        up.add("/claude/v1/messages", claude_answer)
        yield up


def gateway_config(upstream: FakeUpstream, **sections: Any) -> dict[str, Any]:
    """Providers ``good`` and ``down`` (always 500) in OpenAI's format and
    ``claude`` in Anthropic's; aliases ``fast`` (good), ``smart`` (down, then
    good: a fallback), ``broken`` (down) and ``native`` (claude: a
    pass-through for Anthropic clients); both good targets priced at
    :data:`PRICE`; no breaker (every try reaches the upstream)."""
    return {
        "providers": {"good": {"type": "openai", "api_key": "sk-good-0123456789", "base_url": upstream.url + "/good/v1"},
                      "down": {"type": "openai", "api_key": "sk-down-0123456789", "base_url": upstream.url + "/down/v1"},
                      "claude": {"type": "anthropic", "api_key": "sk-ant-claude-0123456789",
                                 "base_url": upstream.url + "/claude"}},
        "models": {"fast": {"target": {"provider": "good", "model": "m1"}},
                   "smart": {"targets": [{"provider": "down", "model": "m1"}, {"provider": "good", "model": "m1"}]},
                   "broken": {"target": {"provider": "down", "model": "m1"}},
                   "native": {"target": {"provider": "claude", "model": "c1"}}},
        "catalog": {"good/m1": {"price": PRICE}, "claude/c1": {"price": PRICE}},
        "routing": {"breaker": {"enabled": False}},
        **sections,
    }


def admin(url: str, path: str, method: str = "GET", key: str | None = None, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, url + path, params=params, headers=headers, timeout=30)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``check`` until it answers something truthy; fail naming ``what``
    after ``timeout`` seconds (a ceiling for a broken build, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)



# -- the mixed run ---------------------------------------------------------------------

#: (request id, client, model, stream, provider that served or failed, attempts, the targets that failed, error kind)
MIXED = [
    ("oa-plain", "openai", "fast", False, "good", 1, [], None),
    ("oa-stream", "openai", "fast", True, "good", 1, [], None),
    ("oa-fallback", "openai", "smart", False, "good", 2, ["down/m1"], None),
    ("oa-fallback-stream", "openai", "smart", True, "good", 2, ["down/m1"], None),
    ("oa-broken", "openai", "broken", False, "down", 1, ["down/m1"], "server_error"),
    ("oa-unknown", "openai", "no-such-model", False, None, 0, [], "not_found"),
    ("an-plain", "anthropic", "fast", False, "good", 1, [], None),
    ("an-stream", "anthropic", "fast", True, "good", 1, [], None),
    ("an-fallback-stream", "anthropic", "smart", True, "good", 2, ["down/m1"], None),
    ("an-broken-stream", "anthropic", "broken", True, "down", 1, ["down/m1"], "server_error"),
    ("an-native", "anthropic", "native", False, "claude", 1, [], None),
    ("an-native-stream", "anthropic", "native", True, "claude", 1, [], None),
    ("oa-to-claude-stream", "openai", "native", True, "claude", 1, [], None),
]

#: (model, input, output, cached, reasoning tokens, cost) of a success, per provider that served it.
SERVED = {"good": ("m1", 100, 50, 40, 10, COST), "claude": ("c1", 100, 50, 40, None, CLAUDE_COST)}


def tags_of(request_id: str, client: str) -> dict[str, str]:
    """The metadata each request of the run sends: a team per client, and a flag on the streams."""
    tags = {"team": "search" if client == "openai" else "ads"}
    if "stream" in request_id:
        tags["kind"] = "stream"
    return tags


def ask(server: GatewayServer, request_id: str, client: str, model: str, stream: bool) -> int:
    """One request as the SDK sends it; the HTTP status the client saw."""
    headers = {"x-request-id": request_id, "x-portway-metadata": json.dumps(tags_of(request_id, client))}
    try:
        if client == "openai":
            oai = server.openai_client(api_key=OPENAI_KEY)
            if stream:
                assert "".join(chunk.choices[0].delta.content or "" for chunk in oai.chat.completions.create(
                    model=model, messages=HI, stream=True, extra_headers=headers) if chunk.choices) == "Hello there."
            else:
                reply = oai.chat.completions.create(model=model, messages=HI, extra_headers=headers)
                assert reply.choices[0].message.content == "Hello there."
        else:
            claude = server.anthropic_client(api_key=ANTHROPIC_KEY)
            if stream:
                with claude.messages.stream(model=model, max_tokens=100, messages=HI, extra_headers=headers) as events:
                    assert events.get_final_text() == "Hello there."
            else:
                message = claude.messages.create(model=model, max_tokens=100, messages=HI, extra_headers=headers)
                assert message.content[0].text == "Hello there."
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return exc.status_code
    return 200


def logs(server: GatewayServer, **params: Any) -> list[dict[str, Any]]:
    answer = admin(server.url, "/admin/logs", limit=1000, **params)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mixed_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[GatewayServer, dict[str, int], list[dict[str, Any]]]]:
    """The mixed run, once per store: the server, the status each client saw,
    and the log of it."""
    schema = "test_log_" + os.urandom(6).hex()
    if request.param == "sqlite":
        store: dict[str, Any] = {"url": f"sqlite:///{tmp_path_factory.mktemp('mixed') / 'log.db'}"}
    else:
        store = {"url": f"{PG_BASE}?schema={schema}"}
    with FakeUpstream() as up:
        up.add("/good/v1/chat/completions", answer)
        up.add("/down/v1/chat/completions", BOOM)
        up.add("/claude/v1/messages", claude_answer)
        with GatewayServer(gateway_config(up, store=store)) as server:
            statuses = {rid: ask(server, rid, client, model, stream) for rid, client, model, stream, *_ in MIXED}
            records = wait_for(lambda: (found := logs(server)) and len(found) == len(MIXED) and found,
                               "every request of the run in the log")
            yield server, statuses, records
    if request.param == "postgresql":
        asyncio.run(_drop_schema(schema))


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_BASE)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.parametrize(("request_id", "client", "model", "stream", "provider", "attempts", "failed", "error"),
                         MIXED, ids=[case[0] for case in MIXED])
def test_every_request_is_logged_as_it_happened(mixed_run: Any, request_id: str, client: str, model: str,
                                                stream: bool, provider: str | None, attempts: int, failed: list[str],
                                                error: str | None) -> None:
    _, statuses, records = mixed_run
    [record] = [r for r in records if r["request_id"] == request_id]
    assert (record["client_format"], record["model"], record["stream"], record["provider"], record["attempts"],
            record["error_kind"], record["status"]) == (client, model, stream, provider, attempts, error,
                                                        statuses[request_id])
    assert record["endpoint"] == ("chat.completions" if client == "openai" else "messages")
    assert record["key_id"] == key_id(OPENAI_KEY if client == "openai" else ANTHROPIC_KEY)
    assert record["tags"] == tags_of(request_id, client)
    assert record["alias"] == (None if model == "no-such-model" else model)
    assert (record["trace_id"], record["cache_status"], record["verdicts"]) == (None, None, None)
    assert record["latency_ms"] > 0
    if failed:
        assert [f["target"] for f in record["failures"]] == failed
        assert all(f["reason"] == "server_error 500" for f in record["failures"])
    else:
        assert record["failures"] is None
    if error is None:
        assert statuses[request_id] == 200
        served, *tokens, cost = SERVED[provider]  # type: ignore[index]
        assert (record["provider_model"], record["input_tokens"], record["output_tokens"], record["cached_tokens"],
                record["reasoning_tokens"]) == (served, *tokens)
        assert record["cost"] == pytest.approx(cost)
        assert record["output_tokens_per_s"] > 0
        assert (record["ttft_ms"] is not None) is stream  # a stream's first token is timed; a whole answer has none
        if stream:
            assert 0 < record["ttft_ms"] <= record["latency_ms"]
    else:
        assert statuses[request_id] >= 400
        assert (record["input_tokens"], record["output_tokens"], record["cost"]) == (None, None, None)
        assert record["ttft_ms"] is None


def test_a_record_in_full_has_no_bodies_by_default(mixed_run: Any) -> None:
    server, _, _ = mixed_run
    record = admin(server.url, "/admin/logs/oa-plain").json()
    assert record["request_id"] == "oa-plain" and record["cost"] == pytest.approx(COST)
    assert (record["request_body"], record["response_body"], record["feedback"]) == (None, None, [])
    missing = admin(server.url, "/admin/logs/never-sent")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "log_not_found"


def test_pages_walk_every_record_once_newest_first(mixed_run: Any) -> None:
    server, _, records = mixed_run
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = admin(server.url, "/admin/logs", **params).json()
        assert len(page["data"]) <= 3
        seen += [r["id"] for r in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == math.ceil(len(MIXED) / 3)
    assert seen == [r["id"] for r in records]  # the same order as one page
    assert [(r["time"], r["id"]) for r in records] == sorted(((r["time"], r["id"]) for r in records), reverse=True)
    bad = admin(server.url, "/admin/logs", cursor="garbage")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cursor"


FILTERS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"model": "smart"}, lambda r: r["model"] == "smart"),
    ({"provider": "down"}, lambda r: r["provider"] == "down"),
    ({"status": "error"}, lambda r: r["status"] >= 400),
    ({"status": "ok"}, lambda r: r["status"] < 400),
    ({"status": "200"}, lambda r: r["status"] == 200),
    ({"key_id": key_id(ANTHROPIC_KEY)}, lambda r: r["client_format"] == "anthropic"),
    ({"model": "fast", "key_id": key_id(OPENAI_KEY)}, lambda r: r["model"] == "fast" and r["client_format"] == "openai"),
    ({"request_id": "oa-stream"}, lambda r: r["request_id"] == "oa-stream"),
    ({"tag.team": "ads"}, lambda r: r["tags"]["team"] == "ads"),
    ({"tag.team": "search", "tag.kind": "stream"}, lambda r: r["tags"] == {"team": "search", "kind": "stream"}),
    ({"tag.kind": "stream", "status": "ok"}, lambda r: "kind" in r["tags"] and r["status"] < 400),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_filters(mixed_run: Any, params: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> None:
    server, _, records = mixed_run
    expected = [r["id"] for r in records if keep(r)]
    assert expected  # every filter here selects something
    assert [r["id"] for r in logs(server, **params)] == expected


def test_time_range_filters(mixed_run: Any) -> None:
    server, _, records = mixed_run
    times = sorted(r["time"] for r in records)
    middle = times[len(times) // 2]
    assert sorted(r["time"] for r in logs(server, since=middle)) == [t for t in times if t >= middle]
    assert sorted(r["time"] for r in logs(server, until=middle)) == [t for t in times if t < middle]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(times[0] - 3600))
    assert len(logs(server, since=iso)) == len(records)


@pytest.mark.parametrize(("params", "param"), [({"status": "teapot"}, "status"), ({"since": "yesterday"}, "since"),
                                               ({"limit": "0"}, "limit"), ({"colour": "red"}, "colour")])
def test_bad_query_parameters_are_400s_naming_them(mixed_run: Any, params: dict[str, Any], param: str) -> None:
    server, _, _ = mixed_run
    answer = admin(server.url, "/admin/logs", **params)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def _nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


GROUPINGS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("model", lambda r: r["model"]),
    ("provider", lambda r: r["provider"]),
    ("key", lambda r: r["key_id"]),
    ("tag.team", lambda r: r["tags"]["team"]),
    ("tag.kind", lambda r: r["tags"].get("kind")),  # requests without the tag form a group of their own (null)
]


@pytest.mark.parametrize(("group_by", "group_of"), GROUPINGS, ids=[g for g, _ in GROUPINGS])
def test_analytics_agree_with_the_raw_log(mixed_run: Any, group_by: str, group_of: Callable[[dict[str, Any]], Any]) -> None:
    server, _, records = mixed_run
    answer = admin(server.url, "/admin/analytics", group_by=group_by).json()
    assert answer["rows"] == len(records) and answer["truncated"] is False
    groups = {entry["group"]: entry for entry in answer["data"]}
    assert set(groups) == {group_of(r) for r in records}
    for name, entry in groups.items():
        members = [r for r in records if group_of(r) == name]
        errors = sum(1 for r in members if r["status"] >= 400)
        assert (entry["requests"], entry["errors"]) == (len(members), errors)
        assert entry["error_rate"] == pytest.approx(errors / len(members))
        for tokens in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
            assert entry[tokens] == sum(r[tokens] or 0 for r in members)
        costs = [r["cost"] for r in members if r["cost"] is not None]
        assert entry["cost"] == (pytest.approx(sum(costs)) if costs else None)
        assert entry["cost_unknown"] == len(members) - len(costs)
        for field in ("latency_ms", "ttft_ms"):
            values = [r[field] for r in members if r[field] is not None]
            if not values:
                assert entry[field] is None
                continue
            assert entry[field] == {f"p{p}": pytest.approx(_nearest_rank(values, p)) for p in (50, 95, 99)}


def test_analytics_time_buckets_add_up(mixed_run: Any) -> None:
    server, _, records = mixed_run
    answer = admin(server.url, "/admin/analytics", bucket="1m").json()
    assert answer["bucket_seconds"] == 60
    buckets = answer["data"]
    assert all(entry["bucket"] % 60 == 0 for entry in buckets)
    assert sum(entry["requests"] for entry in buckets) == len(records)
    for entry in buckets:
        inside = [r for r in records if entry["bucket"] <= r["time"] < entry["bucket"] + 60]
        assert entry["requests"] == len(inside)
        assert entry["output_tokens"] == sum(r["output_tokens"] or 0 for r in inside)
    bad = admin(server.url, "/admin/analytics", group_by="colour")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"


def test_feedback_attaches_to_a_logged_request_and_rolls_up(mixed_run: Any) -> None:
    server, _, _ = mixed_run
    given = [("oa-plain", 1.0, "good"), ("an-plain", 0.0, "bad"), ("oa-plain", 0.5, None)]
    for request_id, score, label in given:
        answer = httpx.post(server.url + "/v1/feedback", json={"request_id": request_id, "score": score,
                                                               "label": label, "comment": "seen"}, timeout=10)
        assert answer.status_code == 201, answer.text
        assert answer.json()["request_id"] == request_id
    record = admin(server.url, "/admin/logs/oa-plain").json()
    assert [(f["score"], f["label"], f["comment"]) for f in record["feedback"]] == [(1.0, "good", "seen"),
                                                                                      (0.5, None, "seen")]
    fast = {e["group"]: e for e in admin(server.url, "/admin/analytics", group_by="model").json()["data"]}["fast"]
    assert fast["feedback"] == {"count": 3, "mean_score": pytest.approx(0.5)}


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"request_id": "never-sent", "score": 1}, 404, "request_id"),
    ({"request_id": "oa-plain", "score": "high"}, 400, "score"),
    ({"request_id": "oa-plain", "score": True}, 400, "score"),
    ({"request_id": "oa-plain"}, 400, "score"),
    ({"request_id": "oa-plain", "score": 1, "mood": "happy"}, 400, "mood"),
    ({"score": 1}, 400, "request_id"),
])
def test_bad_feedback_is_refused_naming_the_field(mixed_run: Any, body: dict[str, Any], status: int,
                                                  param: str) -> None:
    server, _, _ = mixed_run
    answer = httpx.post(server.url + "/v1/feedback", json=body, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param


def test_feedback_for_a_request_still_queued_is_accepted(upstream: FakeUpstream) -> None:
    """The write is asynchronous: feedback sent right after the answer waits for the record."""
    with GatewayServer(gateway_config(upstream)) as server:
        for n in range(20):
            request_id = f"quick-{n}"
            server.openai_client().chat.completions.create(model="fast", messages=HI,
                                                           extra_headers={"x-request-id": request_id})
            answer = httpx.post(server.url + "/v1/feedback", json={"request_id": request_id, "score": 1}, timeout=10)
            assert answer.status_code == 201, answer.text


def test_analytics_past_its_row_limit_read_the_newest_and_say_so(upstream: FakeUpstream) -> None:
    with GatewayServer(gateway_config(upstream, log={"analytics_max_rows": 3})) as server:
        for n in range(5):
            server.openai_client().chat.completions.create(model="fast" if n < 2 else "smart", messages=HI)
        answer = admin(server.url, "/admin/analytics", group_by="model").json()
        assert (answer["rows"], answer["truncated"]) == (3, True)
        assert [(e["group"], e["requests"]) for e in answer["data"]] == [("smart", 3)]
