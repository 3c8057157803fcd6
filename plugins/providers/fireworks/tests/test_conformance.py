"""The fireworks provider passes the provider conformance kit against the Fireworks AI fake."""

from portway_fireworks.testing import FireworksAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "fw_fireworks-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="fireworks",
    config=lambda url: {"type": "fireworks", "api_key": KEY, "base_url": url + "/inference/v1"},
    fake=lambda script: FireworksAPI(script, api_key=KEY, chat_path="/inference/v1/chat/completions",
                                     embeddings_path="/inference/v1/embeddings"),
    model="accounts/fireworks/models/llama4-maverick-instruct-basic",  # tools, images and JSON mode
    embeddings_model="nomic-ai/nomic-embed-text-v1.5",
    features=FEATURES | {"reasoning"},
    params={"seed": "mapped", "n": "mapped", "user": "mapped", "logprobs": "refused", "logit_bias": "refused",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "max_completion_tokens": "mapped",
            "tool_choice": "mapped", "parallel_tool_calls": "mapped", "reasoning_effort": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
