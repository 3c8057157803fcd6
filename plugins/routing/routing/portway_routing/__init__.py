"""Portway's routing layer, as a plugin (the core's install pulls it in).

- strategies (:mod:`portway_routing.strategies`): ``strategy`` on an alias
  (fallback, loadbalance, conditional, least-latency, least-busy, cheapest),
  nesting through aliases that name aliases, and ``fallback_on``;
- the ``conditional`` strategy's safe condition language
  (:mod:`portway_routing.conditions`);
- circuit breaking per target (:mod:`portway_routing.breaker`);
- queueing over a provider's ``max_concurrency`` (:mod:`portway_routing.queue`);
- ``GET /admin/targets``: every target's breaker, in-flight count and
  latency, and every queue;
- ``POST /v1/compare`` (:mod:`portway_routing.compare`): one chat request
  fanned out to several models at once.

The core's own ``router`` (first candidate) and ``retries`` (retry, then
fall back) plugins stay as the last word: this plugin answers
``select_provider`` first, and ``on_error`` first only where the breaker or
``fallback_on`` has something to say.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import hookimpl
from portway.builtins import retries
from portway.context import Target
from portway.endpoints.common import JSONResponse
from portway_routing import breaker, queue
from portway_routing.compare import compare
from portway_routing.strategies import BUSY, FALLBACK_KINDS, Conditions, FallbackKind, State, Strategy

PORTWAY_PLUGIN_KIND = "router"

_states: weakref.WeakKeyDictionary[Any, tuple[State, queue.Limiters]] = weakref.WeakKeyDictionary()


def state_of(gateway: Any) -> tuple[State, queue.Limiters]:
    found = _states.get(gateway)
    if found is None:
        found = _states[gateway] = (State(gateway), queue.Limiters(gateway))
    return found


@hookimpl
def register_alias_keys(register: Any) -> None:
    register("strategy", Strategy)
    register("fallback_on", list[FallbackKind])
    register("conditions", Conditions)


@hookimpl
def register_routes(register: Any) -> None:
    # Behind the master key, like every /v1 route.
    register("/v1/compare", compare, methods=["POST"])
    register("/admin/targets", targets, methods=["GET"])


_shared: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@hookimpl
def startup(gateway: Any) -> None:
    breakers = breaker.breakers_of(gateway)
    if breakers is not None and gateway.config.routing.breaker.redis_url:
        from portway_routing.shared import SharedState

        shared = _shared[gateway] = SharedState(gateway.config.routing.breaker, breakers)
        shared.start()


@hookimpl
async def shutdown(gateway: Any) -> None:
    shared = _shared.pop(gateway, None)
    if shared is not None:
        await shared.stop()


@hookimpl
def register_request_hooks(gateway: Any, register: Any) -> None:
    # The strategies below replace the core's first-candidate router (both
    # answer last; pluggy would ask the core's, registered earlier, first).
    if gateway.pm.has_plugin("router"):
        gateway.pm.unregister(name="router")
    register("routing-breaker", BreakerFilter())


class BreakerFilter:
    """First of all routers: leave out targets whose circuit is open (a 503
    when none is left), whoever chooses among the rest."""

    @hookimpl(tryfirst=True)
    def select_provider(self, ctx: Any, candidates: list[Any]) -> None:
        breaker.select(ctx, candidates)


@hookimpl(trylast=True)
def select_provider(ctx: Any, candidates: list[Any]) -> Any:
    """Last, in place of the core's router: the alias's strategy chooses,
    then the choice takes its queue slots.  Any other router plugin decides
    first (one that answers takes the request past the strategies and the
    queue)."""
    state, limiters = state_of(ctx.gateway)
    _end_attempt(ctx, state)
    route = ctx.route
    target = None
    if route is not None and len(candidates) > 1:
        group = route.group
        if group.options.get("strategy", "fallback") != "fallback" or any(
                not isinstance(m, Target) for m in group.members):
            target = state.choose(ctx, group, {id(c) for c in candidates})
    if target is None:
        target = candidates[0]  # fallback over plain targets: the configured order, minus failures
    if not limiters.any:
        return _busy(ctx, state, target)
    waiting = queue.take_free(ctx, limiters.of(target))
    if not waiting:
        return _busy(ctx, state, target)
    return _after_wait(ctx, state, waiting, target)


async def _after_wait(ctx: Any, state: State, waiting: list[queue.Limiter], target: Any) -> Any:
    try:
        await queue.wait_for_slots(ctx, waiting)
    except BaseException:
        queue.release(ctx)  # a refusal or a client gone: what was taken goes back now
        raise
    return _busy(ctx, state, target)


def _busy(ctx: Any, state: State, target: Any) -> Any:
    ctx.metadata[BUSY] = target.name
    state.busy(target.name, 1)
    return target


def _end_attempt(ctx: Any, state: State) -> None:
    queue.release(ctx)
    name = ctx.metadata.pop(BUSY, None)
    if name is not None:
        state.busy(name, -1)


@hookimpl(tryfirst=True)
def on_error(ctx: Any, error: Any, candidates: list[Any]) -> Any:
    if ctx.gateway is not None:
        _end_attempt(ctx, state_of(ctx.gateway)[0])
    decision = breaker.failed(ctx, error, candidates)
    if decision is not None:
        return decision
    return _fallback_on(ctx, error, candidates)


def _fallback_on(ctx: Any, error: Any, candidates: list[Any]) -> Any:
    """An alias's ``fallback_on``: fall back on the errors it names (a
    retryable one after its retries), and on no other (a retryable one is
    still retried on the same target)."""
    kinds = ctx.alias_option("fallback_on")
    if kinds is None or getattr(error, "code", None) == "unsupported":
        return None
    covered = set().union(*(FALLBACK_KINDS.get(kind, {kind}) for kind in kinds))
    if error.kind in covered:
        if error.retryable:
            return None  # the default policy retries, then falls back
        return "fallback" if len(candidates) > 1 else "raise"
    decision = retries.on_error(ctx, error, candidates)
    return "raise" if decision == "fallback" else decision


@hookimpl
def request_finished(ctx: Any) -> None:
    breaker.finished(ctx)
    if ctx.gateway is None:
        return
    state = state_of(ctx.gateway)[0]
    _end_attempt(ctx, state)
    if ctx.target is not None and ctx.status < 400 and ctx.attempt_started is not None:
        end = ctx.first_token_at or ctx.finished_at
        if end is not None:
            state.observed(ctx.target.name, end - ctx.attempt_started)


async def targets(request: Request) -> Response:
    """``GET /admin/targets``: every target's breaker, in-flight count and
    mean recent latency (the targets of the configured aliases, and any
    other that was tried), and each provider's queue."""
    gateway = request.app.state.gateway
    state, limiters = state_of(gateway)
    breakers = breaker.breakers_of(gateway)
    names = {t.name for route in gateway.aliases.values() for t in route.targets}
    names |= set(state.in_flight) | (set(breakers.by_target) if breakers is not None else set())
    now = time.monotonic()
    rows = []
    for name in sorted(names):
        row: dict[str, Any] = {"target": name}
        if breakers is not None:
            row |= breakers.get(name).view(now)
        latency = state.latency(name)
        row |= {"in_flight": state.in_flight.get(name, 0),
                "latency_ms": round(latency * 1000, 3) if latency is not None else None}
        rows.append(row)
    return JSONResponse({"breaker": "enabled" if breakers is not None else "disabled", "targets": rows,
                         "queues": limiters.views()})
