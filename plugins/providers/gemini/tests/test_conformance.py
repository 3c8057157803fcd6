"""The gemini provider passes the conformance kit, against the strict fake Gemini API."""

from __future__ import annotations

from portway.testing.conformance import FEATURES, Conformance, conformance_tests
from portway_gemini.testing import GeminiAPI

KEY = "AIzaSy-conformance-0123456789"

CONFORMANCE = Conformance(
    provider="gemini",
    config=lambda url: {"type": "gemini", "api_key": KEY, "base_url": url},
    fake=lambda script: GeminiAPI(script, api_key=KEY, models=["test-model", "text-embedding"]),
    features=FEATURES,
    embeddings_model="text-embedding",
)

test_conformance = conformance_tests(CONFORMANCE)
