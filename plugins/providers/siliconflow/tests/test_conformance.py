"""The siliconflow provider passes the conformance kit, against the fake SiliconFlow API."""

from portway_siliconflow.testing import SiliconFlowAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sk-siliconflow-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="siliconflow",
    config=lambda url: {"type": "siliconflow", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: SiliconFlowAPI(script, api_key=KEY),
    model="Qwen/Qwen3-32B",
    embeddings_model="BAAI/bge-m3",
    rerank_model="BAAI/bge-reranker-v2-m3",
    features=(FEATURES - {"json_schema"}) | {"reasoning", "rerank"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "dropped",
            "max_completion_tokens": "as:max_tokens", "n": "mapped", "frequency_penalty": "mapped",
            "presence_penalty": "dropped", "user": "dropped", "parallel_tool_calls": "dropped",
            "logprobs": "refused", "logit_bias": "refused", "tool_choice": "refused"},
)

test_conformance = conformance_tests(CONFORMANCE)
