"""The zhipu provider passes the conformance kit, against the fake GLM API.

``stop`` is "refused": the kit sends two stop words, and GLM takes one (a
single stop word goes through: test_zhipu_provider.py)."""

from portway_zhipu.testing import ZhipuAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "zhipu-conformance-key.0123456789abcdef"

CONFORMANCE = Conformance(
    provider="zhipu",
    config=lambda url: {"type": "zhipu", "api_key": KEY, "base_url": url + "/api/paas/v4"},
    fake=lambda script: ZhipuAPI(script, api_key=KEY),
    model="glm-4.5v",
    embeddings_model="embedding-3",
    features=(FEATURES - {"json_schema"}) | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "refused", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "user": "as:user_id", "n": "refused", "logprobs": "refused",
            "logit_bias": "refused", "frequency_penalty": "dropped", "presence_penalty": "dropped",
            "parallel_tool_calls": "dropped", "tool_choice": "refused"},
)

test_conformance = conformance_tests(CONFORMANCE)
