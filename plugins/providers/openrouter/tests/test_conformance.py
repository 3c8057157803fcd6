"""The openrouter provider passes the provider conformance kit against the OpenRouter fake."""

from portway_openrouter.testing import OpenRouterAPI

from portway.testing.conformance import EXTRA_PARAMS, FEATURES, Conformance, conformance_tests

KEY = "sk-or-v1-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="openrouter",
    config=lambda url: {"type": "openrouter", "api_key": KEY, "base_url": url + "/api/v1"},
    fake=lambda script: OpenRouterAPI(script, api_key=KEY, chat_path="/api/v1/chat/completions",
                                      embeddings_path="/api/v1/embeddings"),
    model="openai/gpt-4o-mini",
    embeddings_model="openai/text-embedding-3-small",
    features=FEATURES | {"reasoning"},
    params=dict.fromkeys(EXTRA_PARAMS, "mapped"),  # OpenRouter takes OpenAI's parameters and passes them on
)

test_conformance = conformance_tests(CONFORMANCE)
