"""The databricks adapter against the fake Databricks workspace on a real
socket: where the workspace URL comes from, the token, each quirk, the
reasoning content parts (whole and streamed), and Databricks's errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_databricks import DatabricksConfig, DatabricksProvider, serving_url
from portway_databricks.testing import DatabricksAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider
from portway.testing.gateway import GatewayServer
from portway.testing.providers import collect_stream
from portway.testing.script import say

TOKEN = "dapi-test-secret-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hi"}]
ENDPOINT = "databricks-claude-sonnet-4"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream, **config: Any) -> DatabricksProvider:
    config = {"host": upstream.url, **config}
    settings = DatabricksConfig.model_validate({"type": "databricks", "api_key": TOKEN, **config})
    return DatabricksProvider("dbx", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def fake(upstream: FakeUpstream, *steps: Any) -> DatabricksAPI:
    return DatabricksAPI(list(steps) or [say("Hello")], api_key=TOKEN).install(upstream)


@pytest.mark.parametrize("workspace, url", [
    ("https://dbc-a1b2c3d4-e5f6.cloud.databricks.com", "https://dbc-a1b2c3d4-e5f6.cloud.databricks.com/serving-endpoints"),
    ("adb-1234567890123456.7.azuredatabricks.net/", "https://adb-1234567890123456.7.azuredatabricks.net/serving-endpoints"),
    ("https://proxy.example.com/dbx/serving-endpoints", "https://proxy.example.com/dbx/serving-endpoints"),
])
def test_serving_url(workspace: str, url: str) -> None:
    assert serving_url(workspace) == url


def test_workspace_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "dbc-a1b2c3d4-e5f6.cloud.databricks.com")
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    p = DatabricksProvider("dbx", DatabricksConfig.model_validate({"type": "databricks"}))
    assert p.base_url == "https://dbc-a1b2c3d4-e5f6.cloud.databricks.com/serving-endpoints"
    assert p.auth_headers() == {"authorization": f"Bearer {TOKEN}"}


def test_no_workspace_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    assert DatabricksProvider.default_base_url is None
    with pytest.raises(PortwayError, match="DATABRICKS_HOST"):
        DatabricksProvider("dbx", DatabricksConfig.model_validate({"type": "databricks", "api_key": TOKEN}))


def test_enabled_from_environment_by_the_gateway(monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream) -> None:
    fake(upstream)
    monkeypatch.setenv("DATABRICKS_HOST", upstream.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    with GatewayServer(auto_providers=True) as server:
        answer = server.openai_client().chat.completions.create(model=f"databricks/{ENDPOINT}", messages=HELLO)
    assert answer.choices[0].message.content == "Hello"
    assert upstream.last.path == "/serving-endpoints/chat/completions"


def test_endpoint_as_model_token_and_renames(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": ENDPOINT, "max_completion_tokens": 99,
                    "messages": [{"role": "developer", "content": "Be brief."}, *HELLO]})
    assert upstream.last.path == "/serving-endpoints/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {TOKEN}"
    sent = api.calls[0].body
    assert sent["model"] == ENDPOINT and sent["max_tokens"] == 99 and "max_completion_tokens" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_reasoning_parts_whole_and_streamed(upstream: FakeUpstream) -> None:
    fake(upstream, say("42", reasoning="Six sevens."), say("42", reasoning="Six sevens."))
    message = chat(upstream, {"model": ENDPOINT, "messages": HELLO})["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("42", "Six sevens.")
    chunks = run_provider(provider(upstream), lambda p: collect_stream(p, {"model": ENDPOINT, "messages": HELLO,
                                                                           "stream": True}))
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Six sevens."
    assert "".join(d.get("content") or "" for d in deltas) == "42"
    assert all(not isinstance(d.get("content"), list) for d in deltas)


def test_reasoning_not_sent_back(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    history = [*HELLO, {"role": "assistant", "content": "42", "reasoning_content": "Six sevens."},
               {"role": "user", "content": "Again"}]
    chat(upstream, {"model": ENDPOINT, "messages": history})
    assert "reasoning_content" not in api.calls[0].body["messages"][1]


@pytest.mark.parametrize("status, kind, code", [(401, "authentication", "UNAUTHENTICATED"),
                                                (404, "not_found", "RESOURCE_DOES_NOT_EXIST"),
                                                (429, "rate_limit", "REQUEST_LIMIT_EXCEEDED")])
def test_error_code_and_message(upstream: FakeUpstream, status: int, kind: str, code: str) -> None:
    upstream.answer_all(DatabricksAPI([]).error(status, f"Token {TOKEN} was refused"))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": ENDPOINT, "messages": HELLO})
    error = caught.value
    assert (error.status, error.kind, error.code) == (status, kind, code)
    assert "was refused" in error.message and TOKEN not in error.message


def test_embeddings(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    answer = run_provider(provider(upstream), lambda p: p.embeddings({"model": "databricks-gte-large-en",
                                                                      "input": ["a", "b"]}, None))
    assert len(answer["data"]) == 2 and upstream.last.path == "/serving-endpoints/embeddings"
    assert api.embedding_requests[0]["model"] == "databricks-gte-large-en"


def test_anthropic_client_round_trip(upstream: FakeUpstream) -> None:
    """An Anthropic SDK client on /v1/messages: its system prompt reaches the
    endpoint as a system message, and the reasoning parts come back as a
    thinking block before the text."""
    api = fake(upstream, say("42", reasoning="Six sevens."))
    config = {"providers": {"dbx": {"type": "databricks", "api_key": TOKEN, "host": upstream.url}}}
    with GatewayServer(config) as server:
        answer = server.anthropic_client().messages.create(
            model=f"dbx/{ENDPOINT}", max_tokens=200, system="Be brief.",
            messages=[{"role": "user", "content": "Six times seven?"}])
    assert [block.type for block in answer.content] == ["thinking", "text"]
    assert (answer.content[0].thinking, answer.content[1].text) == ("Six sevens.", "42")
    sent = api.calls[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."} and sent["max_tokens"] == 200
    assert upstream.last.path == "/serving-endpoints/chat/completions"
