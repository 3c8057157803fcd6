"""The default router: the first eligible target wins.

Answers ``select_provider`` last (``trylast``), so any routing plugin
(load balancing, latency-based, cost-based) takes precedence simply by
answering.  Targets that failed and were fallen back from are already out
of ``candidates``, so "first" means "the configured order, minus failures".
"""

from __future__ import annotations

from typing import Any

from portway.hookspecs import hookimpl

PORTWAY_PLUGIN_KIND = "router"


@hookimpl(trylast=True)
def select_provider(ctx: Any, candidates: list[Any]) -> Any:
    return candidates[0] if candidates else None
