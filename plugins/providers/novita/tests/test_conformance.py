"""The novita provider passes the provider conformance kit against the fake
Novita API (``portway_novita.testing.NovitaAPI``)."""

from portway_novita.testing import NovitaAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sk_novita-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="novita",
    config=lambda url: {"type": "novita", "api_key": KEY, "base_url": url + "/openai/v1"},
    fake=lambda script: NovitaAPI(script, api_key=KEY),
    features=FEATURES | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "mapped", "logprobs": "mapped", "logit_bias": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "user": "dropped",
            "parallel_tool_calls": "dropped", "tool_choice": "refused"},
    embeddings_model="baai/bge-m3",
)

test_conformance = conformance_tests(CONFORMANCE)
