"""The watsonx adapter's own rules, over real sockets: the IAM exchange (the
form, the cache, one exchange under concurrency, a refresh near expiry, a new
token after a 401), the region's host, the version query, the body's
renames, the answer's mapping, and watsonx's error shape."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any
from urllib.parse import parse_qs

import pytest
from portway_watsonx import DEFAULT_VERSION, WatsonxConfig, WatsonxProvider
from portway_watsonx.iam import IAMTokens, Token
from portway_watsonx.testing import CHAT_PATH, EMBEDDINGS_PATH, IAM_PATH, STREAM_PATH, WatsonxAPI, watsonx_error

from portway import serialization
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Reply, json_reply, run_provider
from portway.testing.openai_chat import vector_of
from portway.testing.script import call, say

KEY = "ibm-test-apikey-0123456789"
PROJECT = "p-0123456789"
USAGE = {"completion_tokens": 2, "prompt_tokens": 9, "total_tokens": 11}


def make(upstream: FakeUpstream, **config: Any) -> WatsonxProvider:
    settings = WatsonxConfig.model_validate({"type": "watsonx", "api_key": KEY, "base_url": upstream.url,
                                             "iam_url": upstream.url + IAM_PATH, "project_id": PROJECT, **config})
    return WatsonxProvider("wx", settings)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "ibm/granite-3-3-8b-instruct", "messages": [{"role": "user", "content": "Hi"}], **extra}


def chat(provider: WatsonxProvider, sent: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(sent, None))


def chat_error(provider: WatsonxProvider, sent: dict[str, Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        chat(provider, sent)
    return info.value


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    return fake_upstream


def requests_to(upstream: FakeUpstream, path: str) -> list[Any]:
    return [r for r in upstream.requests if r.path == path]


# -- configuration ------------------------------------------------------------------------------


def test_region_picks_the_host_and_env_supplies_key_and_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATSONX_APIKEY", "env-ibm-apikey-42424242")
    monkeypatch.setenv("WATSONX_PROJECT_ID", "env-project")
    provider = WatsonxProvider("wx", WatsonxConfig(type="watsonx"))
    assert provider.base_url == "https://us-south.ml.cloud.ibm.com"
    assert provider.scope == {"project_id": "env-project"} and provider.api_key == "env-ibm-apikey-42424242"
    assert provider.auth_headers() == {}  # the key goes to IAM only
    assert WatsonxProvider.env_base_url == "WATSONX_URL"
    other = WatsonxProvider("wx", WatsonxConfig(type="watsonx", region="eu-de", space_id="s-1"))
    assert other.base_url == "https://eu-de.ml.cloud.ibm.com" and other.scope == {"space_id": "s-1"}


def test_scope_is_required_and_single(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATSONX_PROJECT_ID", raising=False)
    with pytest.raises(PortwayError, match="project_id"):
        WatsonxProvider("wx", WatsonxConfig(type="watsonx", api_key=KEY))
    with pytest.raises(ValueError, match="not both"):
        WatsonxConfig(type="watsonx", project_id="p", space_id="s")


# -- the request ----------------------------------------------------------------------------------


def test_iam_exchange_then_chat_request(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([say("Hello."), say("Again.")], api_key=KEY, project_id=PROJECT).install(upstream)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    sent = body(messages=[{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                          {"role": "user", "content": "Hi"}],
                max_completion_tokens=50, tools=tools, tool_choice="required", user="u-1", parallel_tool_calls=True)
    provider = make(upstream)

    async def twice(p: WatsonxProvider) -> list[dict[str, Any]]:
        return [await p.chat(sent, None), await p.chat(body(), None)]

    first, _ = run_provider(provider, twice)
    assert first["choices"][0]["message"]["content"] == "Hello."
    assert (first["object"], first["model"]) == ("chat.completion", "ibm/granite-3-3-8b-instruct")
    [iam] = requests_to(upstream, IAM_PATH)  # one exchange for both requests
    assert iam.headers["content-type"] == "application/x-www-form-urlencoded"
    assert iam.headers["accept"] == "application/json"
    assert parse_qs(iam.body.decode()) == {"grant_type": ["urn:ibm:params:oauth:grant-type:apikey"], "apikey": [KEY]}
    chat_request = requests_to(upstream, CHAT_PATH)[0]
    assert parse_qs(chat_request.query) == {"version": [DEFAULT_VERSION]}
    assert chat_request.headers["authorization"] == f"Bearer {api.tokens[0]}"
    wire = chat_request.json()
    assert wire["model_id"] == "ibm/granite-3-3-8b-instruct" and wire["project_id"] == PROJECT
    assert not {"model", "stream", "max_completion_tokens", "tool_choice", "user", "parallel_tool_calls"} & set(wire)
    assert (wire["max_tokens"], wire["tool_choice_option"]) == (50, "required")
    assert wire["messages"][0] == {"role": "system", "content": "Be brief."}
    assert api.refusals == []


def test_named_tool_choice_and_space(upstream: FakeUpstream) -> None:
    WatsonxAPI([say("ok")], api_key=KEY, space_id="s-9").install(upstream)
    named = {"type": "function", "function": {"name": "f"}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    chat(make(upstream, project_id=None, space_id="s-9", api_version="2024-05-01"),
         body(tools=tools, tool_choice=named))
    request = requests_to(upstream, CHAT_PATH)[0]
    assert parse_qs(request.query) == {"version": ["2024-05-01"]}
    wire = request.json()
    assert wire["tool_choice"] == named and wire["space_id"] == "s-9" and "project_id" not in wire


def test_concurrent_requests_cause_one_exchange(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([say(f"answer {i}") for i in range(8)], api_key=KEY, project_id=PROJECT).install(upstream)
    api.iam_delay = 0.3  # every request arrives while the first exchange is under way

    async def many(p: WatsonxProvider) -> list[dict[str, Any]]:
        return await asyncio.gather(*(p.chat(body(), None) for _ in range(8)))

    answers = run_provider(make(upstream), many)
    assert len(answers) == 8 and api.token_exchanges == 1
    assert {r.headers["authorization"] for r in requests_to(upstream, CHAT_PATH)} == {f"Bearer {api.tokens[0]}"}


def test_token_refreshed_near_expiry() -> None:
    now = [1000.0]
    exchanges: list[int] = []

    async def exchange() -> Token:
        exchanges.append(1)
        return Token(f"t{len(exchanges)}", expiration=now[0] + 3600, lifetime=3600)

    async def scenario() -> list[str]:
        tokens = IAMTokens(exchange, clock=lambda: now[0])
        got = [await tokens.get()]
        now[0] += 3600 - 301  # more than five minutes left: still good
        got.append(await tokens.get())
        now[0] += 2  # inside the last five minutes: replaced
        got.append(await tokens.get())
        tokens.forget()
        got.append(await tokens.get())
        return got

    assert asyncio.run(scenario()) == ["t1", "t1", "t2", "t3"]


def test_a_401_drops_the_token(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([say("ok")], api_key=KEY, project_id=PROJECT)
    upstream.add(IAM_PATH, api._iam)
    upstream.add(CHAT_PATH, json_reply(watsonx_error(401, "Failed to authenticate the request due to an expired token"),
                                       401), api._chat)
    provider = make(upstream)

    async def twice(p: WatsonxProvider) -> Any:
        with pytest.raises(ProviderError) as info:
            await p.chat(body(), None)
        return info.value, await p.chat(body(), None)

    error, answer = run_provider(provider, twice)
    assert error.kind == "authentication" and "expired token" in error.message
    assert answer["choices"][0]["message"]["content"] == "ok"
    assert api.token_exchanges == 2
    for token in api.tokens:
        assert token not in error.message


def test_iam_refusing_the_key(upstream: FakeUpstream) -> None:
    WatsonxAPI([say("ok")], api_key="another-key-0123456789", project_id=PROJECT).install(upstream)
    error = chat_error(make(upstream), body())
    assert error.kind == "authentication" and "BXNIM0415E" in error.message
    assert KEY not in error.message and requests_to(upstream, CHAT_PATH) == []


# -- the answer ----------------------------------------------------------------------------------------


def test_stream_events_usage_last_and_time_limit(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([], api_key=KEY, project_id=PROJECT)
    upstream.add(IAM_PATH, api._iam)
    base = {"id": "c-1", "model_id": "ibm/granite-3-3-8b-instruct", "created": 1767225600}

    def event(n: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {**base, "choices": [{"index": 0, "finish_reason": finish, "delta": delta}], **extra}
        return f"id: {n}\nevent: message\ndata: {serialization.dumps_str(data)}\n\n".encode()

    upstream.add(STREAM_PATH, Reply(chunks=[event(1, {"role": "assistant", "content": ""}), event(2, {"content": "Hel"}),
                                            event(3, {"content": "lo"}, "time_limit", usage=USAGE)],
                                    content_type="text/event-stream"))

    async def collect(p: WatsonxProvider) -> list[dict[str, Any]]:
        return [c async for c in p.chat_stream(body(stream=True, stream_options={"include_usage": True}), None)]

    chunks = run_provider(make(upstream), collect)
    request = requests_to(upstream, STREAM_PATH)[0]
    assert request.headers["accept"] == "text/event-stream"
    assert not {"stream", "stream_options"} & set(request.json())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == base["model_id"] for c in chunks)
    *_, finish, usage = chunks
    assert finish["choices"][0]["finish_reason"] == "length" and "usage" not in finish
    assert usage == {"id": "c-1", "object": "chat.completion.chunk", "created": 1767225600,
                     "model": base["model_id"], "choices": [], "usage": USAGE}


def test_error_event_in_a_stream(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([], api_key=KEY, project_id=PROJECT)
    upstream.add(IAM_PATH, api._iam)
    upstream.sse(STREAM_PATH, [{"id": "c-1", "model_id": "m", "created": 1, "choices": [
        {"index": 0, "finish_reason": None, "delta": {"content": "Hi"}}]},
        ("error", watsonx_error(500, "Model inference failed"))])

    async def collect(p: WatsonxProvider) -> tuple[list[dict[str, Any]], ProviderError | None]:
        got: list[dict[str, Any]] = []
        try:
            async for c in p.chat_stream(body(stream=True), None):
                got.append(c)
        except ProviderError as exc:
            return got, exc
        return got, None

    chunks, error = run_provider(make(upstream), collect)
    assert len(chunks) == 1 and error is not None
    assert error.kind == "server_error" and "Model inference failed" in error.message


def test_tool_call_round_trip_through_the_gateway(upstream: FakeUpstream, gateway_server: Any) -> None:
    api = WatsonxAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key=KEY,
                     project_id=PROJECT).install(upstream)
    gateway = gateway_server({"providers": {"wx": {"type": "watsonx", "api_key": KEY, "base_url": upstream.url,
                                                   "iam_url": upstream.url + IAM_PATH, "project_id": PROJECT}}})
    client = gateway.openai_client()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    model = "wx/ibm/granite-3-3-8b-instruct"
    first = client.chat.completions.create(model=model, tools=tools,  # type: ignore[list-item]
                                           messages=[{"role": "user", "content": "Weather?"}])
    [tool_call] = first.choices[0].message.tool_calls or []
    second = client.chat.completions.create(model=model, tools=tools, messages=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather?"}, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "24 degrees"}])
    assert second.choices[0].message.content == "Sunny." and api.refusals == []


# -- errors and capabilities ----------------------------------------------------------------------------------


def test_error_shape(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([], api_key=KEY, project_id=PROJECT)
    upstream.add(IAM_PATH, api._iam)
    upstream.add(CHAT_PATH, json_reply(watsonx_error(429, "Token quota reached for the plan"), 429,
                                       {"retry-after": "9"}))
    error = chat_error(make(upstream), body())
    assert (error.kind, error.status, error.code, error.retry_after) == ("rate_limit", 429, "token_quota_reached", "9")
    assert "Token quota reached" in error.message


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
     "messages[0].content[0]"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
])
def test_refused_before_sending(upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(PortwayError) as info:
        chat(make(upstream), body(**extra))
    assert info.value.param == param and upstream.requests == []


# -- embeddings --------------------------------------------------------------------------------------------


def test_embeddings_request_and_answer(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([], api_key=KEY, project_id=PROJECT).install(upstream)
    sent = {"model": "ibm/slate-125m-english-rtrvr", "input": ["alpha", "beta gamma"], "user": "u-1"}
    result = run_provider(make(upstream), lambda p: p.embeddings(sent, None))
    request = requests_to(upstream, EMBEDDINGS_PATH)[0]
    assert parse_qs(request.query) == {"version": [DEFAULT_VERSION]}
    assert request.headers["authorization"] == f"Bearer {api.tokens[0]}"
    assert request.json() == {"model_id": "ibm/slate-125m-english-rtrvr", "inputs": ["alpha", "beta gamma"],
                              "project_id": PROJECT}
    assert [item["embedding"] for item in result["data"]] == [vector_of("alpha"), vector_of("beta gamma")]
    assert result["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert result["model"] == "ibm/slate-125m-english-rtrvr"


def test_embeddings_base64_and_malformed(upstream: FakeUpstream) -> None:
    api = WatsonxAPI([], api_key=KEY, project_id=PROJECT)
    upstream.add(IAM_PATH, api._iam)
    upstream.add(EMBEDDINGS_PATH, json_reply({"model_id": "m", "results": [{"embedding": [0.5, -0.25]}],
                                              "input_token_count": 1}),
                 json_reply({"model_id": "m", "results": [], "input_token_count": 1}))
    provider = make(upstream)

    async def both(p: WatsonxProvider) -> Any:
        encoded = await p.embeddings({"model": "m", "input": "x", "encoding_format": "base64"}, None)
        with pytest.raises(ProviderError) as info:
            await p.embeddings({"model": "m", "input": "x"}, None)
        return encoded, info.value

    encoded, error = run_provider(provider, both)
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack("<2f", raw)) == [0.5, -0.25]
    assert error.status == 502 and "results" in error.message


@pytest.mark.parametrize(("extra", "param"), [({"input": [[1, 2, 3]]}, "input"), ({"dimensions": 64}, "dimensions")])
def test_embeddings_refused(upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(PortwayError) as info:
        run_provider(make(upstream), lambda p: p.embeddings({"model": "m", "input": "x", **extra}, None))
    assert info.value.param == param and upstream.requests == []
