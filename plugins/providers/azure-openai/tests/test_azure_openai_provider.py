"""The azure-openai adapter against a fake Azure OpenAI resource on a real
socket (:mod:`portway_azure_openai.testing`): the URL, query, headers and
body it sends, how it reads Azure's answers, streams and errors, and the
whole path through a gateway with the official SDKs as clients."""

from __future__ import annotations

import base64
import importlib.metadata
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import portway_azure_openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from portway_azure_openai import DEFAULT_API_VERSION, AzureOpenAIConfig, AzureOpenAIProvider
from portway_azure_openai.testing import AzureOpenAIAPI, stream_chunks

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.gateway import GatewayServer
from portway.testing.script import call, say
from portway.testing.wire import openai_chunk

T = TypeVar("T")
KEY = "azure-key-0123456789abcdef"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-token-payload"
DEPLOYMENTS = {"chat": "gpt-4o-2024-08-06", "o4-mini-prod": "o4-mini", "thinker": "o3", "embed": "text-embedding-3-small"}
CHAT_PATH = "/openai/deployments/chat/chat/completions"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream, **config: Any) -> AzureOpenAIProvider:
    settings = AzureOpenAIConfig.model_validate({"type": "azure-openai", "base_url": upstream.url,
                                                 **({"api_key": KEY} if "azure_ad_token" not in config else {}),
                                                 **config})
    return AzureOpenAIProvider("azure", settings)


def run(upstream: FakeUpstream, action: Callable[[AzureOpenAIProvider], Awaitable[T]], **config: Any) -> T:
    return run_provider(provider(upstream, **config), action)


def fake(upstream: FakeUpstream, *steps: Any, **options: Any) -> AzureOpenAIAPI:
    options.setdefault("api_key", KEY)
    return AzureOpenAIAPI(list(steps), deployments=DEPLOYMENTS, **options).install(upstream)


async def collect(p: AzureOpenAIProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [chunk async for chunk in p.chat_stream(body, None)]


def failure(upstream: FakeUpstream, action: Callable[[AzureOpenAIProvider], Awaitable[Any]],
            **config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action, **config)
    assert KEY not in caught.value.message and TOKEN not in caught.value.message
    return caught.value


def body(model: str = "chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Say hello"}], **extra}


# -- configuration -------------------------------------------------------------------


def test_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key-0123456789")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://acme.openai.azure.com/")
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    p = AzureOpenAIProvider("azure", AzureOpenAIConfig(type="azure-openai"))
    assert p.base_url == "https://acme.openai.azure.com"
    assert p.auth_headers() == {"api-key": "env-key-0123456789"}
    assert p.settings.api_version == DEFAULT_API_VERSION == "2024-10-21"
    assert p.chat_url({"model": "chat"}) == "/openai/deployments/chat/chat/completions?api-version=2024-10-21"
    assert p.models() == []

    # With no credential configured, an Entra ID token in the environment wins (as in openai-python's AzureOpenAI).
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", TOKEN)
    p = AzureOpenAIProvider("azure", AzureOpenAIConfig(type="azure-openai"))
    assert p.auth_headers() == {"authorization": f"Bearer {TOKEN}"}
    # An explicit credential selects the principal: the environment is not read.
    p = AzureOpenAIProvider("azure", AzureOpenAIConfig(type="azure-openai", api_key="cfg-key-0123456789"))
    assert p.auth_headers() == {"api-key": "cfg-key-0123456789"}
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN")
    p = AzureOpenAIProvider("azure", AzureOpenAIConfig(type="azure-openai", azure_ad_token="cfg-token-0123456789"))
    assert p.auth_headers() == {"authorization": "Bearer cfg-token-0123456789"}
    assert "env-key-0123456789" not in p.secrets()


def test_config_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    with pytest.raises(Exception, match="apiversion"):
        AzureOpenAIConfig.model_validate({"type": "azure-openai", "apiversion": "2024-10-21"})
    with pytest.raises(Exception, match="not both"):
        AzureOpenAIConfig.model_validate({"type": "azure-openai", "api_key": "k" * 12, "azure_ad_token": "t" * 12})
    with pytest.raises(Exception, match="api_version"):
        AzureOpenAIConfig.model_validate({"type": "azure-openai", "api_version": "2024-10-21&x=1"})
    with pytest.raises(PortwayError, match="base_url"):
        AzureOpenAIProvider("azure", AzureOpenAIConfig(type="azure-openai", api_key="k" * 12))


