"""The core's spans through a running gateway, read with the SDK's in-memory
exporter (``tracing: {exporter: memory}``): a server span per request, a
client span per upstream attempt, GenAI attributes, the client's
``traceparent`` honoured and the attempt's sent upstream (the fake upstream
records the headers it got), and no content unless asked."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from portway_otel import memory_of

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import Reply, json_reply, sse_reply

SECRET_PROMPT = "the launch code is swordfish"
HI = [{"role": "user", "content": SECRET_PROMPT}]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


def completion(text: str, model: str = "gpt-4o-2024-08-06") -> Any:
    return json_reply({"id": "c1", "object": "chat.completion", "created": 1, "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                                 "prompt_tokens_details": {"cached_tokens": 4}}})


def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "s1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
            **({"usage": usage} if usage else {})}


STREAM = sse_reply([chunk({"role": "assistant", "content": ""}), chunk({"content": "streamed "}),
                    chunk({"content": "answer"}), chunk({}, "length"),
                    chunk({}, usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11})], done=True)
BOOM = json_reply({"error": {"message": "overloaded", "type": "server_error"}}, 503)


def config(upstream: FakeUpstream, **tracing: Any) -> dict[str, Any]:
    return {"providers": {"oai": {"type": "openai", "api_key": "sk-test", "base_url": upstream.url + "/v1"},
                          "down": {"type": "openai", "api_key": "sk-test", "base_url": upstream.url + "/down/v1"}},
            "models": {"smart": {"targets": [{"provider": "down", "model": "gpt-4o"},
                                             {"provider": "oai", "model": "gpt-4o"}]},
                       "fast": {"target": {"provider": "oai", "model": "gpt-4o"}}},
            "tracing": {"exporter": "memory", **tracing}}


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def spans(server: GatewayServer) -> list[Any]:
    """The finished spans, once the request's server span is among them: a
    streaming client has ``[DONE]`` a moment before the server ends the
    request (and its span), so reading at once could come too early."""
    exporter = memory_of(server.gateway)
    assert exporter is not None
    deadline = time.monotonic() + 10
    while not any(span.kind == SpanKind.SERVER for span in exporter.get_finished_spans()):
        if time.monotonic() > deadline:
            break  # the caller's assertions say what is missing
        time.sleep(0.01)
    return list(exporter.get_finished_spans())


def one(found: list[Any], kind: SpanKind) -> Any:
    matching = [span for span in found if span.kind == kind]
    assert len(matching) == 1, matching
    return matching[0]


def test_a_request_is_a_server_span_with_a_client_span_per_attempt(upstream: FakeUpstream) -> None:
    upstream.add("/down/v1/chat/completions", BOOM)
    upstream.add("/v1/chat/completions", completion("fine"))
    with GatewayServer(config(upstream)) as server:
        server.openai_client().chat.completions.create(model="smart", messages=HI, max_tokens=50, temperature=0.2)
        found = spans(server)
    server_span = one(found, SpanKind.SERVER)
    clients = sorted((s for s in found if s.kind == SpanKind.CLIENT), key=lambda s: s.attributes["portway.attempt"])
    assert server_span.name == "chat smart"
    assert [s.name for s in clients] == ["chat gpt-4o", "chat gpt-4o"]
    for span in clients:  # children of the server span, in its trace
        assert span.parent.span_id == server_span.context.span_id
        assert span.context.trace_id == server_span.context.trace_id
    failed, served = clients
    assert failed.attributes["portway.provider"] == "down" and failed.attributes["error.type"] == "overloaded"
    assert failed.status.status_code == StatusCode.ERROR
    assert served.attributes["portway.provider"] == "oai" and "error.type" not in served.attributes
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    assert {k: served.attributes.get(k) for k in expected} == expected
    assert server_span.attributes["gen_ai.request.model"] == "smart"
    assert server_span.attributes["gen_ai.usage.output_tokens"] == 7
    assert server_span.attributes["portway.attempts"] == 2
    assert server_span.attributes["http.response.status_code"] == 200
    assert server_span.parent is None  # the client sent no traceparent: a new trace


def test_the_clients_traceparent_is_the_parent_and_the_attempts_goes_upstream(upstream: FakeUpstream) -> None:
    upstream.add("/v1/chat/completions", completion("fine"))
    with GatewayServer(config(upstream)) as server:
        server.openai_client().chat.completions.create(model="fast", messages=HI,
                                                       extra_headers={"traceparent": TRACEPARENT})
        found = spans(server)
    server_span, client_span = one(found, SpanKind.SERVER), one(found, SpanKind.CLIENT)
    assert format(server_span.context.trace_id, "032x") == CLIENT_TRACE
    assert format(server_span.parent.span_id, "016x") == CLIENT_SPAN
    sent = upstream.last.headers["traceparent"]
    version, trace_id, span_id, flags = sent.split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "01")
    assert span_id == format(client_span.context.span_id, "016x")  # the upstream call's parent is the attempt


def test_a_stream_ends_its_spans_when_it_ends(upstream: FakeUpstream) -> None:
    upstream.add("/v1/chat/completions", STREAM)
    with GatewayServer(config(upstream)) as server:
        text = "".join(c.choices[0].delta.content or "" for c in server.openai_client().chat.completions.create(
            model="fast", messages=HI, stream=True) if c.choices)
        found = spans(server)
    assert text == "streamed answer"
    client_span = one(found, SpanKind.CLIENT)
    assert client_span.attributes["gen_ai.usage.input_tokens"] == 9
    assert client_span.attributes["gen_ai.usage.output_tokens"] == 2
    assert client_span.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert client_span.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert "traceparent" in upstream.last.headers


def test_an_anthropic_client_is_traced_the_same_way(upstream: FakeUpstream) -> None:
    upstream.add("/v1/chat/completions", completion("fine"))
    with GatewayServer(config(upstream)) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
        client.messages.create(model="fast", max_tokens=64, messages=HI)
        found = spans(server)
    server_span, client_span = one(found, SpanKind.SERVER), one(found, SpanKind.CLIENT)
    assert server_span.attributes["portway.client_format"] == "anthropic"
    assert server_span.attributes["gen_ai.request.max_tokens"] == 64
    assert client_span.attributes["gen_ai.usage.output_tokens"] == 7
    assert client_span.attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_a_failed_request_records_its_error_type(upstream: FakeUpstream) -> None:
    with GatewayServer(config(upstream)) as server:
        with pytest.raises(openai.NotFoundError):
            server.openai_client().chat.completions.create(model="nope", messages=HI)
        found = spans(server)
    server_span = one(found, SpanKind.SERVER)
    assert server_span.attributes["error.type"] == "not_found"
    assert server_span.attributes["http.response.status_code"] == 404
    assert server_span.status.status_code == StatusCode.ERROR
    assert not [s for s in found if s.kind == SpanKind.CLIENT]


def all_text(found: list[Any]) -> str:
    return repr([dict(span.attributes) for span in found]) + repr([span.name for span in found])


@pytest.mark.parametrize("stream", [False, True])
def test_no_content_in_spans_unless_configured(upstream: FakeUpstream, stream: bool) -> None:
    reply = STREAM if stream else completion("the answer is xyzzy-plugh")
    upstream.add("/v1/chat/completions", reply)
    with GatewayServer(config(upstream)) as server:
        list(server.openai_client().chat.completions.create(model="fast", messages=HI, stream=True)) if stream \
            else server.openai_client().chat.completions.create(model="fast", messages=HI)
        found = spans(server)
    assert SECRET_PROMPT not in all_text(found)
    assert "xyzzy" not in all_text(found) and "streamed" not in all_text(found)
    assert not any(key.startswith(("gen_ai.input", "gen_ai.output")) for span in found for key in span.attributes)

    upstream.add("/v1/chat/completions", reply)
    with GatewayServer(config(upstream, capture_content=True)) as server:
        list(server.openai_client().chat.completions.create(model="fast", messages=HI, stream=True)) if stream \
            else server.openai_client().chat.completions.create(model="fast", messages=HI)
        server_span = one(spans(server), SpanKind.SERVER)
    assert SECRET_PROMPT in server_span.attributes["gen_ai.input.messages"]
    assert ("streamed answer" if stream else "the answer is xyzzy-plugh") in server_span.attributes["gen_ai.output.messages"]


def test_without_an_sdk_the_clients_traceparent_is_forwarded_unchanged(upstream: FakeUpstream) -> None:
    upstream.add("/v1/chat/completions", completion("fine"))
    plain = {**config(upstream), "tracing": {"exporter": "none"}}
    with GatewayServer(plain) as server:
        client = server.openai_client()
        client.chat.completions.create(model="fast", messages=HI, extra_headers={"traceparent": TRACEPARENT})
        forwarded = upstream.last.headers.get("traceparent")
        client.chat.completions.create(model="fast", messages=HI)
        untraced = upstream.last.headers.get("traceparent")
        assert memory_of(server.gateway) is None
    assert forwarded == TRACEPARENT
    assert untraced is None


def test_embeddings_are_their_own_operation(upstream: FakeUpstream) -> None:
    upstream.add("/v1/embeddings", json_reply({
        "object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "usage": {"prompt_tokens": 5, "total_tokens": 5}}))
    with GatewayServer(config(upstream)) as server:
        server.openai_client().embeddings.create(model="oai/text-embedding-3-small", input="hello",
                                                 encoding_format="float")
        found = spans(server)
    server_span, client_span = one(found, SpanKind.SERVER), one(found, SpanKind.CLIENT)
    assert server_span.name == "embeddings oai/text-embedding-3-small"
    assert client_span.name == "embeddings text-embedding-3-small"
    assert client_span.attributes["gen_ai.operation.name"] == "embeddings"
    assert client_span.attributes["gen_ai.usage.input_tokens"] == 5
    assert "gen_ai.usage.output_tokens" not in client_span.attributes


def test_an_otlp_exporter_that_is_not_installed_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import portway_otel

    from portway.config import ConfigError

    # As on an install without the [otlp] extra (the test environment has it, for the test below).
    monkeypatch.setattr(portway_otel, "_installed", lambda module: False)
    with pytest.raises(ConfigError, match=r"tracing.*pip install 'portway-otel\[otlp\]'"):
        GatewayServer({"providers": {"mock": {"type": "mock"}}, "tracing": {"exporter": "otlp"}})


def test_the_otlp_exporter_posts_spans_to_a_collector(upstream: FakeUpstream) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with FakeUpstream() as collector:
        collector.add("/v1/traces", Reply(status=200, body=b"", content_type="application/x-protobuf"))
        upstream.add("/v1/chat/completions", completion("fine"))
        settings = {**config(upstream), "tracing": {"exporter": "otlp", "endpoint": collector.url + "/v1/traces",
                                                    "headers": {"x-collector-key": "k-123"}}}
        with GatewayServer(settings) as server:
            server.openai_client().chat.completions.create(model="fast", messages=HI)
        # Shutting down flushed the batch: the spans went out as OTLP/HTTP protobuf.
        posts = [r for r in collector.requests if r.path == "/v1/traces"]
    assert posts and all(r.headers["content-type"] == "application/x-protobuf" for r in posts)
    assert posts[0].headers["x-collector-key"] == "k-123"
    names = set()
    for post in posts:
        export = ExportTraceServiceRequest.FromString(post.body)
        for resource_spans in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            assert service == "portway"
            names |= {span.name for scope in resource_spans.scope_spans for span in scope.spans}
    assert names == {"chat fast", "chat gpt-4o"}
