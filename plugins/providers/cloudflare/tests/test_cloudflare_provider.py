"""The cloudflare adapter over real sockets: the account in the URL, the
token, Workers AI's rules (JSON mode does not stream, the documented
models' capabilities), its error envelope, and rerank by ``/ai/run``."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest
from portway_cloudflare import CloudflareConfig, CloudflareProvider
from portway_cloudflare.testing import WorkersAI, envelope_error

from portway.errors import PortwayError
from portway.testing import FakeUpstream, json_reply, run_provider, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.script import say

T = TypeVar("T")
TOKEN = "cf-token-0123456789abcdefghij"
ACCOUNT = "0123456789abcdef0123456789abcdef"
ROOT = f"/client/v4/accounts/{ACCOUNT}/ai"
HI = [{"role": "user", "content": "Hi"}]
MODEL = "@cf/meta/llama-3.1-8b-instruct"
RERANKER = "@cf/baai/bge-reranker-base"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream, **config: Any) -> CloudflareProvider:
    return CloudflareProvider("cf", CloudflareConfig.model_validate({
        "type": "cloudflare", "api_key": TOKEN, "account_id": ACCOUNT,
        "base_url": upstream.url + "/client/v4/accounts/{account_id}/ai", **config}))


def run(upstream: FakeUpstream, action: Callable[[CloudflareProvider], Awaitable[T]], **config: Any) -> T:
    return run_provider(provider(upstream, **config), action)


def failure(upstream: FakeUpstream, action: Callable[[CloudflareProvider], Awaitable[Any]]) -> PortwayError:
    with pytest.raises(PortwayError) as caught:
        run(upstream, action)
    assert TOKEN not in caught.value.message
    return caught.value


def test_the_account_goes_in_the_default_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "cf-env-token-0123456789")
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "feedface0123")
    cf = CloudflareProvider("cf", CloudflareConfig(type="cloudflare"))
    assert cf.base_url == "https://api.cloudflare.com/client/v4/accounts/feedface0123/ai"
    assert cf.auth_headers() == {"authorization": "Bearer cf-env-token-0123456789"}
    configured = CloudflareProvider("cf", CloudflareConfig(type="cloudflare", account_id="abc-123"))
    assert configured.base_url.endswith("/accounts/abc-123/ai")
    gateway = CloudflareProvider("cf", CloudflareConfig(type="cloudflare", base_url="https://gw.example/ai"))
    assert gateway.base_url == "https://gw.example/ai"  # a full base_url needs no account


@pytest.mark.parametrize("account", [None, "", "../other", "a/b"])
def test_an_account_is_required_and_checked(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
                                            account: str | None) -> None:
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    # Made anyway (a token in the environment alone must not stop the gateway), but it sends nothing.
    cf = CloudflareProvider("cf", CloudflareConfig(type="cloudflare", api_key=TOKEN, account_id=account))
    for action in (lambda p: p.chat({"model": MODEL, "messages": HI}, None),
                   lambda p: p.embeddings({"model": "m", "input": "x"}, None),
                   lambda p: p.rerank({"model": RERANKER, "query": "q", "documents": ["a"]}, None)):
        with pytest.raises(PortwayError, match="account_id") as caught:
            run_provider(cf, action)
        assert caught.value.kind == "unavailable"


def test_a_token_alone_in_the_environment_does_not_stop_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    with GatewayServer(None, auto_providers=True) as server:
        assert "cloudflare" in server.gateway.providers
        with pytest.raises(openai.APIStatusError) as caught:
            server.openai_client().chat.completions.create(model="cloudflare/" + MODEL, messages=HI)
        assert "account_id" in caught.value.message


def test_registration() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "cloudflare"]
    registered: list[Any] = []
    entry.load().register_providers(registered.append)
    assert registered == [CloudflareProvider]


def test_chat_url_and_token(upstream: FakeUpstream) -> None:
    WorkersAI([say("Beep boop.")], api_token=TOKEN, account_id=ACCOUNT).install(upstream)
    answer = run(upstream, lambda p: p.chat({"model": MODEL, "messages": HI}, None))
    assert answer["choices"][0]["message"]["content"] == "Beep boop."
    assert upstream.last.path == ROOT + "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {TOKEN}"


def test_a_stream_with_cloudflare_padding(upstream: FakeUpstream) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "p": "abcdefgh",
              "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    end = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    upstream.add(ROOT + "/v1/chat/completions", sse_reply([chunk, end], done=True))

    async def collect(p: CloudflareProvider) -> list[dict[str, Any]]:
        return [c async for c in p.chat_stream({"model": MODEL, "messages": HI, "stream": True}, None)]

    chunks = run(upstream, collect)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hi"


def test_json_mode_does_not_stream(upstream: FakeUpstream) -> None:
    async def stream(p: CloudflareProvider) -> list[Any]:
        return [c async for c in p.chat_stream({"model": MODEL, "messages": HI, "stream": True,
                                                "response_format": {"type": "json_object"}}, None)]

    error = failure(upstream, stream)
    assert error.param == "response_format" and error.code == "unsupported" and upstream.requests == []


@pytest.mark.parametrize(("model", "extra", "param"), [
    ("@hf/nousresearch/hermes-2-pro-mistral-7b", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, "messages[0].content[0]"),
    ("@cf/meta/llama-3-8b-instruct", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
])
def test_documented_capabilities(upstream: FakeUpstream, model: str, extra: dict[str, Any], param: str) -> None:
    error = failure(upstream, lambda p: p.chat({"model": model, "messages": HI, **extra}, None))
    assert error.param == param and upstream.requests == []


@pytest.mark.parametrize(("status", "code", "message", "kind"), [
    (400, 5006, "AiError: Bad input: max_tokens must be <= 2048", "bad_request"),
    (401, 10000, "Authentication error", "authentication"),
    (404, 7003, "Could not route to /client/v4/accounts/x/ai/run/@cf/nope, perhaps your object identifier is "
     "invalid?", "not_found"),
    (429, 3040, "Capacity temporarily exceeded, please try again.", "rate_limit"),
    (500, 3043, "Internal server error", "server_error"),
])
def test_envelope_errors(upstream: FakeUpstream, status: int, code: int, message: str, kind: str) -> None:
    upstream.add(ROOT + "/v1/chat/completions", json_reply(envelope_error(code, f"{message} ({TOKEN})"), status,
                                                           {"retry-after": "9"} if status == 429 else None))
    error = failure(upstream, lambda p: p.chat({"model": MODEL, "messages": HI}, None))
    assert (error.status, error.kind, error.code) == (status, kind, str(code))
    assert message in error.message
    if status == 429:
        assert error.retry_after == "9"


def test_rerank_by_ai_run(upstream: FakeUpstream) -> None:
    api = WorkersAI(api_token=TOKEN, account_id=ACCOUNT).install(upstream)
    answer = run(upstream, lambda p: p.rerank({"model": RERANKER, "query": "capital of France",
                                               "documents": ["Berlin", {"text": "Paris is the capital of France"}],
                                               "top_n": 1}, None))
    assert upstream.last.path == ROOT + "/run/@cf/baai/bge-reranker-base"
    assert upstream.last.json() == {"query": "capital of France", "contexts": [
        {"text": "Berlin"}, {"text": "Paris is the capital of France"}], "top_k": 1}
    [call] = api.rerank_calls
    assert answer["results"] == [{"index": 1, "relevance_score": call.scores[1]}]


@pytest.mark.parametrize("answer", [
    {"result": {"response": [{"id": 5, "score": 0.5}]}, "success": True},
    {"result": {"response": [{"id": 0, "score": "high"}]}, "success": True},
    {"result": None, "success": True}, [1],
])
def test_malformed_rerank_answers(upstream: FakeUpstream, answer: Any) -> None:
    upstream.add(ROOT + "/run/*", json_reply(answer))
    error = failure(upstream, lambda p: p.rerank({"model": RERANKER, "query": "q", "documents": ["a"]}, None))
    assert error.status == 502 and "malformed" in error.message


def test_a_200_that_says_success_false(upstream: FakeUpstream) -> None:
    upstream.add(ROOT + "/run/*", json_reply(envelope_error(3010, "Invalid or incomplete input for the model")))
    error = failure(upstream, lambda p: p.rerank({"model": RERANKER, "query": "q", "documents": ["a"]}, None))
    assert error.status == 502 and "Invalid or incomplete input" in error.message and error.code == "3010"


@pytest.mark.parametrize("model", ["@cf/../../other", "", "@cf//x"])
def test_rerank_model_names_cannot_leave_the_run_path(upstream: FakeUpstream, model: str) -> None:
    error = failure(upstream, lambda p: p.rerank({"model": model, "query": "q", "documents": ["a"]}, None))
    assert error.param == "model" and upstream.requests == []
