"""Queueing under spikes: at most ``max_concurrency`` requests in flight to a
provider instance; the rest wait, fairly, for a bounded time.

A provider instance with ``max_concurrency`` set gets a :class:`Limiter`.
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
            f"provider {self.name!r} is at its limit of {self.limit} requests at once and {why}; retry shortly",
            kind="rate_limit", code="queue_full", retry_after=str(max(1, math.ceil(self.timeout))))

    def view(self) -> dict[str, Any]:
        return {"provider": self.name, "max_concurrency": self.limit, "in_flight": self.active,
                "waiting": self.waiting, "shed": self.shed,
                "mean_wait_ms": round(1000 * self.waited / self.admitted_after_wait, 3)
                if self.admitted_after_wait else 0.0}


class Limiters:
    """The limiters of one gateway, one per provider instance with ``max_concurrency``."""

    def __init__(self, gateway: Any) -> None:
        queue = gateway.config.routing.queue
        self.by_provider: dict[str, Limiter] = {
            name: Limiter(name, provider.config.max_concurrency, queue.max_waiting, queue.timeout)
            for name, provider in gateway.providers.items()
            if getattr(provider.config, "max_concurrency", None)
        }


async def wait_for_slot(ctx: Any, limiter: Limiter) -> None:
    await limiter.acquire(ctx.key_id or "anonymous")
    ctx.metadata[SLOT] = limiter


def release(ctx: Any) -> None:
    """Give back the slot the request holds, if any (idempotent)."""
    limiter = ctx.metadata.pop(SLOT, None)
    if limiter is not None:
        limiter.release()


__all__ = ["SLOT", "Limiter", "Limiters", "release", "wait_for_slot"]
