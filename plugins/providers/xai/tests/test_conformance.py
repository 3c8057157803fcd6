"""The xai provider passes the provider conformance kit against the Grok fake."""

from portway_xai.testing import XAIAPI

from portway.testing.conformance import EXTRA_PARAMS, FEATURES, Conformance, conformance_tests

KEY = "xai-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="xai",
    config=lambda url: {"type": "xai", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: XAIAPI(script, api_key=KEY),
    model="grok-4-fast-non-reasoning",  # tools, images, JSON, and every sampling parameter
    embeddings_model="v1",
    features=FEATURES | {"reasoning"},
    params={**dict.fromkeys(EXTRA_PARAMS, "mapped"), "reasoning_effort": "dropped"},
)

test_conformance = conformance_tests(CONFORMANCE)
