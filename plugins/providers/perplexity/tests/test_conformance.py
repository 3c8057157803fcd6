"""The perplexity provider passes the provider conformance kit against the Perplexity fake."""

from portway_perplexity.testing import PerplexityAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "pplx-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="perplexity",
    config=lambda url: {"type": "perplexity", "api_key": KEY, "base_url": url},
    fake=lambda script: PerplexityAPI(script, api_key=KEY, chat_path="/chat/completions"),
    model="sonar-pro",
    features=FEATURES - {"tools", "stream_tools", "embeddings", "json_object"},
    params={"seed": "dropped", "max_completion_tokens": "as:max_tokens", "n": "refused", "user": "dropped",
            "logprobs": "refused", "logit_bias": "refused", "frequency_penalty": "mapped",
            "presence_penalty": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
