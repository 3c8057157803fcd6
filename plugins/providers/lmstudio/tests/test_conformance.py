"""The lmstudio provider passes the conformance kit, against the fake LM Studio server."""

from portway_lmstudio.testing import LMStudioAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "lmstudio-conformance-token-0123456789"

CONFORMANCE = Conformance(
    provider="lmstudio",
    config=lambda url: {"type": "lmstudio", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: LMStudioAPI(script, api_key=KEY),
    model="openai/gpt-oss-20b",
    features=(FEATURES - {"json_object"}) | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "refused", "logprobs": "refused", "user": "dropped",
            "parallel_tool_calls": "dropped", "frequency_penalty": "mapped", "presence_penalty": "mapped",
            "logit_bias": "mapped", "tool_choice": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
