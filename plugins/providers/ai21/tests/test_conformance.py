"""The ai21 provider passes the provider conformance kit, against the fake
Jamba chat API (``portway_ai21.testing.AI21API``)."""

from portway_ai21.testing import AI21API

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "ai21-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="ai21",
    config=lambda url: {"type": "ai21", "api_key": KEY, "base_url": url + "/studio/v1"},
    fake=lambda script: AI21API(script, api_key=KEY),
    model="jamba-mini",
    # Jamba reads text only, has JSON mode but no JSON schema, and this API has no embeddings.
    features=FEATURES - {"vision_url", "vision_base64", "json_schema", "embeddings"},
    params={
        "max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped",
        "seed": "dropped",
        "max_completion_tokens": "as:max_tokens",
        "n": "mapped",
        "user": "dropped",
        "parallel_tool_calls": "dropped",
        "logprobs": "refused",
        "logit_bias": "refused",
        "frequency_penalty": "refused",
        "presence_penalty": "refused",
        "reasoning_effort": "refused",
        "tool_choice": "refused",
    },
)

test_conformance = conformance_tests(CONFORMANCE)
