"""Queueing under spikes: at most ``max_concurrency`` requests in flight to a
provider instance; the rest wait, fairly, for a bounded time.

A provider instance with ``max_concurrency`` set gets a :class:`Limiter`,
and so does a configured target with its own ``max_concurrency``.
A request holds one of its slots from the moment it is routed there until
its attempt ends (the answer sent, a stream finished, or the attempt failed
and the next one is chosen).  When every slot is taken, the request waits in
the limiter's queue:

- the queue is bounded (``routing.queue.max_waiting``): past it a request is
  refused at once with a 429 and ``Retry-After``;
- each wait is bounded (``routing.queue.timeout``): past it, the same 429;
- a freed slot goes to the waiting client keys in turn (round-robin between
  keys, first come first served within a key), so one key sending a burst
  cannot starve the others.

Everything is in-process (per worker) and touches only a deque; a request
that does not wait never awaits anything.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from typing import Any

from portway.errors import PortwayError

#: Where a request keeps the limiter whose slot it holds, in ``ctx.metadata``.
SLOT = "routing.slot"


class Limiter:
    """The slots of one provider instance, and who waits for them."""

    def __init__(self, name: str, limit: int, max_waiting: int, timeout: float) -> None:
        self.name = name
        self.limit = limit
        self.max_waiting = max_waiting
        self.timeout = timeout
        self.active = 0
        self.waiting = 0
        #: Client key -> its waiters, in arrival order.
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        #: Keys with waiters, in the order they are served.
        self._turns: deque[str] = deque()
        #: Requests refused (queue full or waited too long), for the admin view and metrics.
        self.shed = 0
        #: Total seconds waited by requests that got a slot, and how many did.
        self.waited, self.admitted_after_wait = 0.0, 0

    def try_acquire(self) -> bool:
        """Take a slot at once if one is free and nobody waits for it."""
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return True
        return False

    async def acquire(self, key: str) -> None:
        """Wait for a slot (fairly); a 429 when the queue is full or the wait
        is too long."""
        if self.waiting >= self.max_waiting:
            self.shed += 1
            raise self._refusal("its queue is full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        queue.append(waiter)
        self.waiting += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                await waiter
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot came as the wait ended: give it on
            else:
                self._forget(key, waiter)
            if isinstance(exc, TimeoutError):
                self.shed += 1
                raise self._refusal(f"no slot was free within {self.timeout:g} s") from None
            raise
        self.waited += time.monotonic() - started
        self.admitted_after_wait += 1

    def release(self) -> None:
        """Free a slot: hand it to the next waiting key's oldest request."""
        while self._turns:
            key = self._turns.popleft()
            queue = self._queues[key]
            waiter = queue.popleft()
            if queue:
                self._turns.append(key)  # this key's next request waits for its next turn
            else:
                del self._queues[key]
            self.waiting -= 1
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: active stays the same
                return
        self.active -= 1

    def _forget(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self.waiting -= 1
            if not queue:
                del self._queues[key]
                self._turns.remove(key)

    def _refusal(self, why: str) -> PortwayError:
        return PortwayError(
            f"{'target' if '/' in self.name else 'provider'} {self.name!r} is at its limit of {self.limit} "
            f"requests at once and {why}; retry shortly",
            kind="rate_limit", code="queue_full", retry_after=str(max(1, math.ceil(self.timeout))))

    def view(self) -> dict[str, Any]:
        return {("target" if "/" in self.name else "provider"): self.name, "max_concurrency": self.limit, "in_flight": self.active,
                "waiting": self.waiting, "shed": self.shed,
                "mean_wait_ms": round(1000 * self.waited / self.admitted_after_wait, 3)
                if self.admitted_after_wait else 0.0}


class Limiters:
    """The limiters of one gateway: one per provider instance with
    ``max_concurrency``, one per configured target with its own."""

    def __init__(self, gateway: Any) -> None:
        queue = gateway.config.routing.queue
        self.by_provider: dict[str, Limiter] = {
            name: Limiter(name, provider.config.max_concurrency, queue.max_waiting, queue.timeout)
            for name, provider in gateway.providers.items()
            if getattr(provider.config, "max_concurrency", None)
        }
        self.by_target: dict[str, Limiter] = {}
        for route in gateway.aliases.values():
            for target in route.targets:
                if target.max_concurrency and target.name not in self.by_target:
                    self.by_target[target.name] = Limiter(target.name, target.max_concurrency, queue.max_waiting,
                                                          queue.timeout)
        self.any = bool(self.by_provider or self.by_target)

    def of(self, target: Any) -> list[Limiter]:
        """The limiters a request to ``target`` takes a slot of: the
        target's own first, then its provider's (always in that order, so
        two requests never hold one each while waiting for the other)."""
        found = []
        if self.by_target:
            own = self.by_target.get(target.name)
            if own is not None:
                found.append(own)
        provider = self.by_provider.get(target.provider.name)
        if provider is not None:
            found.append(provider)
        return found

    def views(self) -> list[dict[str, Any]]:
        return [limiter.view() for limiter in (*self.by_target.values(), *self.by_provider.values())]


def take_free(ctx: Any, limiters: list[Limiter]) -> list[Limiter]:
    """Take every slot that is free at once, in order, until one is not;
    returns the limiters still to wait for (the taken ones are held)."""
    held: list[Limiter] = ctx.metadata.setdefault(SLOT, [])
    for i, limiter in enumerate(limiters):
        if not limiter.try_acquire():
            return limiters[i:]
        held.append(limiter)
    return []


async def wait_for_slots(ctx: Any, limiters: list[Limiter]) -> None:
    """Wait for a slot of each of ``limiters``, in order (a refusal releases
    what this request already holds, when the caller's attempt ends)."""
    held: list[Limiter] = ctx.metadata.setdefault(SLOT, [])
    for limiter in limiters:
        await limiter.acquire(ctx.key_id or "anonymous")
        held.append(limiter)


def release(ctx: Any) -> None:
    """Give back the slots the request holds, if any (idempotent)."""
    held = ctx.metadata.pop(SLOT, None)
    for limiter in held or ():
        limiter.release()


__all__ = ["SLOT", "Limiter", "Limiters", "release", "take_free", "wait_for_slots"]
