"""The openai provider passes the provider conformance kit, against the
Chat Completions fake (``portway.testing.openai_chat.OpenAIChatAPI``)."""

from portway.testing.conformance import EXTRA_PARAMS, PARAMS, Conformance, conformance_tests
from portway.testing.openai_chat import OpenAIChatAPI

KEY = "sk-openai-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="openai",
    config=lambda url: {"type": "openai", "api_key": KEY, "base_url": url + "/v1"},
    fake=lambda script: OpenAIChatAPI(script, api_key=KEY),
    model="gpt-4o-mini",
    # OpenAI's own API: every parameter reaches it as the client sent it.
    params=dict.fromkeys([*PARAMS, *EXTRA_PARAMS], "mapped"),
)

test_conformance = conformance_tests(CONFORMANCE)
