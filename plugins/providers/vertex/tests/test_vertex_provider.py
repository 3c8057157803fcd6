"""The vertex adapter against fake Vertex AI endpoints and a fake token
endpoint on a real socket: URLs, the token flow, both publishers' bodies."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import ValidationError

import portway_vertex
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import call, say
from portway_gemini.testing import error_body
from portway_vertex import VertexConfig, VertexProvider, host_for
from portway_vertex.testing import (
    Clock,
    GeminiOnVertex,
    ServiceAccountKey,
    TokenEndpoint,
    VertexClaudeAPI,
    service_account_file,
    vertex_prefix,
)

T = TypeVar("T")
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4-5@20250929"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def private_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def account(tmp_path: Path, fake_upstream: FakeUpstream, private_key: Any) -> ServiceAccountKey:
    return service_account_file(tmp_path, fake_upstream.url + "/token", private_key=private_key)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock) -> TokenEndpoint:
    return TokenEndpoint(account.public_key, clock=clock).install(fake_upstream)


def provider_for(upstream: FakeUpstream, account: ServiceAccountKey, **config: Any) -> VertexProvider:
    settings = VertexConfig(type="vertex", credentials=str(account.path), base_url=upstream.url, **config)
    return VertexProvider("vx", settings)


def run(upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock,
        action: Callable[[VertexProvider], Awaitable[T]], **config: Any) -> T:
    async def with_clock(provider: VertexProvider) -> T:
        assert provider.tokens is not None
        provider.tokens.clock = clock
        return await action(provider)

    return run_provider(provider_for(upstream, account, **config), with_clock)


def chat(model: str, **body: Any) -> Callable[[VertexProvider], Awaitable[dict[str, Any]]]:
    return lambda p: p.chat({"model": model, "messages": HI, **body}, None)


# -- Gemini on Vertex ------------------------------------------------------------------------------


def test_gemini_request_goes_to_the_publisher_path_with_a_minted_token(
        fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock, tokens: TokenEndpoint) -> None:
    api = GeminiOnVertex([say("Hi there.")], tokens, models=[GEMINI]).install(fake_upstream)
    out = run(fake_upstream, account, clock, chat(GEMINI, max_tokens=20))

    exchange, request = fake_upstream.requests
    assert exchange.path == "/token" and tokens.exchanges == 1 and not tokens.refusals, tokens.refusals
    assert request.path == f"{vertex_prefix()}/{GEMINI}:generateContent"
    [token] = tokens.issued
    assert request.headers["authorization"] == f"Bearer {token}"
    assert "x-goog-api-key" not in request.headers
    assert request.json() == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                              "generationConfig": {"maxOutputTokens": 20}}
    assert not api.refusals
    ChatCompletion.model_validate(out)
    assert out["choices"][0]["message"]["content"] == "Hi there."


def test_gemini_stream_and_publisher_prefix(fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock,
                                            tokens: TokenEndpoint) -> None:
    GeminiOnVertex([say("Hello.")], tokens, models=[GEMINI]).install(fake_upstream)
    chunks = run(fake_upstream, account, clock,
                 lambda p: collect_stream(p, {"model": f"google/{GEMINI}", "messages": HI, "stream": True}))
    request = fake_upstream.last
    assert request.path == f"{vertex_prefix()}/{GEMINI}:streamGenerateContent" and request.query == "alt=sse"
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello."


def test_locations_and_hosts(account: ServiceAccountKey) -> None:
    assert host_for("global") == "https://aiplatform.googleapis.com"
    assert host_for("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"
    regional = VertexProvider("v", VertexConfig(type="vertex", credentials=str(account.path), location="europe-west4"))
    assert regional.base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert regional.model_path(GEMINI, "generateContent") == (
        f"/v1/projects/test-project/locations/europe-west4/publishers/google/models/{GEMINI}:generateContent")
    worldwide = VertexProvider("v", VertexConfig(type="vertex", credentials=str(account.path), location="global",
                                                 project="other"))
    assert worldwide.base_url == "https://aiplatform.googleapis.com"
    assert worldwide.model_path(GEMINI, "generateContent").startswith("/v1/projects/other/locations/global/")
    assert VertexProvider("v", VertexConfig(type="vertex", credentials=str(account.path))).base_url == \
        "https://us-central1-aiplatform.googleapis.com"


def test_config_is_checked(account: ServiceAccountKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="service account"):
        VertexConfig(type="vertex", api_key="AIza-not-for-vertex")
    with pytest.raises(ValidationError):
        VertexConfig(type="vertex", locaton="us-east5")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        VertexConfig(type="vertex", location="us-central1/../x")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with pytest.raises(PortwayError, match="credentials"):
        VertexProvider("v", VertexConfig(type="vertex"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account.path))
    assert VertexProvider("v", VertexConfig(type="vertex")).project == "test-project"
    user = tmp_path / "user.json"
    user.write_text('{"type": "authorized_user", "client_id": "x", "refresh_token": "y"}')
    with pytest.raises(PortwayError, match="not a service-account key"):
        VertexProvider("v", VertexConfig(type="vertex", credentials=str(user)))
    bare = service_account_file(tmp_path, "https://oauth2.googleapis.com/token", project_id=None)
    with pytest.raises(PortwayError, match="project"):
        VertexProvider("v", VertexConfig(type="vertex", credentials=str(bare.path)))


# -- the token: reused, refreshed once, never blocking ------------------------------------------------


def test_one_exchange_for_twenty_concurrent_requests_and_one_per_refresh(
        fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock, tokens: TokenEndpoint) -> None:
    api = GeminiOnVertex([say(f"answer {i}") for i in range(60)], tokens, models=[GEMINI]).install(fake_upstream)

    async def action(provider: VertexProvider) -> list[str]:
        first = await asyncio.gather(*(provider.chat({"model": GEMINI, "messages": HI}, None) for _ in range(20)))
        assert tokens.exchanges == 1
        clock.advance(3600 - 200)  # within the refresh margin: the token is replaced before it runs out
        second = await asyncio.gather(*(provider.chat({"model": GEMINI, "messages": HI}, None) for _ in range(20)))
        assert tokens.exchanges == 2
        clock.advance(1000)  # the first token has expired on the fake by now; the second is still fresh
        third = await asyncio.gather(*(provider.chat({"model": GEMINI, "messages": HI}, None) for _ in range(20)))
        return [c["choices"][0]["message"]["content"] for c in [*first, *second, *third]]

    answers = run(fake_upstream, account, clock, action)
    assert len(answers) == 60 and not api.refusals, api.refusals
    assert tokens.exchanges == 2 and not tokens.refusals
    first, second = tokens.issued
    assert not tokens.valid(first) and tokens.valid(second)
    used = {r.headers["authorization"] for r in fake_upstream.requests if r.path != "/token"}
    assert used == {f"Bearer {first}", f"Bearer {second}"}


def test_the_token_exchange_does_not_block_the_event_loop(
        fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock, tokens: TokenEndpoint) -> None:
    from portway.testing import Gate

    GeminiOnVertex([say("ok")], tokens, models=[GEMINI]).install(fake_upstream)
    tokens.gate = gate = Gate()

    async def action(provider: VertexProvider) -> dict[str, Any]:
        request = asyncio.ensure_future(provider.chat({"model": GEMINI, "messages": HI}, None))
        await asyncio.to_thread(gate.wait_reached)
        # The loop runs this while the exchange is held open: a blocking call would hold it too.
        assert not request.done() and tokens.issued
        gate.open()
        return await request

    assert run(fake_upstream, account, clock, action)["choices"][0]["message"]["content"] == "ok"


def test_a_refused_token_is_forgotten_and_minted_again(
        fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock, tokens: TokenEndpoint) -> None:
    GeminiOnVertex([say("second try")], tokens, models=[GEMINI]).install(fake_upstream)

    async def action(provider: VertexProvider) -> dict[str, Any]:
        await provider.request_headers()
        tokens.issued.clear()  # revoked upstream
        with pytest.raises(ProviderError) as err:
            await provider.chat({"model": GEMINI, "messages": HI}, None)
        assert err.value.kind == "authentication" and err.value.status == 401
        return await provider.chat({"model": GEMINI, "messages": HI}, None)

    assert run(fake_upstream, account, clock, action)["choices"][0]["message"]["content"] == "second try"
    assert tokens.exchanges == 2


def test_a_refused_assertion_is_an_authentication_error(
        fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock, private_key: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = TokenEndpoint(other.public_key(), clock=clock).install(fake_upstream)  # not the file's key
    with pytest.raises(ProviderError) as err:
        run(fake_upstream, account, clock, chat(GEMINI))
    assert err.value.kind == "authentication" and "InvalidSignatureError" in err.value.message
    assert CLIENT_EMAIL_IN(err.value.message) and tokens.exchanges == 1
    assert [r.path for r in fake_upstream.requests] == ["/token"]


def CLIENT_EMAIL_IN(message: str) -> bool:  # noqa: N802
    return "portway-test@test-project.iam.gserviceaccount.com" in message


def test_errors_never_show_the_token(fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock,
                                     tokens: TokenEndpoint) -> None:
    def echo(request: Any) -> Any:
        from portway.testing import json_reply

        token = request.headers["authorization"].split(" ", 1)[1]
        return json_reply(error_body(429, f"Quota exceeded for {token} (Bearer {token})", retry_after="3"), 429)

    fake_upstream.add(f"{vertex_prefix()}/{GEMINI}:generateContent", echo)
    with pytest.raises(ProviderError) as err:
        run(fake_upstream, account, clock, chat(GEMINI))
    [token] = tokens.issued
    assert token not in err.value.message and "[redacted]" in err.value.message
    assert (err.value.kind, err.value.retry_after, err.value.code) == ("rate_limit", "3", "RESOURCE_EXHAUSTED")


# -- Claude on Vertex ------------------------------------------------------------------------------------


def test_claude_for_an_openai_client(fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock,
                                     tokens: TokenEndpoint) -> None:
    api = VertexClaudeAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], tokens,
                          models=[CLAUDE]).install(fake_upstream)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    out = run(fake_upstream, account, clock, chat(f"anthropic/{CLAUDE}", tools=tools, temperature=0.5),
              beta=["context-1m-2025-08-07"])
    request = fake_upstream.last
    assert request.path == f"{vertex_prefix(publisher='anthropic')}/{CLAUDE}:rawPredict"
    assert request.headers["authorization"].startswith("Bearer ya29.fake-token-")
    assert request.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert "x-api-key" not in request.headers
    assert api.bodies[0] == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096,
                             "temperature": 0.5, "anthropic_version": "vertex-2023-10-16",
                             "tools": [{"name": "get_weather", "input_schema": tools[0]["function"]["parameters"]}]}
    assert not api.refusals, api.refusals
    ChatCompletion.model_validate(out)
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"

    chunks = run(fake_upstream, account, clock,
                 lambda p: collect_stream(p, {"model": CLAUDE, "messages": HI, "stream": True}))
    request = fake_upstream.last
    assert request.path == f"{vertex_prefix(publisher='anthropic')}/{CLAUDE}:streamRawPredict"
    assert api.bodies[1]["stream"] is True and "model" not in api.bodies[1]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Sunny."
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_claude_errors_in_anthropic_shape(fake_upstream: FakeUpstream, account: ServiceAccountKey, clock: Clock,
                                          tokens: TokenEndpoint) -> None:
    from portway.testing import json_reply

    fake_upstream.add(f"{vertex_prefix(publisher='anthropic')}/{CLAUDE}:rawPredict", json_reply(
        {"type": "error", "error": {"type": "invalid_request_error",
                                    "message": "prompt is too long: 300000 tokens > 200000 maximum"}}, 400))
    with pytest.raises(ProviderError) as err:
        run(fake_upstream, account, clock, chat(CLAUDE))
    assert (err.value.kind, err.value.status, err.value.code) == ("context_length", 400, "invalid_request_error")


def test_other_publishers_are_refused(account: ServiceAccountKey) -> None:
    provider = VertexProvider("v", VertexConfig(type="vertex", credentials=str(account.path)))
    with pytest.raises(PortwayError) as err:
        provider.model_path("mistralai/mistral-large", "generateContent")
    assert err.value.param == "model"
    assert provider.speaks_natively("anthropic", CLAUDE) and provider.speaks_natively("anthropic", "anthropic/x")
    assert not provider.speaks_natively("anthropic", GEMINI) and not provider.speaks_natively("responses", CLAUDE)


def test_registration() -> None:
    registered: list[type] = []
    portway_vertex.register_providers(registered.append)
    assert registered == [VertexProvider] and portway_vertex.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "vertex"]
    assert [e.value for e in entry] == ["portway_vertex"]