def test_registration() -> None:
    registered: list[type] = []
    portway_azure_openai.register_providers(registered.append)
    assert registered == [AzureOpenAIProvider]
    assert portway_azure_openai.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "azure-openai"]
    assert [e.value for e in entry] == ["portway_azure_openai"]


# -- what it sends ---------------------------------------------------------------------


def test_chat_on_the_deployments_path(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("Hello there"))
    sent = body(temperature=0.3, seed=7, data_sources=[{"type": "azure_search", "parameters": {"index_name": "i"}}])
    result = run(upstream, lambda p: p.chat(sent, None), headers={"x-ms-client-request-id": "trace-1"})
    request = upstream.last
    assert (request.method, request.path, request.query) == ("POST", CHAT_PATH, "api-version=2024-10-21")
    assert request.headers["api-key"] == KEY and "authorization" not in request.headers
    assert request.headers["x-ms-client-request-id"] == "trace-1"
    assert request.json() == sent  # the model (the deployment) and Azure's own fields go as sent
    assert len(api.calls) == 1 and not api.refusals
    ChatCompletion.model_validate(result)
    assert result["choices"][0]["message"]["content"] == "Hello there"
    # Azure's annotations are passed through.
    assert result["prompt_filter_results"][0]["content_filter_results"]["violence"]["filtered"] is False
    assert result["choices"][0]["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}


def test_deployment_name_cannot_change_the_url(upstream: FakeUpstream) -> None:
    api = AzureOpenAIAPI([say("ok")], api_key=KEY, deployments=["dep?x#y"]).install(upstream)
    run(upstream, lambda p: p.chat(body("dep?x#y"), None))
    assert upstream.last.path == "/openai/deployments/dep%3Fx%23y/chat/completions"
    assert upstream.last.query == "api-version=2024-10-21"
    assert len(api.calls) == 1


def test_base_url_copied_with_the_openai_path(upstream: FakeUpstream) -> None:
    fake(upstream, say("a"), say("b"))
    run(upstream, lambda p: p.chat(body(), None), base_url=upstream.url + "/openai/")
    run(upstream, lambda p: p.chat(body(), None), base_url=upstream.url + "/openai/v1", api_version="v1")
    assert [r.path for r in upstream.requests] == [CHAT_PATH, "/openai/v1/chat/completions"]


def test_v1_api(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("v1 says hi"), say("again"))
    result = run(upstream, lambda p: p.chat(body(), None), api_version="v1")
    request = upstream.last
    assert (request.path, request.query) == ("/openai/v1/chat/completions", "")
    assert request.json()["model"] == "chat"  # the deployment, in the body
    assert result["choices"][0]["message"]["content"] == "v1 says hi"
    error = failure(upstream, lambda p: p.chat(body("nope"), None), api_version="v1")
    assert (error.status, error.kind, error.code) == (404, "not_found", "DeploymentNotFound")
    assert len(api.calls) == 1


def test_entra_id_token(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("hi"), api_key=None, ad_token=TOKEN)
    run(upstream, lambda p: p.chat(body(), None), azure_ad_token=TOKEN)
    assert upstream.last.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in upstream.last.headers
    assert len(api.calls) == 1


def test_a_missing_model_is_a_bad_request(upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        run(upstream, lambda p: p.chat({"messages": [{"role": "user", "content": "x"}]}, None))
    assert (caught.value.kind, caught.value.param) == ("bad_request", "model")
    assert upstream.requests == []


@pytest.mark.parametrize(("deployment", "config", "renamed"), [
    ("o4-mini-prod", {}, True),                                     # the name rule
    ("chat", {}, False),
    ("thinker", {"reasoning_deployments": ["think*"]}, True),       # configured patterns
    ("o4-mini-prod", {"reasoning_deployments": ["think*"]}, False),  # a configured list replaces the rule
])
def test_reasoning_deployments_get_max_completion_tokens(upstream: FakeUpstream, deployment: str,
                                                         config: dict[str, Any], renamed: bool) -> None:
    api = fake(upstream, say("ok"))
    try:
        run(upstream, lambda p: p.chat(body(deployment, max_tokens=64), None), **config)
    except ProviderError as error:  # the fake refuses max_tokens for a reasoning model, as Azure does
        assert error.code == "unsupported_parameter" and not renamed
    sent = upstream.last.json()
    assert ("max_completion_tokens" in sent) is renamed and ("max_tokens" in sent) is not renamed
    assert len(api.calls) == (1 if renamed or DEPLOYMENTS[deployment] == "gpt-4o-2024-08-06" else 0)


# -- streams ---------------------------------------------------------------------------------


def test_stream_folds_the_prompt_filter_chunk(upstream: FakeUpstream) -> None:
    api = fake(upstream, call("get_weather", {"city": "Paris"}, text="Let me check."))
    chunks = run(upstream, lambda p: collect(p, body(stream=True, stream_options={"include_usage": True})))
    assert upstream.last.json()["stream_options"] == {"include_usage": True}
    assert len(api.calls) == 1
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["choices"] or chunk["usage"]  # no chunk without choices but the usage one
    assert chunks[0]["id"] and chunks[0]["prompt_filter_results"][0]["prompt_index"] == 0
    assert "prompt_filter_results" not in chunks[1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    arguments = "".join(tc["function"].get("arguments", "") for c in chunks if c["choices"]
                        for tc in c["choices"][0]["delta"].get("tool_calls") or ())
    assert (text, arguments) == ("Let me check.", '{"city":"Paris"}')
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 15


def test_stream_options_left_out_for_api_versions_before_2024_09_01(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("old"), api_version="2024-06-01")
    chunks = run(upstream, lambda p: collect(p, body(stream=True, stream_options={"include_usage": True})),
                 api_version="2024-06-01")
    assert upstream.last.query == "api-version=2024-06-01"
    assert "stream_options" not in upstream.last.json()
    assert len(api.calls) == 1 and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_content_filter_finish_reason_passes_through(upstream: FakeUpstream) -> None:
    filtered = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"}}
    events = stream_chunks({"id": "chatcmpl-1", "created": 1, "model": "gpt-4o", "system_fingerprint": "fp",
                            "prompt_filter_results": [], "usage": None,
                            "choices": [{"finish_reason": "content_filter",
                                         "message": {"content": "Partial", "tool_calls": None}}]}, False)
    events[-1]["choices"][0]["content_filter_results"] = filtered
    upstream.sse(CHAT_PATH, events, done=True)
    chunks = run(upstream, lambda p: collect(p, body(stream=True)))
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert chunks[-1]["choices"][0]["content_filter_results"] == filtered


# -- errors -----------------------------------------------------------------------------------


CONTENT_FILTER_ERROR = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": True, "severity": "high"},
        "jailbreak": {"filtered": True, "detected": True}}}}}


