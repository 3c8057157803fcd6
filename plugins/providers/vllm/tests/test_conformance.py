"""The vllm provider passes the conformance kit, against the fake vLLM server."""

from portway_vllm.testing import VLLMAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "vllm-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="vllm",
    config=lambda url: {"type": "vllm", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: VLLMAPI(script, api_key=KEY),
    model="Qwen/Qwen3-8B",
    features=FEATURES | {"reasoning"},
    # vLLM takes every OpenAI sampling parameter (docs.vllm.ai, "Chat API": all but a few are supported).
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "n": "mapped", "logprobs": "mapped", "max_completion_tokens": "mapped", "tool_choice": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "logit_bias": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
