"""The nvidia-nim adapter against the fake NIM API on a real socket: the URL
and key it sends, the token-limit rename, problem-details errors, and the
embeddings ``input_type``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_nvidia_nim import NvidiaNimConfig, NvidiaNimProvider
from portway_nvidia_nim.testing import NvidiaNimAPI

from portway.errors import ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

KEY = "nvapi-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]
MODEL = "meta/llama-3.3-70b-instruct"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream, **config: Any) -> NvidiaNimProvider:
    settings = NvidiaNimConfig.model_validate({"type": "nvidia-nim", "api_key": KEY,
                                               "base_url": upstream.url + "/v1", **config})
    return NvidiaNimProvider("nim", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def embed(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    return run_provider(provider(upstream, **config), lambda p: p.embeddings(body, None))


def test_defaults() -> None:
    assert NvidiaNimProvider.default_base_url == "https://integrate.api.nvidia.com/v1"
    assert (NvidiaNimProvider.env_key, NvidiaNimProvider.env_base_url) == ("NVIDIA_API_KEY", "NVIDIA_BASE_URL")


def test_url_key_and_token_limit_renamed(upstream: FakeUpstream) -> None:
    api = NvidiaNimAPI([say("Hello")], api_key=KEY).install(upstream)
    chat(upstream, {"model": MODEL, "messages": HELLO, "max_completion_tokens": 64})
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert api.calls[0].body["max_tokens"] == 64 and "max_completion_tokens" not in api.calls[0].body


@pytest.mark.parametrize("status, kind", [(401, "authentication"), (403, "permission"), (404, "not_found"),
                                          (429, "rate_limit"), (500, "server_error")])
def test_problem_details_read(upstream: FakeUpstream, status: int, kind: str) -> None:
    upstream.answer_all(NvidiaNimAPI([]).error(status, f"Authorization failed for {KEY}"))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": MODEL, "messages": HELLO})
    error = caught.value
    assert (error.status, error.kind) == (status, kind)
    assert "Authorization failed" in error.message and KEY not in error.message
    assert "about:blank" not in error.message


def test_title_only_problem(upstream: FakeUpstream) -> None:
    upstream.answer_all(json_reply({"status": 404, "title": "Not Found"}, 404))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": "nope", "messages": HELLO})
    assert caught.value.message.endswith(": Not Found")


def test_self_hosted_openai_shape_still_read(upstream: FakeUpstream) -> None:
    body = {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}
    upstream.answer_all(json_reply(body, 404))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": "x", "messages": HELLO})
    assert caught.value.message.endswith("The model `x` does not exist.")


def test_embeddings_input_type_from_config(upstream: FakeUpstream) -> None:
    api = NvidiaNimAPI([], api_key=KEY).install(upstream)
    body = {"model": "nvidia/nv-embedqa-e5-v5", "input": ["a question"]}
    with pytest.raises(ProviderError) as caught:
        embed(upstream, body)
    assert caught.value.status == 400 and "input_type" in caught.value.message
    answer = embed(upstream, body, embeddings_input_type="query")
    assert len(answer["data"]) == 1 and api.embedding_requests[-1]["input_type"] == "query"
    embed(upstream, {**body, "input_type": "passage"}, embeddings_input_type="query")
    assert api.embedding_requests[-1]["input_type"] == "passage"  # the client's own wins


def test_config_rejects_unknown_input_type() -> None:
    with pytest.raises(ValueError):
        NvidiaNimConfig.model_validate({"type": "nvidia-nim", "embeddings_input_type": "document"})
