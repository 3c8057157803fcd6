"""docs/metrics.md and the family table cannot drift from what /metrics exposes."""

from __future__ import annotations

from pathlib import Path

import httpx
from portway_metrics import docs
from portway_metrics.families import FAMILIES, PROCESS_PREFIXES
from prometheus_client.parser import text_string_to_metric_families

from portway.testing.gateway import GatewayServer

ROOT = Path(__file__).resolve().parents[4]


def test_docs_metrics_md_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "metrics.md").read_text() == docs.render(), (
        "docs/metrics.md is stale: run python -m portway_metrics.docs > docs/metrics.md")


def test_the_table_is_exactly_what_the_registry_exposes() -> None:
    with GatewayServer({"providers": {"mock": {"type": "mock"}}}) as server:
        text = httpx.get(server.url + "/metrics", timeout=10).text
    exposed = {family.name: family for family in text_string_to_metric_families(text)
               if not family.name.startswith(PROCESS_PREFIXES)}
    assert set(exposed) == {family.name for family in FAMILIES}
    for family in FAMILIES:
        assert exposed[family.name].type == family.kind, family.name
        assert exposed[family.name].documentation == family.help, family.name
    assert len(FAMILIES) >= 40
    # Only labels whose values come from the config or the code (docs/metrics.md, "Labels"): never a
    # request id, a key, or a name as the client sent it.
    bounded = {"endpoint", "model", "provider", "status", "kind", "stream", "target", "state", "plugin", "hook",
               "result", "check", "action", "stage", "reason", "version", "limiter"}
    assert {label for family in FAMILIES for label in family.labels} <= bounded
