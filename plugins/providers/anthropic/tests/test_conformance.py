"""The anthropic provider passes the provider conformance kit, against the
Messages API fake (``portway.testing.anthropic_api.AnthropicAPI``)."""

from portway.testing.anthropic_api import AnthropicAPI
from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sk-ant-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="anthropic",
    config=lambda url: {"type": "anthropic", "api_key": KEY, "base_url": url},
    fake=lambda script: AnthropicAPI(script, api_key=KEY),
    model="claude-sonnet-4-5",
    features=FEATURES - {"embeddings"},   # Anthropic has no embeddings API
    params={"seed": "dropped"},           # the Messages API has no seed (see the README)
)

test_conformance = conformance_tests(CONFORMANCE)
