"""The dashscope provider passes the conformance kit, against the fake Model
Studio compatible mode.  (The kit's checks expect a non-streamed request to go
upstream unstreamed, so they use qwen3.5-plus, which reads images and does not think unless asked;
the stream-and-assemble path of thinking models is tested in
test_dashscope_provider.py.)"""

from portway_dashscope.testing import DashScopeAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sk-dashscope-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="dashscope",
    config=lambda url: {"type": "dashscope", "api_key": KEY, "base_url": url + "/compatible-mode/v1"},
    fake=lambda script: DashScopeAPI(script, api_key=KEY),
    model="qwen3.5-plus",
    embeddings_model="text-embedding-v4",
    features=FEATURES | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "n": "mapped", "user": "dropped", "logprobs": "mapped", "parallel_tool_calls": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
