"""The huggingface adapter over real sockets: the router's URL and token,
each quirk against the fake chat-completion server, TGI/TEI errors, and TEI
embeddings."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from portway_huggingface import HuggingFaceConfig, HuggingFaceProvider
from portway_huggingface.testing import HuggingFaceAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.openai_chat import vector_of
from portway.testing.script import say

T = TypeVar("T")
KEY = "hf_test0123456789abcdefghij"
HI = [{"role": "user", "content": "Hi"}]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream | None = None, **config: Any) -> HuggingFaceProvider:
    base = {"base_url": upstream.url + "/v1", "embeddings_url": upstream.url} if upstream is not None else {}
    return HuggingFaceProvider("hf", HuggingFaceConfig.model_validate(
        {"type": "huggingface", "api_key": KEY, **base, **config}))


def run(upstream: FakeUpstream, action: Callable[[HuggingFaceProvider], Awaitable[T]], **config: Any) -> T:
    return run_provider(provider(upstream, **config), action)


def chat(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.chat({"model": MODEL, "messages": HI, **body}, None), **config)


def failure(upstream: FakeUpstream, action: Callable[[HuggingFaceProvider], Awaitable[Any]],
            **config: Any) -> PortwayError:
    with pytest.raises(PortwayError) as caught:
        run(upstream, action, **config)
    assert KEY not in caught.value.message
    return caught.value


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env_0123456789")
    hf = HuggingFaceProvider("hf", HuggingFaceConfig(type="huggingface"))
    assert hf.base_url == "https://router.huggingface.co/v1"
    assert hf.auth_headers() == {"authorization": "Bearer hf_from_env_0123456789"}
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy_0123456789")
    assert HuggingFaceProvider("hf", HuggingFaceConfig(type="huggingface")).api_key == "hf_legacy_0123456789"


def test_registration() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "huggingface"]
    registered: list[Any] = []
    entry.load().register_providers(registered.append)
    assert registered == [HuggingFaceProvider]


def test_url_token_and_quirks(upstream: FakeUpstream) -> None:
    api = HuggingFaceAPI([say("Hello.")], api_key=KEY).install(upstream)
    answer = chat(upstream, {"messages": [{"role": "developer", "content": "Be brief."}, *HI], "n": 1,
                             "max_completion_tokens": 40, "user": "u-1", "parallel_tool_calls": True,
                             "reasoning_effort": "low", "service_tier": "auto"})
    assert answer["choices"][0]["message"]["content"] == "Hello."
    request = upstream.last
    assert (request.path, request.headers["authorization"]) == ("/v1/chat/completions", f"Bearer {KEY}")
    body = request.json()
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["max_tokens"] == 40
    for key in ("n", "max_completion_tokens", "user", "parallel_tool_calls", "reasoning_effort", "service_tier"):
        assert key not in body
    assert api.refusals == []


@pytest.mark.parametrize(("model", "route", "sent"), [
    (MODEL, "fastest", MODEL + ":fastest"), (MODEL + ":cerebras", "fastest", MODEL + ":cerebras"),
    (MODEL, None, MODEL),
])
def test_route_suffix(upstream: FakeUpstream, model: str, route: str | None, sent: str) -> None:
    HuggingFaceAPI([say("Hi.")], api_key=KEY).install(upstream)
    chat(upstream, {"model": model}, route=route)
    assert upstream.last.json()["model"] == sent


@pytest.mark.parametrize(("extra", "param"), [({"n": 3}, "n"), ({"logit_bias": {"12": 5}}, "logit_bias")])
def test_refused_before_sending(upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    error = failure(upstream, lambda p: p.chat({"model": MODEL, "messages": HI, **extra}, None))
    assert error.param == param and error.code == "unsupported" and upstream.requests == []


@pytest.mark.parametrize(("status", "body", "kind", "retry_after"), [
    (422, {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096",
           "error_type": "validation"}, "bad_request", None),
    (424, {"error": "Request failed during generation: CUDA out of memory", "error_type": "generation"},
     "server_error", None),
    (503, {"error": "Model meta-llama/x is currently loading", "estimated_time": 20.5}, "overloaded", "21"),
    (429, {"error": "Model is overloaded", "error_type": "overloaded"}, "rate_limit", None),
    (401, {"error": f"Invalid credentials in Authorization header: {KEY}"}, "authentication", None),
    (404, {"error": {"message": "The requested model 'x' does not exist", "type": "invalid_request_error"}},
     "not_found", None),
])
def test_errors(upstream: FakeUpstream, status: int, body: dict[str, Any], kind: str, retry_after: str | None) -> None:
    upstream.add("/v1/chat/completions", json_reply(body, status))
    error = failure(upstream, lambda p: p.chat({"model": MODEL, "messages": HI}, None))
    assert isinstance(error, ProviderError)
    assert (error.kind, error.status, error.retry_after) == (kind, status, retry_after)
    message = body["error"] if isinstance(body["error"], str) else body["error"]["message"]
    assert message.replace(KEY, "")[:30] in error.message


def test_a_tgi_endpoint_through_base_url(upstream: FakeUpstream) -> None:
    HuggingFaceAPI([say("From TGI.")], api_key=KEY).install(upstream)
    answer = run(upstream, lambda p: p.chat({"model": "tgi", "messages": HI}, None), route="fastest",
                 base_url=upstream.url + "/v1")
    assert answer["choices"][0]["message"]["content"] == "From TGI."


def test_tei_embeddings(upstream: FakeUpstream) -> None:
    api = HuggingFaceAPI(api_key=KEY).install(upstream)
    answer = run(upstream, lambda p: p.embeddings({"model": "BAAI/bge-small", "input": ["a b", "c"]}, None),
                 truncate=True)
    assert api.embed_requests == [{"inputs": ["a b", "c"], "normalize": True, "truncate": True}]
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert [item["embedding"] for item in answer["data"]] == [vector_of("a b"), vector_of("c")]
    assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3} and answer["model"] == "BAAI/bge-small"
    encoded = run(upstream, lambda p: p.embeddings({"model": "m", "input": "c", "encoding_format": "base64"}, None))
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(vector_of("c"), rel=1e-6)


def test_embeddings_refusals(upstream: FakeUpstream) -> None:
    error = failure(upstream, lambda p: p.embeddings({"model": "m", "input": "x"}, None), embeddings_url=None)
    assert error.code == "unsupported" and "embeddings_url" in error.message
    error = failure(upstream, lambda p: p.embeddings({"model": "m", "input": "x", "dimensions": 64}, None))
    assert error.param == "dimensions"
    assert upstream.requests == []


@pytest.mark.parametrize("answer", [[[0.1]], {"data": []}, [[0.1], ["x"]], [[0.1], []]])
def test_malformed_tei_answers(upstream: FakeUpstream, answer: Any) -> None:
    upstream.add("/embed", json_reply(answer))
    error = failure(upstream, lambda p: p.embeddings({"model": "m", "input": ["a", "b"]}, None))
    assert error.status == 502
