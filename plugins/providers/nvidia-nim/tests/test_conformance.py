"""The nvidia-nim provider passes the provider conformance kit against the
fake NIM API (``portway_nvidia_nim.testing.NvidiaNimAPI``)."""

from portway_nvidia_nim.testing import NvidiaNimAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "nvapi-conformance-key-0123456789"

CONFORMANCE = Conformance(
    provider="nvidia-nim",
    config=lambda url: {"type": "nvidia-nim", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: NvidiaNimAPI(script, api_key=KEY),
    features=FEATURES,
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "as:max_tokens", "n": "mapped", "frequency_penalty": "mapped",
            "presence_penalty": "mapped", "tool_choice": "mapped"},
    embeddings_model="nvidia/nv-embed-v1",
)

test_conformance = conformance_tests(CONFORMANCE)
