"""The mistral provider passes the provider conformance kit, against the fake
Mistral API (``portway_mistral.testing.MistralAPI``)."""

from portway_mistral.testing import MistralAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "mistral-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="mistral",
    config=lambda url: {"type": "mistral", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: MistralAPI(script, api_key=KEY),
    model="mistral-small-latest",
    features=FEATURES | {"reasoning"},
    params={
        "max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped",
        "seed": "mapped",  # sent as random_seed (the fake reads it back as seed)
        "max_completion_tokens": "as:max_tokens",
        "n": "mapped",
        "user": "dropped",
        "logprobs": "refused",
        "logit_bias": "refused",
        "frequency_penalty": "mapped",
        "presence_penalty": "mapped",
        "parallel_tool_calls": "mapped",
        "tool_choice": "mapped",  # "required" is sent as Mistral's "any" (the fake reads it back)
        "reasoning_effort": "mapped",
    },
    embeddings_model="mistral-embed",
)

test_conformance = conformance_tests(CONFORMANCE)
