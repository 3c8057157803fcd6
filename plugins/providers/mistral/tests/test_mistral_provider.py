"""The Mistral adapter's own rules, over real sockets: what it sends (path,
auth, each rename, drop and refusal, the tool-call ids), how it reads
Mistral's answers (thinking chunks, ``model_length``, usage on the last
chunk) and errors, and what its capability table refuses."""

from __future__ import annotations

from typing import Any

import pytest
from portway_mistral import MistralConfig, MistralProvider
from portway_mistral.ids import digest_id, is_mistral_id, map_tool_call_ids
from portway_mistral.testing import MistralAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import call, say

KEY = "mistral-test-key-0123456789"
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "chat.completion", "created": 1767225600, "model": "mistral-small-latest",
            "choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": None, "prefix": False, **message},
                         "finish_reason": finish}], "usage": USAGE}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 1767225600,
            "model": "mistral-small-latest", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra}


def make(base_url: str, **config: Any) -> MistralProvider:
    settings = MistralConfig.model_validate({"type": "mistral", "api_key": KEY, "base_url": base_url, **config})
    return MistralProvider("mis", settings)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hi"}], **extra}


def chat(provider: MistralProvider, sent: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(sent, None))


def stream(provider: MistralProvider, sent: dict[str, Any]) -> tuple[list[dict[str, Any]], ProviderError | None]:
    async def collect(p: MistralProvider) -> tuple[list[dict[str, Any]], ProviderError | None]:
        chunks: list[dict[str, Any]] = []
        try:
            async for item in p.chat_stream(sent, None):
                chunks.append(item)
        except ProviderError as error:
            return chunks, error
        return chunks, None

    return run_provider(provider, collect)


