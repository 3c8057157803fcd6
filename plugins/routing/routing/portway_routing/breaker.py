"""Circuit breaking: a target that keeps failing is left alone for a while.

Each target (``<provider>/<model>``) has a breaker, on by default
(``routing.breaker``).  After ``failures`` retryable failures within
``window`` seconds it **opens**: requests skip it (an alias falls back to
its next target at once) for ``cooldown`` seconds.  Then it is **half
open**: exactly one request — the probe — may try it, while the others keep
skipping it; the probe's outcome closes it (the upstream answered) or opens
it again for another cooldown.  While every target of a request is open,
the request gets a 503 with ``Retry-After`` (the seconds until the first
probe may go), and no upstream is called.

The state is per process (per gateway): with several workers each counts
its own failures, and with ``routing.breaker.redis_url`` set an open
circuit is shared (:mod:`portway_routing.shared`).  ``GET /admin/targets``
shows it.

The hooks: ``select_provider`` (first: takes open targets out of the
candidates, keeping one probe, and leaves the choice to the next router),
``on_error`` (count the failure; fall back at once from a target
that just opened), ``request_finished`` (a success closes; a probe's end
decides).  All are synchronous and touch only a dict: nothing on the
request path waits.
"""

from __future__ import annotations

import math
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from portway.errors import PortwayError

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: Where a request that is a probe says so, in ``ctx.metadata``.
PROBE = "routing.probe"


@dataclass
class Breaker:
    """One target's breaker."""

    failures: int
    window: float
    cooldown: float
    state: str = CLOSED
    opened_at: float = 0.0
    probing: bool = False
    recent: deque[float] = field(default_factory=deque)
    #: How many times it opened, for the admin view.
    trips: int = 0

    def allows(self, now: float) -> bool:
        """Whether a request may use the target now; the first request after
        the cooldown becomes the probe (the caller marks it)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and now - self.opened_at >= self.cooldown:
            self.state, self.probing = HALF_OPEN, False
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def failed(self, now: float) -> None:
        if self.state == HALF_OPEN:
            self._open(now)
            return
        recent = self.recent
        recent.append(now)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if self.state == CLOSED and len(recent) >= self.failures:
            self._open(now)

    def succeeded(self) -> None:
        self.state, self.probing = CLOSED, False
        self.recent.clear()

    def probe_ended_unknown(self) -> None:
        """The probe ended without saying anything of the upstream (the
        client left): let the next request probe."""
        if self.state == HALF_OPEN:
            self.probing = False

    def retry_in(self, now: float) -> float:
        """Seconds until a request may try it (0 when it may now)."""
        if self.state == OPEN:
            return max(0.0, self.cooldown - (now - self.opened_at))
        return 0.0 if self.state == CLOSED or not self.probing else self.cooldown

    def opened_elsewhere(self, now: float, left: float) -> None:
        """Another process opened this circuit, for ``left`` more seconds."""
        if self.state == OPEN and self.opened_at + self.cooldown - now >= left:
            return
        if self.state != OPEN:
            self.trips += 1
        self.state, self.opened_at, self.probing = OPEN, now - (self.cooldown - left), False
        self.recent.clear()

    def view(self, now: float) -> dict[str, Any]:
        return {"state": self.state, "recent_failures": len(self.recent), "trips": self.trips,
                "retry_in_s": round(self.retry_in(now), 3)}

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.probing = OPEN, now, False
        self.recent.clear()
        self.trips += 1


class Breakers:
    """Every target's breaker, for one gateway."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.by_target: dict[str, Breaker] = {}
        #: Told ``(target, state, cooldown seconds)`` when a breaker opens or a
        #: probe closes it (:mod:`portway_routing.shared`); None: nobody listens.
        self.listener: Any = None

    def get(self, name: str) -> Breaker:
        breaker = self.by_target.get(name)
        if breaker is None:
            breaker = self.by_target[name] = Breaker(self.config.failures, self.config.window, self.config.cooldown)
        return breaker

    def view(self, now: float) -> list[dict[str, Any]]:
        return [{"target": name, **b.view(now)} for name, b in sorted(self.by_target.items())]


_breakers: weakref.WeakKeyDictionary[Any, Breakers] = weakref.WeakKeyDictionary()


def breakers_of(gateway: Any) -> Breakers | None:
    """The gateway's breakers; None when ``routing.breaker.enabled`` is false."""
    found = _breakers.get(gateway)
    if found is None:
        config = gateway.config.routing.breaker
        if not config.enabled:
            return None
        found = _breakers[gateway] = Breakers(config)
    return found


def select(ctx: Any, candidates: list[Any]) -> None:
    """Take the targets whose circuit is open out of ``candidates`` (in
    place: neither the router that chooses next nor a fallback sees them),
    keeping at most one half-open target, this request's probe; a 503 when
    none is left.  Chooses nothing itself."""
    breakers = breakers_of(ctx.gateway)
    if breakers is None or not candidates:
        return
    now = time.monotonic()
    kept = []
    probe = None
    for target in candidates:
        breaker = breakers.get(target.name)
        if breaker.state == CLOSED:
            kept.append(target)
        elif probe is None and breaker.allows(now):
            probe = target.name
            kept.append(target)
    if probe is not None:
        ctx.metadata[PROBE] = probe
    if not kept:
        wait = min(breakers.get(t.name).retry_in(now) for t in candidates)
        names = ", ".join(t.name for t in candidates)
        raise PortwayError(f"model {ctx.model!r} has no target to try: the circuit is open for {names} after "
                           f"repeated failures; try again in {math.ceil(wait)} s", kind="unavailable",
                           code="circuit_open", retry_after=str(max(1, math.ceil(wait))))
    if len(kept) != len(candidates):
        candidates[:] = kept


def failed(ctx: Any, error: Any, candidates: list[Any]) -> str | None:
    """Count a retryable failure of the target tried; fall back at once (or
    give up, with no other target) from one whose circuit just opened."""
    breakers = breakers_of(ctx.gateway)
    target = ctx.target
    if breakers is None or target is None or not getattr(error, "retryable", False):
        return None
    breaker = breakers.get(target.name)
    trips = breaker.trips
    breaker.failed(time.monotonic())
    if ctx.metadata.get(PROBE) == target.name:
        del ctx.metadata[PROBE]
    if breaker.state == OPEN:
        if breaker.trips != trips and breakers.listener is not None:
            breakers.listener(target.name, OPEN, breaker.cooldown)
        return "fallback" if len(candidates) > 1 else "raise"
    return None


def finished(ctx: Any) -> None:
    """A request's end decides its probe: the upstream answered (any status
    below 500, a refusal of the request included) closes the breaker; a
    client that left lets the next request probe.  (A probe that failed was
    counted by :func:`failed` and opened it again.)"""
    breakers = _breakers.get(ctx.gateway) if ctx.gateway is not None else None
    target = ctx.target
    if breakers is None or target is None:
        return
    probe = ctx.metadata.get(PROBE)
    if probe is None:
        return  # a closed target's success changes nothing: failures count within the window
    if probe == target.name and ctx.status < 500 and ctx.status != 499:
        breakers.get(probe).succeeded()
        if breakers.listener is not None:
            breakers.listener(probe, CLOSED, 0.0)
    else:
        breakers.get(probe).probe_ended_unknown()


__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "Breaker", "Breakers", "breakers_of", "failed", "finished", "select"]
