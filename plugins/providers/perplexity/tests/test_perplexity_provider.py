"""The Perplexity adapter against the Sonar fake (``portway_perplexity.testing``)
over a real socket: citations and search results kept, turns made to
alternate, what it refuses or drops, errors."""

from __future__ import annotations

from typing import Any

import pytest
from portway_perplexity import PerplexityProvider
from portway_perplexity.testing import ALTERNATE, CITATIONS, SEARCH_RESULTS, PerplexityAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import say

KEY = "pplx-test-secret-0123456789"


class QuirklessProvider(OpenAICompatibleProvider):
    """Perplexity's URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "perplexity-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = PerplexityProvider) -> Any:
    return cls("pplx", ProviderConfig(type=cls.type, api_key=KEY, base_url=upstream.url))


def serve(upstream: FakeUpstream, *turns: Any) -> PerplexityAPI:
    return PerplexityAPI(list(turns) or [say("Sunny.")], api_key=KEY, chat_path="/chat/completions").install(upstream)


def chat(provider: Any, request: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(request, None))


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "sonar", "messages": list(messages) or [{"role": "user", "content": "Weather in Paris?"}],
            **extra}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERPLEXITY_API_KEY", "pplx-from-env-987654")
    provider = PerplexityProvider("pplx", ProviderConfig(type="perplexity"))
    assert provider.base_url == "https://api.perplexity.ai"  # no /v1
    assert provider.auth_headers() == {"authorization": "Bearer pplx-from-env-987654"}


def test_citations_and_search_results_are_kept(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("Sunny."), say("Sunny."))
    answer = chat(adapter(fake_upstream), body())
    assert (answer["citations"], answer["search_results"]) == (CITATIONS, SEARCH_RESULTS)
    assert fake_upstream.last.path == "/chat/completions"
    assert fake_upstream.last.headers["authorization"] == f"Bearer {KEY}"
    chunks = run_provider(adapter(fake_upstream), lambda p: collect_stream(p, body(stream=True)))
    assert all(chunk["citations"] == CITATIONS for chunk in chunks)


def test_search_parameters_pass_through(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    search = {"search_domain_filter": ["wikipedia.org"], "search_recency_filter": "week",
              "web_search_options": {"search_context_size": "high"}, "return_related_questions": True}
    chat(adapter(fake_upstream), body(**search, max_completion_tokens=300, seed=1, user="u", tool_choice="none"))
    sent = fake_upstream.last.json()
    assert {key: sent[key] for key in search} == search
    assert sent["max_tokens"] == 300 and not {"max_completion_tokens", "seed", "user", "tool_choice"} & set(sent)


def test_turns_are_made_to_alternate(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    messages = [{"role": "developer", "content": "Cite sources."}, {"role": "user", "content": "Context: Paris."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}]
    chat(adapter(fake_upstream), body(*messages))
    assert not api.refusals
    assert fake_upstream.last.json()["messages"] == [
        {"role": "system", "content": "Cite sources."},
        {"role": "user", "content": [{"type": "text", "text": "Context: Paris."}, {"type": "text", "text": "Weather?"}]},
    ]
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream, QuirklessProvider), body(*messages[1:]))
    assert caught.value.status == 400 and ALTERNATE in caught.value.message


def test_two_strings_are_joined_as_one(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    chat(adapter(fake_upstream), body({"role": "user", "content": "A"}, {"role": "user", "content": "B"}))
    assert fake_upstream.last.json()["messages"] == [{"role": "user", "content": "A\n\nB"}]


@pytest.mark.parametrize(("extra", "param"), [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
    ({"logit_bias": {"1": 1}}, "logit_bias"),
    ({"n": 3}, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(**extra))
    assert (caught.value.status, caught.value.param) == (400, param)
    assert not fake_upstream.requests


def test_perplexity_has_no_json_object_mode(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError, match="json_object"):
        chat(adapter(fake_upstream, QuirklessProvider), body(response_format={"type": "json_object"}))


def test_errors_keep_the_message(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(401, f"Invalid API key {KEY}"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    assert (caught.value.status, caught.value.kind) == (401, "authentication")
    assert "Invalid API key" in caught.value.message and KEY not in caught.value.message


def test_no_embeddings(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError, match="does not support embeddings"):
        run_provider(adapter(fake_upstream), lambda p: p.embeddings({"model": "x", "input": "hi"}, None))
