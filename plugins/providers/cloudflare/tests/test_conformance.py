"""The provider conformance kit run against the fake Workers AI account
(``portway_cloudflare.testing.WorkersAI``)."""

from __future__ import annotations

from portway_cloudflare.testing import WorkersAI

from portway.testing import conformance

TOKEN = "cf-conformance-token-0123456789"
ACCOUNT = "0123456789abcdef0123456789abcdef"

CLOUDFLARE = conformance.Conformance(
    provider="cloudflare",
    config=lambda url: {"type": "cloudflare", "api_key": TOKEN, "account_id": ACCOUNT,
                        "base_url": url + "/client/v4/accounts/{account_id}/ai"},
    fake=lambda steps: WorkersAI(steps, api_token=TOKEN, account_id=ACCOUNT),
    model="@cf/meta/llama-4-scout-17b-16e-instruct",
    features=conformance.FEATURES | {"rerank"},
    embeddings_model="@cf/baai/bge-large-en-v1.5",
    rerank_model="@cf/baai/bge-reranker-base",
)

test_conformance = conformance.conformance_tests(CLOUDFLARE)
