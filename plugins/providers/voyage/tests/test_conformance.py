"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Voyage AI API: embeddings and rerank (Voyage AI has no chat, so the kit
skips its chat checks and chat parameter checks)."""

from __future__ import annotations

from portway_voyage.testing import VoyageAPI

from portway.testing import conformance

KEY = "pa-voyage-conformance-0123456789"

VOYAGE = conformance.Conformance(
    provider="voyage",
    config=lambda url: {"type": "voyage", "base_url": url + "/v1", "api_key": KEY},
    fake=lambda steps: VoyageAPI(steps, api_key=KEY),
    model="voyage-3.5",
    features=frozenset({"embeddings", "rerank"}),
    rerank_model="rerank-2.5",
)


test_conformance = conformance.conformance_tests(VOYAGE)