@pytest.mark.parametrize("stream", [False, True])
def test_content_filter_refusal(upstream: FakeUpstream, stream: bool) -> None:
    upstream.add(CHAT_PATH, json_reply(CONTENT_FILTER_ERROR, 400))
    action = (lambda p: collect(p, body(stream=True))) if stream else (lambda p: p.chat(body(), None))
    error = failure(upstream, action)
    assert (error.status, error.kind, error.code) == (400, "content_filter", "content_filter")
    assert "content management policy" in error.message
    assert "violence (high)" in error.message and "jailbreak" in error.message and "hate" not in error.message


def test_content_filter_known_by_its_inner_code_alone(upstream: FakeUpstream) -> None:
    upstream.json(CHAT_PATH, {"error": {"code": "invalid_request_error", "message": "Blocked.",
                                        "inner_error": {"code": "ResponsibleAIPolicyViolation"}}}, status=400)
    error = failure(upstream, lambda p: p.chat(body(), None))
    assert (error.kind, error.code) == ("content_filter", "content_filter")


def test_content_filter_error_inside_a_stream(upstream: FakeUpstream) -> None:
    upstream.sse(CHAT_PATH, [openai_chunk({"role": "assistant", "content": "Once"}),
                             {"error": {"message": "Filtered mid-answer.", "code": None,
                                        "innererror": {"code": "ResponsibleAIPolicyViolation"}}}])
    error = failure(upstream, lambda p: collect(p, body(stream=True)))
    assert (error.kind, error.code) == ("content_filter", "content_filter")


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after-ms": "1500"}, "2"),                      # rounded up to whole seconds
    ({"retry-after": "6", "retry-after-ms": "5200"}, "6"),
    ({"retry-after-ms": "soon"}, None),
])
def test_rate_limit_and_its_retry_hint(upstream: FakeUpstream, headers: dict[str, str], expected: str | None) -> None:
    message = ("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
               "exceeded token rate limit of your current OpenAI S0 pricing tier.")
    upstream.json(CHAT_PATH, {"error": {"code": "429", "message": message}}, status=429, headers=headers)
    error = failure(upstream, lambda p: p.chat(body(), None))
    assert (error.status, error.kind, error.retry_after) == (429, "rate_limit", expected)
    assert error.code is None  # "429" says nothing the status does not
    assert message in error.message


