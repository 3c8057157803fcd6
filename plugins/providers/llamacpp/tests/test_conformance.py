"""The llamacpp provider passes the conformance kit, against the fake llama-server."""

from portway_llamacpp.testing import LlamaServerAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "llamacpp-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="llamacpp",
    config=lambda url: {"type": "llamacpp", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: LlamaServerAPI(script, api_key=KEY),
    model="qwen3-8b-q4_k_m.gguf",
    features=FEATURES | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "n": "refused", "logprobs": "mapped", "tool_choice": "mapped", "max_completion_tokens": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
