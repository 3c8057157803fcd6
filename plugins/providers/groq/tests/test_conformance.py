"""The groq provider passes the provider conformance kit against the Groq fake."""

from portway_groq.testing import GroqAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "gsk_groq-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="groq",
    config=lambda url: {"type": "groq", "api_key": KEY, "base_url": url + "/openai/v1"},
    fake=lambda script: GroqAPI(script, api_key=KEY, chat_path="/openai/v1/chat/completions"),
    model="meta-llama/llama-4-scout-17b-16e-instruct",  # tools, images and JSON mode
    features=(FEATURES - {"embeddings"}) | {"reasoning"},
    params={"seed": "mapped", "max_completion_tokens": "mapped", "user": "mapped", "n": "refused",
            "logprobs": "refused", "logit_bias": "refused", "parallel_tool_calls": "mapped",
            "tool_choice": "mapped", "reasoning_effort": "mapped"},
)

test_conformance = conformance_tests(CONFORMANCE)
