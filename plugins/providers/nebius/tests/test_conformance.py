"""The nebius provider passes the provider conformance kit against the fake
Nebius API (``portway_nebius.testing.NebiusAPI``)."""

from portway_nebius.testing import NebiusAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "nebius-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="nebius",
    config=lambda url: {"type": "nebius", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: NebiusAPI(script, api_key=KEY),
    features=FEATURES,
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "mapped", "logprobs": "mapped", "logit_bias": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "user": "mapped",
            "tool_choice": "mapped", "reasoning_effort": "mapped"},
    embeddings_model="BAAI/bge-en-icl",
)

test_conformance = conformance_tests(CONFORMANCE)
