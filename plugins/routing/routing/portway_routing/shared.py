"""Open circuits shared between workers and machines through Redis
(``routing.breaker.redis_url``).

Each process keeps its own breakers (:mod:`portway_routing.breaker`) and
its request path never waits on Redis.  What is shared is the decision:

- when a process opens a target's circuit, a background task records it
  in one Redis hash (``routing.breaker.redis_key``): ``target -> the epoch
  second the cooldown ends`` (the later one wins when two processes open
  it at once);
- every ``sync_interval`` each process reads the hash, and opens its own
  breaker for every target whose shared cooldown has not ended, for what
  is left of it: the other workers stop calling a dead upstream within
  a second of the first one giving up on it, instead of each paying
  ``failures`` failed requests of its own;
- a process whose probe closes a circuit removes the target from the
  hash.

After a cooldown each process probes on its own (at most one probe per
process).  Redis being down only costs the sharing: each process goes on
with its own breakers, and the failure is logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from portway_routing.breaker import OPEN, Breakers

log = logging.getLogger("portway.routing")

#: Sets the field to the later of its value and ARGV[2]; fields expire with the hash's last cooldown.
_OPEN_UNTIL = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local ttl = redis.call('TTL', KEYS[1])
local wanted = math.ceil(tonumber(ARGV[3]))
if ttl < wanted then redis.call('EXPIRE', KEYS[1], wanted) end
return 1
"""


class SharedState:
    """One gateway's link to the shared circuits."""

    def __init__(self, config: Any, breakers: Breakers) -> None:
        import redis.asyncio as redis  # only a gateway that shares its breakers needs the client

        self.config = config
        self.breakers = breakers
        self.client = redis.from_url(config.redis_url)
        self._changes: asyncio.Queue[tuple[str, float]] = asyncio.Queue(maxsize=10_000)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        breakers.listener = self.changed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="portway-routing-shared-breakers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._push()  # what changed last still reaches the others
        await self.client.aclose()

    def changed(self, target: str, state: str, cooldown_left: float) -> None:
        """A local breaker opened (``cooldown_left`` seconds) or closed (0):
        queued for the background task; never waits."""
        until = time.time() + cooldown_left if state == OPEN else 0.0
        try:
            self._changes.put_nowait((target, until))
        except asyncio.QueueFull:
            return  # sharing is best effort; the local breaker already acted
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._push()
            await self._pull()
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.sync_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _push(self) -> None:
        key = self.config.redis_key
        while not self._changes.empty():
            target, until = self._changes.get_nowait()
            try:
                if until:
                    await self.client.eval(_OPEN_UNTIL, 1, key, target, repr(until), until - time.time() + 1)
                else:
                    await self.client.hdel(key, target)
                self._recovered()
            except Exception as exc:  # Redis down: keep the local state, say so once
                self._failed(exc)
                return

    async def _pull(self) -> None:
        try:
            shared = await self.client.hgetall(self.config.redis_key)
            self._recovered()
        except Exception as exc:
            self._failed(exc)
            return
        now, wall = time.monotonic(), time.time()
        for raw_target, raw_until in shared.items():
            left = float(raw_until) - wall
            if left > 0:
                self.breakers.get(raw_target.decode()).opened_elsewhere(now, left)

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("routing: cannot share circuit breakers through Redis (%s); each process keeps its own "
                        "until it answers", type(exc).__name__)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("routing: sharing circuit breakers through Redis again")


__all__ = ["SharedState"]
