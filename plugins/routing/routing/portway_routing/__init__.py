"""Portway's routing layer, as a plugin (issue 12; the core's install pulls it in).

So far: ``POST /v1/compare`` (:mod:`portway_routing.compare`), one chat
request fanned out to several models at once, each answer or error with its
latency, tokens and cost.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway_routing.compare import compare

PORTWAY_PLUGIN_KIND = "router"


@hookimpl
def register_routes(register: Any) -> None:
    register("/v1/compare", compare, methods=["POST"])  # behind the master key, like /v1/chat/completions
