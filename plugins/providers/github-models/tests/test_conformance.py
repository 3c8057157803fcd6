"""The github-models provider passes the conformance kit, against the fake GitHub Models API."""

from portway_github_models.testing import GitHubModelsAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "github_pat_conformance_0123456789"

CONFORMANCE = Conformance(
    provider="github-models",
    config=lambda url: {"type": "github-models", "api_key": KEY, "base_url": url + "/inference"},
    fake=lambda script: GitHubModelsAPI(script, api_key=KEY),
    model="openai/gpt-4.1-mini",
    features=FEATURES - {"embeddings"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "refused", "logprobs": "refused", "logit_bias": "refused",
            "user": "dropped", "parallel_tool_calls": "dropped", "tool_choice": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
