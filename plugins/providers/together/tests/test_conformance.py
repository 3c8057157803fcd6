"""The together provider passes the provider conformance kit against the Together AI fake."""

from portway_together.testing import TogetherAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "together-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="together",
    config=lambda url: {"type": "together", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: TogetherAPI(script, api_key=KEY),
    model="meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",  # tools, images and JSON mode
    embeddings_model="BAAI/bge-large-en-v1.5",
    features=FEATURES | {"reasoning"},
    params={"seed": "mapped", "max_completion_tokens": "as:max_tokens", "n": "mapped", "user": "dropped",
            "logprobs": "refused", "logit_bias": "mapped", "frequency_penalty": "mapped",
            "presence_penalty": "mapped", "parallel_tool_calls": "dropped", "tool_choice": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
