"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Ollama server (``portway_ollama.testing.OllamaAPI``)."""

from __future__ import annotations

from portway_ollama.testing import OllamaAPI

from portway.testing import conformance

OLLAMA = conformance.Conformance(
    provider="ollama",
    config=lambda url: {"type": "ollama", "base_url": url},
    fake=lambda steps: OllamaAPI(steps),
    model="qwen3",
    # Ollama takes no image URL and the gateway fetches nothing: vision by URL is a 400 (see the README).
    features=conformance.FEATURES - {"vision_url"} | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "n": "refused", "logprobs": "refused",
            "logit_bias": "refused", "user": "dropped", "parallel_tool_calls": "dropped", "tool_choice": "refused",
            "reasoning_effort": "as:think"},
    embeddings_model="nomic-embed-text",
)

test_conformance = conformance.conformance_tests(OLLAMA)
