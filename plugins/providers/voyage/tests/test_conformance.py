"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Voyage AI API: embeddings and rerank (Voyage has no chat, so the
kit's chat parameter checks are left out: see
:func:`portway_voyage.testing.conformance_tests_without_chat`)."""

from __future__ import annotations

from portway_voyage.testing import VoyageAPI, conformance_tests_without_chat

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


test_conformance = conformance_tests_without_chat(VOYAGE)
