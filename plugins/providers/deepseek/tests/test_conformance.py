"""The deepseek provider passes the provider conformance kit against the DeepSeek fake."""

from portway_deepseek.testing import DeepSeekAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sk-deepseek-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="deepseek",
    config=lambda url: {"type": "deepseek", "api_key": KEY, "base_url": url},
    fake=lambda script: DeepSeekAPI(script, api_key=KEY, chat_path="/chat/completions"),
    model="deepseek-chat",
    features=(FEATURES - {"embeddings", "vision_url", "vision_base64", "json_schema"}) | {"reasoning"},
    params={"seed": "dropped", "max_completion_tokens": "as:max_tokens", "n": "refused", "user": "dropped",
            "logprobs": "mapped", "logit_bias": "refused", "frequency_penalty": "mapped",
            "presence_penalty": "mapped", "parallel_tool_calls": "dropped", "tool_choice": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
