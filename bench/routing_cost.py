"""The routing layer's own cost per request, in-process: portway-routing's
``select_provider`` and ``request_finished`` (breaker, strategy, queue
slot, in-flight count, latency window) for a few alias shapes, measured
with no network so that only routing code is timed.

    .venv/bin/python bench/routing_cost.py

The end-to-end figure (target c against target d, which runs without the
optional per-request plugins) comes from ``bench/run``; this one says how
much of it is routing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from portway import config as config_module
from portway.context import RequestContext
from portway.gateway import Gateway

SHAPES: dict[str, dict[str, Any]] = {
    "provider/model (no alias)": {},
    "fallback alias, 2 targets": {"targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}]},
    "loadbalance, 2 targets": {"strategy": "loadbalance",
                               "targets": [{"provider": "a", "model": "m", "weight": 3}, {"provider": "b", "model": "m"}]},
    "nested: fallback over a loadbalance pool": {"targets": [{"alias": "pool"}, {"provider": "b", "model": "m"}]},
    "conditional on a tag": {"strategy": "conditional", "targets": [{"provider": "a", "model": "m"},
                                                                   {"provider": "b", "model": "m"}],
                             "conditions": [{"when": 'metadata.tier == "free"', "then": "a/m"}, {"then": "b/m"}]},
    "least-latency, 2 targets": {"strategy": "least-latency",
                                 "targets": [{"provider": "a", "model": "m"}, {"provider": "b", "model": "m"}]},
    "max_concurrency on the provider": {"target": {"provider": "q", "model": "m"}},
}


def gateway() -> Gateway:
    models = {f"s{i}": shape for i, shape in enumerate(SHAPES.values()) if shape}
    models["pool"] = {"strategy": "loadbalance", "targets": [{"provider": "a", "model": "m"},
                                                            {"provider": "b", "model": "x"}]}
    config = {"providers": {"a": {"type": "mock"}, "b": {"type": "mock"}, "q": {"type": "mock", "max_concurrency": 64}},
              "models": models}
    return Gateway(config_module.parse(config, "bench"))


async def per_request(gw: Gateway, model: str, n: int, routed: bool = True) -> float:
    routing = gw.pm.get_plugin("routing")
    breaker = gw.pm.get_plugin("routing-breaker")
    started = time.perf_counter()
    for i in range(n):
        ctx = RequestContext(request_id=str(i), endpoint="chat.completions", gateway=gw, tags={"tier": "free"},
                             canonical={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        route = gw.route_for(ctx)
        if routed:
            candidates = list(route.targets)
            breaker.select_provider(ctx, candidates)
            target = routing.select_provider(ctx, candidates)
            ctx.target, ctx.attempt_started = target, time.perf_counter()
            ctx.finished_at = ctx.attempt_started + 0.001
            routing.request_finished(ctx)
    return (time.perf_counter() - started) / n * 1e6


async def main() -> None:
    gw = gateway()
    names = ["a/m", *[f"s{i}" for i, shape in enumerate(SHAPES.values()) if shape]]
    print("| alias shape | context + resolve (µs) | portway-routing's hooks (µs) |\n|---|---|---|")
    for label, model in zip(SHAPES, names, strict=True):
        await per_request(gw, model, 2_000)  # warm
        base = min([await per_request(gw, model, 20_000, routed=False) for _ in range(3)])
        best = min([await per_request(gw, model, 20_000) for _ in range(3)])
        print(f"| {label} | {base:.1f} | {best - base:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
