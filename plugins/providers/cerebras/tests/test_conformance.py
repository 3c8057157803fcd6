"""The cerebras provider passes the provider conformance kit against the
fake Cerebras API (``portway_cerebras.testing.CerebrasAPI``)."""

from portway_cerebras.testing import CerebrasAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "csk-cerebras-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="cerebras",
    config=lambda url: {"type": "cerebras", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: CerebrasAPI(script, api_key=KEY),
    # No embeddings endpoint; no model that reads images.
    features=(FEATURES - {"embeddings", "vision_url", "vision_base64"}) | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "mapped", "n": "mapped", "user": "mapped", "logprobs": "mapped",
            "tool_choice": "mapped", "reasoning_effort": "mapped",
            "frequency_penalty": "refused", "presence_penalty": "refused", "logit_bias": "refused",
            "parallel_tool_calls": "dropped"},
)

test_conformance = conformance_tests(CONFORMANCE)
