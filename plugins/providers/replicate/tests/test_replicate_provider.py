"""The replicate adapter against a fake Replicate API on a real socket
(:mod:`portway_replicate.testing`): the endpoint, headers and input it sends,
the wait and the polling, streams and their cancellation, errors, and what
it refuses before sending anything."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import portway_replicate
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from portway_replicate import ReplicateConfig, ReplicateProvider
from portway_replicate.testing import ReplicateAPI, Stopped

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Reply, json_reply, run_provider
from portway.testing.script import say

T = TypeVar("T")
KEY = "r8_test-key-0123456789abcdef"
LLAMA = "meta/meta-llama-3-70b-instruct"
VERSION = "5a6809ca6288247d06daf6365557e5e429063f32a21146b2a807c682652136b8"
HI = [{"role": "user", "content": "Say hello"}]
FAST = {"poll_interval": 0.02, "max_poll_interval": 0.08}


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream, **config: Any) -> ReplicateProvider:
    settings = ReplicateConfig.model_validate(
        {"type": "replicate", "api_key": KEY, "base_url": upstream.url + "/v1", **FAST, **config})
    return ReplicateProvider("rep", settings)


def run(upstream: FakeUpstream, action: Callable[[ReplicateProvider], Awaitable[T]], **config: Any) -> T:
    return run_provider(provider(upstream, **config), action)


def fake(upstream: FakeUpstream, *steps: Any, polls: int = 0) -> ReplicateAPI:
    return ReplicateAPI(list(steps), api_key=KEY, polls=polls).install(upstream)


def chat(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    answer = run(upstream, lambda p: p.chat({"model": LLAMA, **body}, None), **config)
    ChatCompletion.model_validate(answer)
    return answer


def stream(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> list[dict[str, Any]]:
    async def collect(p: ReplicateProvider) -> list[dict[str, Any]]:
        return [chunk async for chunk in p.chat_stream({"model": LLAMA, **body, "stream": True}, None)]

    chunks = run(upstream, collect, **config)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def failure(upstream: FakeUpstream, action: Callable[[ReplicateProvider], Awaitable[Any]],
            **config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action, **config)
    assert KEY not in caught.value.message and KEY[:6] + "..." not in caught.value.message
    return caught.value


def refused(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> PortwayError:
    with pytest.raises(PortwayError) as caught:
        chat(upstream, body, **config)
    assert caught.value.kind == "bad_request" and upstream.requests == []
    return caught.value


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def inputs(upstream: FakeUpstream) -> dict[str, Any]:
    [create] = [r for r in upstream.requests if r.method == "POST" and not r.path.endswith("/cancel")]
    return create.json()["input"]


# -- the request ---------------------------------------------------------------------------------


def test_an_official_model_is_run_at_its_models_path_with_the_wait_header_and_the_token(upstream):
    fake(upstream, say("Hello there.", input_tokens=12, output_tokens=3))
    answer = chat(upstream, {"messages": [{"role": "system", "content": "Be brief."}, *HI], "temperature": 0.2})
    [request] = upstream.requests
    assert (request.method, request.path) == ("POST", f"/v1/models/{LLAMA}/predictions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["prefer"] == "wait=60"
    assert request.json() == {"input": {"prompt": "Say hello", "system_prompt": "Be brief.", "max_tokens": 1024,
                                        "temperature": 0.2}}
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello there."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def test_the_wait_is_configurable(upstream):
    fake(upstream, say("Hi."))
    chat(upstream, {"messages": HI}, wait=5)
    assert upstream.requests[0].headers["prefer"] == "wait=5"


@pytest.mark.parametrize("model", [f"meta/meta-llama-3-70b-instruct:{VERSION}", VERSION])
def test_a_pinned_version_is_run_at_predictions_with_its_version(upstream, model):
    fake(upstream, say("Hi."))
    chat(upstream, {"model": model, "messages": HI})
    [request] = upstream.requests
    assert request.path == "/v1/predictions"
    assert request.json()["version"] == VERSION


@pytest.mark.parametrize("model", ["llama", "meta/llama/../../v1/account", "meta/llama:notahexversion"])
def test_a_model_that_is_no_replicate_id_is_refused_naming_model(upstream, model):
    fake(upstream, say("Hi."))
    assert refused(upstream, {"model": model, "messages": HI}).param == "model"


def test_the_sdk_form_of_the_base_url_gets_v1(upstream):
    fake(upstream, say("Hi."))
    run(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI}, None), base_url=upstream.url)
    assert upstream.requests[0].path == f"/v1/models/{LLAMA}/predictions"


def test_the_key_comes_from_replicate_api_token(upstream, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", KEY)
    fake(upstream, say("Hi."))
    settings = ReplicateConfig.model_validate({"type": "replicate", "base_url": upstream.url + "/v1"})
    run_provider(ReplicateProvider("rep", settings), lambda p: p.chat({"model": LLAMA, "messages": HI}, None))
    assert upstream.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_the_openai_parameters_become_llama_inputs(upstream):
    fake(upstream, say("Hi."))
    chat(upstream, {"messages": HI, "max_completion_tokens": 50, "top_p": 0.8, "stop": ["END", "\n\n"],
                    "presence_penalty": 0.1, "frequency_penalty": 0.2, "seed": 7, "user": "u-1"})
    assert inputs(upstream) == {"prompt": "Say hello", "max_tokens": 50, "top_p": 0.8, "stop_sequences": "END,\n\n",
                                "presence_penalty": 0.1, "frequency_penalty": 0.2}


def test_a_stop_sequence_with_a_comma_is_refused_naming_stop(upstream):
    fake(upstream, say("Hi."))
    assert refused(upstream, {"messages": HI, "stop": ["a,b"]}).param == "stop"


def test_a_conversation_is_written_in_llama_3s_format(upstream):
    fake(upstream, say("Ada."))
    chat(upstream, {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "I am Ada."},
                                 {"role": "assistant", "content": "Hello Ada."},
                                 {"role": "user", "content": "Who am I?"}]})
    sent = inputs(upstream)
    assert sent["prompt_template"] == "{prompt}" and "system_prompt" not in sent
    assert sent["prompt"] == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nI am Ada.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello Ada.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWho am I?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_a_conversation_for_a_model_of_unknown_format_is_refused_unless_configured(upstream):
    fake(upstream, say("Hi."))
    history = {"model": "mistralai/mixtral-8x7b-instruct-v0.1",
               "messages": [*HI, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again"}]}
    assert refused(upstream, history).param == "messages"
    chat(upstream, history, chat_template="llama3")
    assert inputs(upstream)["prompt_template"] == "{prompt}"


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url":
                   {"url": "https://example.com/a.png"}}]}]}, "messages[0].content[1]"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
])
def test_what_replicate_cannot_do_is_a_400_naming_it(upstream, body, param):
    fake(upstream, say("Hi."))
    assert refused(upstream, {"messages": HI, **body}).param == param


def test_openai_models_get_messages_images_and_max_completion_tokens(upstream):
    fake(upstream, say("A cat."))
    chat(upstream, {"model": "openai/gpt-4o", "max_tokens": 99, "reasoning_effort": "low", "seed": 3, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert inputs(upstream) == {"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "What is it?"}],
                                "image_input": ["https://example.com/cat.png"], "max_completion_tokens": 99,
                                "reasoning_effort": "low"}


def test_the_input_schema_can_be_configured(upstream):
    upstream.add("/v1/models/acme/chat-model/predictions", json_reply({"id": "x", "status": "succeeded", "output": ["Hi."]}, 201))
    chat(upstream, {"model": "acme/chat-model", "messages": HI}, input_schema="messages", max_tokens=None)
    assert upstream.requests[0].json()["input"] == {"messages": [{"role": "user", "content": "Say hello"}]}


# -- the answer -----------------------------------------------------------------------------------


def test_a_prediction_still_running_after_the_wait_is_polled_at_urls_get_with_a_growing_pause(upstream):
    api = fake(upstream, say("Slow answer."), polls=4)
    answer = chat(upstream, {"messages": HI})
    gets = [r for r in upstream.requests if r.method == "GET"]
    [prediction] = api.predictions.values()
    assert [r.path for r in gets] == [f"/v1/predictions/{prediction.id}"] * 4
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in gets)
    pauses = [later.at - earlier.at for earlier, later in zip(upstream.requests, upstream.requests[1:], strict=False)]
    assert pauses[0] >= 0.02 and pauses[1] >= 0.04 and pauses[2] >= 0.08 and pauses[3] >= 0.08
    assert pauses[3] < 1  # bounded by max_poll_interval
    assert answer["choices"][0]["message"]["content"] == "Slow answer."


def test_a_prediction_that_outlives_the_timeout_is_canceled_and_a_timeout(upstream):
    api = fake(upstream, say("Never."), polls=1000)
    error = failure(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI}, None), timeout=0.3)
    assert error.kind == "timeout"
    assert list(api.canceled) == list(api.predictions)


@pytest.mark.parametrize(("outcome", "words"), [
    (Stopped("failed", "CUDA out of memory"), "the prediction failed: CUDA out of memory"),
    (Stopped("canceled", None), "the prediction was canceled"),
])
def test_a_prediction_that_ends_without_output_is_an_error_with_its_reason(upstream, outcome, words):
    fake(upstream, outcome, polls=1)
    error = failure(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI}, None))
    assert error.kind == "server_error" and words in error.message


def test_an_answer_that_used_the_whole_limit_is_cut(upstream):
    fake(upstream, say("Long", truncated=True), say("Long", truncated=True))
    assert chat(upstream, {"messages": HI, "max_tokens": 40})["choices"][0]["finish_reason"] == "length"
    assert stream(upstream, {"messages": HI, "max_tokens": 40})[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(("prediction", "reason"), [
    ({"id": "x", "status": "thinking"}, "no known status"),
    ({"id": "x", "status": "succeeded", "output": [{"url": "https://x"}]}, "neither a string nor a list of strings"),
    ({"id": "x", "status": "succeeded", "output": "ok", "metrics": {"input_token_count": "many"}}, "not a count"),
    ({"id": "x", "status": "processing", "urls": {}}, "no urls.get"),
    ({"id": "x", "status": "processing", "urls": {"get": "https://attacker.example/p/x"}}, "outside Replicate"),
])
def test_an_answer_without_a_predictions_shape_is_malformed(upstream, prediction, reason):
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(prediction, 201))
    error = failure(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI}, None))
    assert error.status == 502 and reason in error.message
    assert len(upstream.requests) == 1  # no URL outside Replicate was followed


def test_a_string_output_is_the_text(upstream):
    upstream.add(f"/v1/models/{LLAMA}/predictions",
                 json_reply({"id": "x", "status": "succeeded", "output": "Whole text.", "metrics": {}}, 201))
    answer = chat(upstream, {"messages": HI})
    assert answer["choices"][0]["message"]["content"] == "Whole text." and "usage" not in answer


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(401, "authentication"), (404, "not_found"), (422, "bad_request"),
                                              (429, "rate_limit"), (500, "server_error")])
def test_problem_details_become_classified_errors_with_their_detail(upstream, status, kind):
    upstream.answer_all(ReplicateAPI().error(status, f"it went wrong, token {KEY}", "3" if status == 429 else None))
    error = failure(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI}, None))
    assert (error.kind, error.status) == (kind, status)
    assert "it went wrong" in error.message
    assert error.retry_after == ("3" if status == 429 else None)


def test_an_invalid_input_names_what_replicate_said(upstream):
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(
        {"title": "Input validation failed", "detail": "- input.max_tokens: Must be greater than or equal to 1",
         "status": 422, "invalid_fields": [{"field": "input.max_tokens"}]}, 422))
    error = failure(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI}, None))
    assert error.kind == "bad_request"
    assert "Input validation failed: - input.max_tokens: Must be greater" in error.message


# -- streams --------------------------------------------------------------------------------------


def test_a_stream_creates_a_streaming_prediction_and_reads_its_events(upstream):
    api = fake(upstream, say("Line one\nline two.", input_tokens=9, output_tokens=4))
    chunks = stream(upstream, {"messages": HI})
    create, events, final = upstream.requests
    [prediction] = api.predictions.values()
    assert create.json()["stream"] is True and "prefer" not in create.headers
    assert (events.method, events.path) == ("GET", f"/stream/{prediction.id}")
    assert events.headers["accept"] == "text/event-stream" and events.headers["authorization"] == f"Bearer {KEY}"
    assert (final.method, final.path) == ("GET", f"/v1/predictions/{prediction.id}")  # for the token counts
    assert text_of(chunks) == "Line one\nline two."
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    assert len({c["id"] for c in chunks}) == 1


def test_a_stream_error_event_is_an_error_with_its_detail(upstream):
    fake(upstream, Stopped("failed", "the prompt is too long"))
    error = failure(upstream, lambda p: _drain(p.chat_stream({"model": LLAMA, "messages": HI, "stream": True}, None)))
    assert error.kind == "server_error" and "the prompt is too long" in error.message


def test_a_stream_done_with_a_reason_is_an_error(upstream):
    create = {"id": "p1", "status": "starting", "urls": {"get": f"{upstream.url}/v1/predictions/p1",
                                                          "cancel": f"{upstream.url}/v1/predictions/p1/cancel",
                                                          "stream": f"{upstream.url}/stream/p1"}}
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(create, 201))
    upstream.add("/stream/p1", Reply(chunks=[b"event: output\ndata: Hi\n\n", b"event: done\ndata: {\"reason\": \"canceled\"}\n\n"],
                                     content_type="text/event-stream"), method="GET")
    error = failure(upstream, lambda p: _drain(p.chat_stream({"model": LLAMA, "messages": HI, "stream": True}, None)))
    assert "canceled" in error.message


def test_a_stream_cut_before_done_is_a_connection_error_and_cancels_the_prediction(upstream):
    create = {"id": "p1", "status": "starting", "urls": {"get": f"{upstream.url}/v1/predictions/p1",
                                                          "cancel": f"{upstream.url}/v1/predictions/p1/cancel",
                                                          "stream": f"{upstream.url}/stream/p1"}}
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(create, 201))
    upstream.add("/stream/p1", Reply(chunks=[b"event: output\ndata: Hi\n\n"], content_type="text/event-stream"),
                 method="GET")
    upstream.add("/v1/predictions/p1/cancel", json_reply({**create, "status": "canceled"}))
    error = failure(upstream, lambda p: _drain(p.chat_stream({"model": LLAMA, "messages": HI, "stream": True}, None)))
    assert error.kind == "connection"
    assert upstream.requests[-1].path == "/v1/predictions/p1/cancel"


def test_a_client_that_leaves_mid_stream_cancels_the_prediction(upstream):
    api = fake(upstream, say(" ".join(f"word{i}" for i in range(50))))
    api.stream_delay = 0.02

    async def leave_early(p: ReplicateProvider) -> None:
        chunks = p.chat_stream({"model": LLAMA, "messages": HI, "stream": True}, None)
        async for _ in chunks:
            break
        await chunks.aclose()

    run(upstream, leave_early)
    assert api.canceled == list(api.predictions) and api.disconnected.is_set()


def test_a_stream_url_outside_replicate_is_not_followed(upstream):
    create = {"id": "p1", "status": "starting", "urls": {"get": f"{upstream.url}/v1/predictions/p1",
                                                          "stream": "http://169.254.169.254/latest/meta-data"}}
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(create, 201))
    error = failure(upstream, lambda p: _drain(p.chat_stream({"model": LLAMA, "messages": HI, "stream": True}, None)))
    assert error.status == 502 and "outside Replicate" in error.message
    assert len(upstream.requests) == 1


def test_a_model_without_streaming_is_polled_and_replayed_as_chunks(upstream):
    create = {"id": "p1", "status": "starting", "urls": {"get": f"{upstream.url}/v1/predictions/p1"}}
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(create, 201))
    upstream.add("/v1/predictions/p1", json_reply({**create, "status": "succeeded", "output": ["Hel", "lo."]}),
                 method="GET")
    chunks = stream(upstream, {"messages": HI})
    assert text_of(chunks) == "Hello." and [r.method for r in upstream.requests] == ["POST", "GET"]


def test_the_stream_error_statuses_are_classified(upstream):
    upstream.answer_all(ReplicateAPI().error(429, "slow down", "4"))
    error = failure(upstream, lambda p: _drain(p.chat_stream({"model": LLAMA, "messages": HI, "stream": True}, None)))
    assert (error.kind, error.retry_after) == ("rate_limit", "4")


def test_the_plugin_is_registered_by_its_entry_point():
    points = importlib.metadata.entry_points(group="portway.plugins")
    assert any(point.name == "replicate" and point.load() is portway_replicate for point in points)
    assert ReplicateProvider.type == "replicate" and ReplicateProvider.env_key == "REPLICATE_API_TOKEN"


async def _drain(chunks: Any) -> None:
    async for _ in chunks:
        await asyncio.sleep(0)


def test_a_failed_look_up_of_a_streams_token_counts_costs_only_the_usage(upstream):
    create = {"id": "p1", "status": "starting", "urls": {"get": f"{upstream.url}/v1/predictions/p1",
                                                          "stream": f"{upstream.url}/stream/p1"}}
    upstream.add(f"/v1/models/{LLAMA}/predictions", json_reply(create, 201))
    upstream.add("/stream/p1", Reply(chunks=[b"event: output\ndata: Hi\n\n", b"event: done\ndata: {}\n\n"],
                                     content_type="text/event-stream"), method="GET")
    upstream.add("/v1/predictions/p1", ReplicateAPI().error(500, "try later"), method="GET")
    chunks = stream(upstream, {"messages": HI})
    assert text_of(chunks) == "Hi" and not any(c.get("usage") for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_an_anthropic_clients_top_k_reaches_a_prompt_model(upstream):
    from types import SimpleNamespace

    fake(upstream, say("Hi."))
    ctx = SimpleNamespace(client_format="anthropic")
    run(upstream, lambda p: p.chat({"model": LLAMA, "messages": HI, "max_tokens": 300, "top_k": 40}, ctx))
    assert inputs(upstream) == {"prompt": "Say hello", "max_tokens": 300, "top_k": 40}
