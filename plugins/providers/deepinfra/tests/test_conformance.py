"""The deepinfra provider passes the provider conformance kit against the DeepInfra fake."""

from portway_deepinfra.testing import DeepInfraAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "deepinfra-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="deepinfra",
    config=lambda url: {"type": "deepinfra", "api_key": KEY, "base_url": url + "/v1/openai"},
    fake=lambda script: DeepInfraAPI(script, api_key=KEY, chat_path="/v1/openai/chat/completions",
                                     embeddings_path="/v1/openai/embeddings"),
    model="meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",  # tools, images and JSON mode
    embeddings_model="BAAI/bge-m3",
    features=FEATURES | {"reasoning"},
    params={"seed": "mapped", "max_completion_tokens": "as:max_tokens", "n": "mapped", "user": "mapped",
            "logprobs": "mapped", "logit_bias": "refused", "frequency_penalty": "mapped",
            "presence_penalty": "mapped", "parallel_tool_calls": "dropped", "tool_choice": "mapped",
            "reasoning_effort": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
