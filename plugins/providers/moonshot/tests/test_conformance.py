"""The moonshot provider passes the provider conformance kit against the
fake Moonshot API (``portway_moonshot.testing.MoonshotAPI``)."""

from portway_moonshot.testing import MoonshotAPI

from portway.testing.conformance import FEATURES, Conformance, conformance_tests

KEY = "sk-moonshot-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="moonshot",
    config=lambda url: {"type": "moonshot", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: MoonshotAPI(script, api_key=KEY),
    # No embeddings endpoint; JSON mode is json_object only.
    features=(FEATURES - {"embeddings", "json_schema"}) | {"reasoning"},
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped",
            "max_completion_tokens": "mapped", "n": "mapped", "user": "mapped", "frequency_penalty": "mapped",
            "presence_penalty": "mapped", "tool_choice": "refused"},
)

test_conformance = conformance_tests(CONFORMANCE)