def test_errors_keep_the_status_and_message_without_credentials(upstream: FakeUpstream) -> None:
    fake(upstream, api_key="another-key-0123456789")
    error = failure(upstream, lambda p: p.chat(body(), None))
    assert (error.status, error.kind) == (401, "authentication")
    assert "Access denied due to invalid subscription key" in error.message
    upstream.reset().json(CHAT_PATH, {"statusCode": 401, "message": f"Unauthorized. Token {TOKEN} has expired."},
                          status=401)
    error = failure(upstream, lambda p: p.chat(body(), None), azure_ad_token=TOKEN)
    assert "Unauthorized." in error.message and "[redacted]" in error.message
    upstream.reset()
    fake(upstream)
    error = failure(upstream, lambda p: p.chat(body(), None), api_version="2025-01-01-preview")
    assert (error.status, error.kind) == (404, "not_found") and "Resource not found" in error.message


# -- embeddings --------------------------------------------------------------------------------


def test_embeddings(upstream: FakeUpstream) -> None:
    fake(upstream)
    sent = {"model": "embed", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 3}
    result = run(upstream, lambda p: p.embeddings(sent, None))
    request = upstream.last
    assert (request.path, request.query) == ("/openai/deployments/embed/embeddings", "api-version=2024-10-21")
    assert request.json() == sent and request.headers["api-key"] == KEY
    assert [len(base64.b64decode(item["embedding"])) for item in result["data"]] == [12, 12]
    run(upstream, lambda p: p.embeddings({"model": "embed", "input": "a"}, None), api_version="v1")
    assert upstream.last.path == "/openai/v1/embeddings" and upstream.last.json()["model"] == "embed"


# -- through a gateway, with the SDKs as clients -------------------------------------------------


def test_through_the_gateway_with_both_sdks(upstream: FakeUpstream) -> None:
    api = fake(upstream, call("get_weather", {"city": "Paris"}), say("Sunny."), say("Streamed."), say("Claude-shaped."))
    config = {"providers": {"az": {"type": "azure-openai", "api_key": KEY, "base_url": upstream.url}},
              "models": {"smart": {"target": {"provider": "az", "model": "chat"}}}}
    with GatewayServer(config) as gateway:
        client = gateway.openai_client(api_key="client-key-never-forwarded")
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="smart", messages=messages, tools=tools)
        tool_call = first.choices[0].message.tool_calls[0]
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"}]
        second = client.chat.completions.create(model="az/chat", messages=messages, tools=tools)
        assert second.choices[0].message.content == "Sunny."
        stream = client.chat.completions.create(model="smart", messages=messages[:1], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Streamed."
        claude = gateway.anthropic_client().messages.create(model="smart", max_tokens=50,
                                                            messages=[{"role": "user", "content": "hi"}])
        assert claude.content[0].text == "Claude-shaped."
    assert [c.last_tool_result.text if c.last_tool_result else None for c in api.calls] == [None, "sunny", None, None]
    assert not api.refusals
    for request in upstream.requests:
        assert request.path == CHAT_PATH and request.headers["api-key"] == KEY
        assert "client-key-never-forwarded" not in str(request.headers)
    assert upstream.requests[2].json()["stream_options"] == {"include_usage": True}  # the gateway's own


def test_enabled_from_the_environment_only_with_an_endpoint(upstream: FakeUpstream,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """No config file: the key alone is not enough (there is no default
    endpoint to send it to), and the gateway still starts."""
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with GatewayServer(auto_providers=True, environ={"AZURE_OPENAI_API_KEY": KEY}) as gateway:
        assert "azure-openai" not in gateway.gateway.providers
    api = fake(upstream, say("from the environment"))
    environ = {"AZURE_OPENAI_API_KEY": KEY, "AZURE_OPENAI_ENDPOINT": upstream.url}
    with GatewayServer(auto_providers=True, environ=environ) as gateway:
        reply = gateway.openai_client().chat.completions.create(
            model="azure-openai/chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "from the environment"
    assert len(api.calls) == 1 and upstream.last.headers["api-key"] == KEY
