"""The hyperbolic provider passes the provider conformance kit against the
fake Hyperbolic API (``portway_hyperbolic.testing.HyperbolicAPI``)."""

from portway_hyperbolic.testing import HyperbolicAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "hyperbolic-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="hyperbolic",
    config=lambda url: {"type": "hyperbolic", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: HyperbolicAPI(script, api_key=KEY),
    features=FEATURES - {"embeddings"},  # no embeddings endpoint
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "mapped", "logprobs": "mapped", "logit_bias": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "user": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