def chat_error(provider: MistralProvider, sent: dict[str, Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        chat(provider, sent)
    return info.value


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    return fake_upstream


@pytest.fixture
def mis(upstream: FakeUpstream) -> MistralProvider:
    return make(upstream.url + "/v1")


# -- configuration -----------------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "env-mistral-key-42424242")
    provider = MistralProvider("mistral", MistralConfig(type="mistral"))
    assert provider.base_url == "https://api.mistral.ai/v1"
    assert provider.auth_headers() == {"authorization": "Bearer env-mistral-key-42424242"}
    assert {"mistral-large-latest", "mistral-embed", "magistral-medium-latest"} <= set(provider.models())


# -- the request -------------------------------------------------------------------------------


def test_path_auth_and_renames(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, completion({"content": "Hello"}))
    sent = body(max_completion_tokens=50, seed=7, user="u-1", service_tier="auto", store=False, top_p=0.5,
                safe_prompt=True, prompt_mode="reasoning")
    result = chat(mis, sent)
    assert result["choices"][0]["message"]["content"] == "Hello"
    request = upstream.last
    assert (request.method, request.path) == ("POST", CHAT)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    wire = request.json()
    assert wire["max_tokens"] == 50 and "max_completion_tokens" not in wire
    assert wire["random_seed"] == 7 and "seed" not in wire
    assert not {"user", "service_tier", "store"} & set(wire)
    assert (wire["top_p"], wire["safe_prompt"], wire["prompt_mode"]) == (0.5, True, "reasoning")  # passed through
    assert "random_seed" not in sent and sent["seed"] == 7  # the caller's body is untouched


def test_stream_sends_no_stream_options(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.sse(CHAT, [chunk({"role": "assistant", "content": "Hi"}, "stop", usage=USAGE)], done=True)
    chunks, error = stream(mis, body(stream=True, stream_options={"include_usage": True}))
    assert error is None and chunks
    assert "stream_options" not in upstream.last.json()


def test_required_tool_choice_is_sent_as_any(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, completion({"content": "ok"}))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    chat(mis, body(tools=tools, tool_choice="required"))
    assert upstream.last.json()["tool_choice"] == "any"
    named = {"type": "function", "function": {"name": "f"}}
    chat(mis, body(tools=tools, tool_choice=named))
    assert upstream.last.json()["tool_choice"] == named


def test_configured_safe_prompt_and_prompt_mode(upstream: FakeUpstream) -> None:
    upstream.json(CHAT, completion({"content": "ok"}))
    provider = make(upstream.url + "/v1", safe_prompt=True, prompt_mode="reasoning")
    chat(provider, body())
    wire = upstream.last.json()
    assert (wire["safe_prompt"], wire["prompt_mode"]) == (True, "reasoning")
    chat(make(upstream.url + "/v1", safe_prompt=True), body(safe_prompt=False))
    assert upstream.last.json()["safe_prompt"] is False  # the request's own value wins
    chat(make(upstream.url + "/v1"), body())
    assert not {"safe_prompt", "prompt_mode"} & set(upstream.last.json())


def test_messages_carry_only_what_mistral_takes(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, completion({"content": "ok"}))
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ada"},
        {"role": "assistant", "content": "Hello", "reasoning_content": "greet back", "refusal": None,
         "annotations": [], "name": "bot"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    chat(mis, body(messages=messages))
    assert upstream.last.json()["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]


@pytest.mark.parametrize("param", ["logprobs", "top_logprobs", "logit_bias"])
def test_refused_parameters_never_reach_mistral(upstream: FakeUpstream, mis: MistralProvider, param: str) -> None:
    value = {"logprobs": True, "top_logprobs": 3, "logit_bias": {"12": -10}}[param]
    with pytest.raises(PortwayError) as info:
        chat(mis, body(**{param: value}))
    assert info.value.kind == "bad_request" and info.value.param == param
    assert upstream.requests == []


# -- tool-call ids ----------------------------------------------------------------------------------


def conversation(first: str, second: str) -> list[dict[str, Any]]:
    def calls(*ids: str) -> list[dict[str, Any]]:
        return [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]

    return [{"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": calls(first, second)},
            {"role": "tool", "tool_call_id": first, "content": "one"},
            {"role": "tool", "tool_call_id": second, "content": "two"}]


def test_foreign_tool_call_ids_are_mapped_consistently(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, completion({"content": "done"}))
    sent = body(messages=conversation("call_Wq1x2PLfJd3RkQz8yMnB4", "toolu_01A09q90qw90lq917835lq9"))
    chat(mis, sent)
    chat(mis, sent)
    first, again = (r.json()["messages"] for r in upstream.requests)
    assert first == again  # the same client ids map to the same Mistral ids, request after request
    ids = [c["id"] for c in first[1]["tool_calls"]]
    assert all(is_mistral_id(i) for i in ids) and ids[0] != ids[1]
    assert [first[2]["tool_call_id"], first[3]["tool_call_id"]] == ids  # each result still answers its call
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_Wq1x2PLfJd3RkQz8yMnB4"  # the caller's body untouched


def test_mistral_ids_round_trip_unchanged(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, completion({"content": "done"}))
    chat(mis, body(messages=conversation("D681PevKs", "call_abc")))
    messages = upstream.last.json()["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "D681PevKs" and messages[2]["tool_call_id"] == "D681PevKs"
    assert messages[1]["tool_calls"][1]["id"] == messages[3]["tool_call_id"] == digest_id("call_abc")


def test_a_digest_never_takes_an_id_already_used() -> None:
    taken = digest_id("call_abc")  # a Mistral id in the history that happens to equal call_abc's digest
    mapped = map_tool_call_ids(conversation(taken, "call_abc"))
    ids = [c["id"] for c in mapped[1]["tool_calls"]]
    assert ids[0] == taken and ids[1] != taken and is_mistral_id(ids[1])
    assert mapped[3]["tool_call_id"] == ids[1]


def test_tool_loop_with_foreign_ids_through_the_gateway(upstream: FakeUpstream, gateway_server: Any) -> None:
    """Mistral's own rule, enforced by the fake: a conversation whose tool calls came from another provider."""
    api = MistralAPI([say("It is sunny.")], api_key=KEY).install(upstream)
    gateway = gateway_server({"providers": {"mis": {"type": "mistral", "api_key": KEY,
                                                    "base_url": upstream.url + "/v1"}}})
    client = gateway.openai_client()
    reply = client.chat.completions.create(model="mis/mistral-small-latest", messages=conversation(  # type: ignore[arg-type]
        "call_Wq1x2PLfJd3RkQz8yMnB4", "toolu_01A09q90qw90lq917835lq9"))
    assert reply.choices[0].message.content == "It is sunny."
    assert api.refusals == []


def test_mistral_tool_call_ids_reach_the_client_as_they_are(upstream: FakeUpstream, gateway_server: Any) -> None:
    api = MistralAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key=KEY).install(upstream)
    gateway = gateway_server({"providers": {"mis": {"type": "mistral", "api_key": KEY,
                                                    "base_url": upstream.url + "/v1"}}})
    client = gateway.openai_client()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    first = client.chat.completions.create(model="mis/mistral-small-latest", tools=tools,  # type: ignore[list-item]
                                           messages=[{"role": "user", "content": "Weather?"}])
    [tool_call] = first.choices[0].message.tool_calls or []
    assert tool_call.id == "T00000001"
    client.chat.completions.create(model="mis/mistral-small-latest", tools=tools, messages=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather?"}, first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "24 degrees"}])
    assert api.calls[1].body["messages"][2]["tool_call_id"] == "T00000001"
    assert api.refusals == []


# -- the answer ------------------------------------------------------------------------------------


def test_thinking_chunks_become_reasoning_content(upstream: FakeUpstream, mis: MistralProvider) -> None:
    content = [{"type": "thinking", "thinking": [{"type": "text", "text": "Paris is "}, {"type": "text", "text": "the capital."}]},
               {"type": "text", "text": "Paris."}]
    upstream.json(CHAT, completion({"content": content}))
    message = chat(mis, body(model="magistral-medium-latest"))["choices"][0]["message"]
    assert message["content"] == "Paris."
    assert message["reasoning_content"] == "Paris is the capital."


def test_model_length_is_length(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, completion({"content": "Par"}, finish="model_length"))
    assert chat(mis, body())["choices"][0]["finish_reason"] == "length"


def test_stream_usage_thinking_and_tool_call_index(upstream: FakeUpstream, mis: MistralProvider) -> None:
    call_delta = {"id": "D681PevKs", "function": {"name": "f", "arguments": "{}"}}  # no index, as Mistral may send
    upstream.sse(CHAT, [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}]}),
        chunk({"content": "Hi"}),
        chunk({"content": "", "tool_calls": [call_delta]}),
        chunk({"content": ""}, "tool_calls", usage=USAGE),
    ], done=True)
    chunks, error = stream(mis, body(stream=True))
    assert error is None
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[1] == {"content": None, "reasoning_content": "hmm"}
    assert deltas[3]["tool_calls"][0]["index"] == 0
    # The usage stays on the finish chunk, as Mistral sent it: the gateway gives it to a client that
    # asked for it on a chunk of its own (tests/test_gateway_openai.py).
    finish = chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "tool_calls" and finish["usage"] == USAGE


def test_error_event_in_a_stream(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.sse(CHAT, [chunk({"role": "assistant", "content": "Hi"}),
                        {"object": "error", "message": f"Internal error for key {KEY}", "type": "internal_server_error",
                         "param": None, "code": "1000"}])
    chunks, error = stream(mis, body(stream=True))
    assert len(chunks) == 1
    assert error is not None and error.kind == "server_error" and "Internal error" in error.message
    assert KEY not in error.message


# -- errors --------------------------------------------------------------------------------------------


def test_validation_error_names_the_field(upstream: FakeUpstream, mis: MistralProvider) -> None:
    details = [{"type": "extra_forbidden", "loc": ["body", "frobnicate"], "msg": "Extra inputs are not permitted",
                "input": 1}]
    upstream.json(CHAT, {"object": "error", "message": {"detail": details}, "type": "invalid_request_error",
                         "param": None, "code": None}, status=422)
    error = chat_error(mis, body(frobnicate=1))
    assert (error.kind, error.status) == ("bad_request", 422)
    assert "body.frobnicate: Extra inputs are not permitted" in error.message
    assert error.code == "invalid_request_error"


def test_bare_validation_detail(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.json(CHAT, {"detail": [{"loc": ["body", "messages", 0, "role"], "msg": "field required",
                                     "type": "missing"}]}, status=422)
    assert "body.messages.0.role: field required" in chat_error(mis, body()).message


def test_tool_call_id_error_keeps_message_and_code(upstream: FakeUpstream, mis: MistralProvider) -> None:
    message = "Tool call id was call_x but must be a-z, A-Z, 0-9, with a length of 9."
    upstream.json(CHAT, {"object": "error", "message": message, "type": "invalid_function_call", "param": None,
                         "code": "3280"}, status=400)
    error = chat_error(mis, body())
    assert error.kind == "bad_request" and message in error.message and error.code == "invalid_function_call"


@pytest.mark.parametrize("answer", [{"message": "Unauthorized", "request_id": "abc"}, {"detail": "Unauthorized"}])
def test_gateway_401_shapes(upstream: FakeUpstream, mis: MistralProvider, answer: dict[str, Any]) -> None:
    upstream.json(CHAT, answer, status=401)
    error = chat_error(mis, body())
    assert error.kind == "authentication" and error.message.endswith("Unauthorized")


def test_429_keeps_retry_after_and_never_echoes_the_key(upstream: FakeUpstream, mis: MistralProvider) -> None:
    upstream.add(CHAT, json_reply({"message": f"Requests rate limit exceeded for {KEY}"}, 429, {"retry-after": "3"}))
    error = chat_error(mis, body())
    assert (error.kind, error.retry_after) == ("rate_limit", "3")
    assert "Requests rate limit exceeded" in error.message and KEY not in error.message and KEY not in repr(error)


# -- capabilities ------------------------------------------------------------------------------------------


def test_capability_table_refuses_before_sending(upstream: FakeUpstream, mis: MistralProvider) -> None:
    image = [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(PortwayError) as info:
        chat(mis, body(model="codestral-latest", messages=[{"role": "user", "content": image}]))
    assert info.value.param == "messages[0].content[1]"
    with pytest.raises(PortwayError) as info:
        chat(mis, body(model="mistral-embed", tools=[{"type": "function", "function": {"name": "f"}}]))
    assert info.value.param == "tools"
    assert upstream.requests == []
    upstream.json(CHAT, completion({"content": "A cat."}))
    chat(mis, body(model="pixtral-large-latest", messages=[{"role": "user", "content": image}]))
    assert upstream.last.json()["messages"][0]["content"] == image


# -- embeddings -------------------------------------------------------------------------------------------


def test_embeddings_rename_dimensions_and_drop_user(upstream: FakeUpstream, mis: MistralProvider) -> None:
    answer = {"id": "emb-1", "object": "list", "model": "codestral-embed",
              "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5]}],
              "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    upstream.json(EMBED, answer)
    sent = {"model": "codestral-embed", "input": ["a"], "dimensions": 256, "user": "u-1", "encoding_format": "float"}
    result = run_provider(mis, lambda p: p.embeddings(sent, None))
    assert result["data"][0]["embedding"] == [0.5, -0.5]
    assert upstream.last.path == EMBED
    assert upstream.last.json() == {"model": "codestral-embed", "input": ["a"], "output_dimension": 256,
                                    "encoding_format": "float"}
