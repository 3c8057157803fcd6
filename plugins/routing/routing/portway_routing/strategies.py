"""Routing strategies: which of an alias's targets serves a request.

An alias's ``strategy`` (an alias key this plugin declares) says how its
members are ordered for a request; a member is a target or, where the alias
names another alias, that alias's group, which orders its own members by
its own strategy (strategies nest).  The first member in that order that
still has an eligible target wins; targets that failed and were fallen
back from are no longer eligible, so the next choice is the strategy's
next best.

- ``fallback`` (the default): the configured order.
- ``loadbalance``: by weight, with smooth weighted round-robin (each member
  gets exactly its share over every sum-of-weights requests, interleaved),
  then the rest by weight as fallbacks.
- ``conditional``: the first of ``conditions`` whose ``when`` holds for the
  request (or a rule with no ``when``, the default) names the member; with
  no rule matching, the configured order.
- ``least-latency``: the member with the lowest mean of the recent
  latencies (time to first token for streams, the whole answer otherwise)
  of its targets; a member not yet measured is tried first.
- ``least-busy``: the member with the fewest requests in flight.
- ``cheapest``: the member whose catalogued prices make this request the
  cheapest (input estimated, output as requested); unpriced members last.

State (round-robin counters, latency windows, in-flight counts) is per
gateway process.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, PrivateAttr, ValidationInfo, field_validator

from portway import tokens
from portway.context import Group, Target
from portway_routing.conditions import compile_condition

Strategy = Literal["fallback", "loadbalance", "conditional", "least-latency", "least-busy", "cheapest"]
#: The errors ``fallback_on`` may name; ``server_error`` covers every failure of the upstream's own.
FallbackKind = Literal["rate_limit", "server_error", "timeout", "content_filter", "context_length",
                       "authentication", "permission", "billing", "not_found", "bad_request"]
#: What each ``fallback_on`` name covers, in error kinds (:mod:`portway.errors`).
FALLBACK_KINDS: dict[str, frozenset[str]] = {
    "server_error": frozenset({"server_error", "connection", "unavailable", "overloaded", "pool_exhausted"}),
    "rate_limit": frozenset({"rate_limit"}),
}

#: How many recent latencies of a target ``least-latency`` averages.
LATENCY_WINDOW = 20
#: Round-robin states kept at most (the oldest goes first): aliases, and the per-request configs' shapes.
MAX_WEIGHTED_GROUPS = 4096
#: Where a request records the target it counts as in flight, in ``ctx.metadata``.
BUSY = "routing.busy"


class Rule(BaseModel):
    """One rule of a ``conditional`` alias: ``{when: <condition>, then: <member>}``,
    or ``{then: <member>}`` (always)."""

    model_config = ConfigDict(extra="forbid")
    when: str | None = None
    #: A member of the alias: ``<provider>/<model>`` as in its targets, or the name of an alias it names.
    then: str
    #: ``when`` read into a function of the request (None: always).
    _holds: Callable[[Any], Any] | None = PrivateAttr(None)

    def model_post_init(self, context: Any) -> None:
        # Read once with the rule (validation already proved it reads), kept
        # with it: an alias's rules and a header's are each their own.
        self._holds = compile_condition(self.when) if self.when is not None else None

    def holds(self, ctx: Any) -> bool:
        return self._holds is None or bool(self._holds(ctx))

    @field_validator("when")
    @classmethod
    def _readable(cls, text: str | None) -> str | None:
        if text is not None:
            compile_condition(text)  # a ConditionError (ValueError) names what and where
        return text

    @field_validator("then")
    @classmethod
    def _a_member(cls, name: str, info: ValidationInfo) -> str:
        # The core validates alias keys with the alias's target names as context.
        names = (info.context or {}).get("targets")
        if names is not None and name not in names:
            raise ValueError(f"{name!r} is not one of its targets ({', '.join(names)})")
        return name


def _only_when_conditional(rules: list[Rule], info: ValidationInfo) -> list[Rule]:
    keys = (info.context or {}).get("keys")
    if keys is not None and keys.get("strategy") != "conditional":
        raise ValueError("only a conditional alias has conditions (add strategy: conditional)")
    return rules


#: The ``conditions`` alias key.
Conditions = Annotated[list[Rule], AfterValidator(_only_when_conditional)]


class State:
    """One gateway's routing state."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        #: Smooth weighted round-robin: a group's shape (:func:`_shape`) -> each member's current weight.
        self._current: dict[tuple[Any, ...], list[float]] = {}
        self._latency: dict[str, deque[float]] = {}
        self.in_flight: dict[str, int] = {}

    # -- measurements -------------------------------------------------------------------------

    def observed(self, target: str, seconds: float) -> None:
        window = self._latency.get(target)
        if window is None:
            window = self._latency[target] = deque(maxlen=LATENCY_WINDOW)
        window.append(seconds)

    def latency(self, target: str) -> float | None:
        window = self._latency.get(target)
        return sum(window) / len(window) if window else None

    def busy(self, target: str, change: int) -> None:
        self.in_flight[target] = self.in_flight.get(target, 0) + change

    # -- choosing -------------------------------------------------------------------------------

    def choose(self, ctx: Any, group: Group, eligible: set[int]) -> Target | None:
        """The target ``group``'s strategy picks among ``eligible`` (ids of
        the request's remaining candidates), or None when none is under it."""
        live = [(i, m) for i, m in enumerate(group.members) if _has(m, eligible)]
        if not live:
            return None
        for member in self._order(ctx, group, live):
            pick = member if isinstance(member, Target) else self.choose(ctx, member, eligible)
            if pick is not None:
                return pick
        return None

    def _order(self, ctx: Any, group: Group, live: list[tuple[int, Target | Group]]) -> Iterable[Target | Group]:
        strategy = group.options.get("strategy") or "fallback"
        if len(live) == 1 or strategy == "fallback":
            return [m for _, m in live]
        if strategy == "loadbalance":
            return self._weighted(group, live)
        if strategy == "conditional":
            return self._conditional(ctx, group, live)
        if strategy == "least-latency":
            return _by(live, lambda m: _lowest(self.latency(t.name) for t in _leaves(m)), unknown_first=True)
        if strategy == "least-busy":
            return _by(live, lambda m: min(self.in_flight.get(t.name, 0) for t in _leaves(m)))
        if strategy == "cheapest":
            return _by(live, lambda m: _lowest(self._cost(ctx, t) for t in _leaves(m)))
        raise AssertionError(strategy)

    def _weighted(self, group: Group, live: list[tuple[int, Target | Group]]) -> list[Target | Group]:
        shape = _shape(group)
        current = self._current.get(shape)
        if current is None:
            if len(self._current) >= MAX_WEIGHTED_GROUPS:  # per-request configs are the client's to vary
                del self._current[next(iter(self._current))]
            current = self._current[shape] = [0.0] * len(group.members)
        total = 0.0
        for i, _ in live:
            current[i] += group.weights[i]
            total += group.weights[i]
        best = max(live, key=lambda item: current[item[0]])
        current[best[0]] -= total
        rest = sorted((item for item in live if item is not best), key=lambda item: -group.weights[item[0]])
        return [best[1], *(m for _, m in rest)]

    def _conditional(self, ctx: Any, group: Group, live: list[tuple[int, Target | Group]]) -> list[Target | Group]:
        by_name = {m.name: m for _, m in live}
        for rule in group.options.get("conditions") or ():
            if rule.then in by_name and rule.holds(ctx):
                chosen = by_name[rule.then]
                return [chosen, *(m for _, m in live if m is not chosen)]
        return [m for _, m in live]

    def _cost(self, ctx: Any, target: Target) -> float | None:
        info = self.gateway.catalog.lookup(target.provider, target.model)
        price = info.price if info is not None else None
        if price is None or price.input is None or price.output is None:
            return None
        body = ctx.body
        return (price.input * tokens.estimate(body) + price.output * tokens.requested_output(body)) / 1e6


def _shape(group: Group) -> tuple[Any, ...]:
    """What a group's round-robin state is kept under: its name, members and
    weights.  By name alone, every ``x-portway-config`` header shared one
    state, and two headers' orders or weights skewed each other's split."""
    return group.name, group.weights, tuple(member.name for member in group.members)


def _has(member: Target | Group, eligible: set[int]) -> bool:
    if isinstance(member, Target):
        return id(member) in eligible
    return any(id(leaf) in eligible for leaf in member.leaves())


def _leaves(member: Target | Group) -> list[Target]:
    return [member] if isinstance(member, Target) else member.leaves()


def _lowest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _by(live: list[tuple[int, Target | Group]], score: Callable[[Any], float | None], *,
        unknown_first: bool = False) -> list[Target | Group]:
    """The members by ascending score, ties in configured order; members
    with no score first (to measure them) or last (nothing to go on)."""
    unknown = -math.inf if unknown_first else math.inf
    scored = [(s if (s := score(m)) is not None else unknown, i, m) for i, m in live]
    return [m for _, _, m in sorted(scored, key=lambda item: (item[0], item[1]))]


__all__ = ["BUSY", "Conditions", "FALLBACK_KINDS", "FallbackKind", "Rule", "State", "Strategy"]
