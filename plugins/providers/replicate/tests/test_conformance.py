"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Replicate predictions API, for a prompt-schema model (Meta's Llama 3)
and a messages-schema model (OpenAI's GPT-4o on Replicate)."""

from __future__ import annotations

from portway_replicate.testing import ReplicateAPI

from portway.testing import conformance

KEY = "r8_conformance-key-0123456789"
#: Polls at test speed (the provider polls urls.get for the usage after a stream).
FAST = {"poll_interval": 0.02, "max_poll_interval": 0.1}
#: What Replicate's language models have: text in, text out (no tools, no JSON mode).
TEXT = frozenset({"chat", "system", "developer", "multi_turn", "anthropic_ingress", "usage_in_stream"})

LLAMA = conformance.Conformance(
    provider="replicate",
    config=lambda url: {"type": "replicate", "base_url": url + "/v1", "api_key": KEY, **FAST},
    fake=lambda steps: ReplicateAPI(steps, api_key=KEY),
    model="meta/meta-llama-3-70b-instruct",
    features=TEXT,
    # stop is one comma-separated stop_sequences string; Llama 3 on Replicate takes no seed.
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped",
            "seed": "dropped", "max_completion_tokens": "as:max_tokens", "n": "refused", "user": "dropped",
            "logprobs": "refused", "logit_bias": "refused", "frequency_penalty": "mapped",
            "presence_penalty": "mapped", "reasoning_effort": "dropped"},
)

GPT = conformance.Conformance(
    provider="replicate",
    config=lambda url: {"type": "replicate", "base_url": url + "/v1", "api_key": KEY, **FAST},
    fake=lambda steps: ReplicateAPI(steps, api_key=KEY),
    model="openai/gpt-4o",
    features=TEXT | {"vision_url", "vision_base64"},
    # max_tokens goes as max_completion_tokens; these models take no stop sequences and no seed.
    params={"max_tokens": "mapped", "stop": "refused", "temperature": "mapped", "top_p": "mapped",
            "seed": "dropped", "max_completion_tokens": "mapped", "n": "refused",
            "frequency_penalty": "mapped", "presence_penalty": "mapped", "reasoning_effort": "mapped"},
)


test_conformance = conformance.conformance_tests(LLAMA)
test_conformance_messages = conformance.conformance_tests(GPT)
