"""The sambanova provider passes the provider conformance kit against the
fake SambaNova API (``portway_sambanova.testing.SambaNovaAPI``)."""

from portway_sambanova.testing import SambaNovaAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sambanova-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="sambanova",
    config=lambda url: {"type": "sambanova", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: SambaNovaAPI(script, api_key=KEY),
    features=FEATURES | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "mapped", "n": "mapped", "logprobs": "mapped", "logit_bias": "mapped",
            "parallel_tool_calls": "mapped", "tool_choice": "mapped", "reasoning_effort": "mapped",
            "frequency_penalty": "dropped", "presence_penalty": "dropped", "user": "dropped"},
    embeddings_model="E5-Mistral-7B-Instruct",
)

test_conformance = conformance_tests(CONFORMANCE)
