"""The provider conformance kit run against the fake router / TGI and TEI
endpoints (``portway_huggingface.testing.HuggingFaceAPI``)."""

from __future__ import annotations

from portway_huggingface.testing import HuggingFaceAPI

from portway.testing import conformance

KEY = "hf_conformance0123456789abcdef"

HUGGINGFACE = conformance.Conformance(
    provider="huggingface",
    config=lambda url: {"type": "huggingface", "api_key": KEY, "base_url": url + "/v1", "embeddings_url": url},
    fake=lambda steps: HuggingFaceAPI(steps, api_key=KEY),
    model="meta-llama/Llama-3.3-70B-Instruct",
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "refused", "logit_bias": "refused", "user": "dropped",
            "parallel_tool_calls": "dropped", "reasoning_effort": "dropped", "logprobs": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "tool_choice": "mapped"},
    embeddings_model="BAAI/bge-large-en-v1.5",
)

test_conformance = conformance.conformance_tests(HUGGINGFACE)
