"""What every cache backend and the cache plugin share: the canonical key of
a request, the backend contract, and single flight.

The cache itself is a plugin (``portway-cache``, see ``docs/caching.md``):
it looks answers up in ``pre_request`` and stores them in
``post_response``.  A stored answer is a canonical ``chat.completion``;
replaying it as a stream is the core's own job already
(:meth:`portway.gateway.Gateway.open_stream` turns a ``pre_request`` answer
into chunks with :func:`portway.formats.openai.completion_to_chunks`, and
``/v1/messages`` renders those as Anthropic events).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import orjson

#: Body fields that do not change the answer: how it is delivered (``stream``,
#: ``stream_options``), who asked (``user``, ``metadata``, ``safety_identifier``,
#: ``prompt_cache_key``), and whether the upstream keeps a copy (``store``).
#: ``model`` is replaced by the resolved targets.
NOT_IN_KEY = frozenset({"model", "stream", "stream_options", "user", "metadata", "store", "safety_identifier",
                        "prompt_cache_key", "service_tier"})

#: The namespace of a request that presented no key (no master key set).
ANONYMOUS = "anonymous"
#: The namespace every request shares under ``namespace: shared``.
SHARED = "shared"


def _digest(value: Any) -> str:
    # Sorted keys: the same request written with its fields in another order is the same request.
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16, person=b"portway-cache").hexdigest()


def route_identity(targets: Iterable[Any]) -> list[Any]:
    """What a resolved model name stands for: each target's provider
    instance, upstream model and fixed params, in order.  Two aliases with the
    same targets share entries; one alias whose targets change does not
    (an answer from the old model is not an answer from the new one)."""
    return [[t.provider.name, t.model, [list(p) for p in t.params]] for t in targets]


def request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The body's fields that determine the answer (see :data:`NOT_IN_KEY`)."""
    return {k: v for k, v in body.items() if k not in NOT_IN_KEY}


def namespace_for(key_id: str | None, shared: bool) -> str:
    """Entries are kept apart per client key (``ctx.key_id``) unless the
    cache is shared."""
    if shared:
        return SHARED
    return key_id or ANONYMOUS


def cache_key(namespace: str, endpoint: str, targets: Iterable[Any], body: dict[str, Any]) -> str:
    """The exact key of a request: ``<namespace>:<hash>``, the hash over the
    kind of answer (``endpoint``), the resolved targets and every field of
    ``body`` that determines the answer (messages, tools, tool_choice,
    sampling parameters, response_format, seed, and any field Portway does not
    know, since it reaches the upstream too)."""
    return f"{namespace}:{_digest([endpoint, route_identity(targets), request_fields(body)])}"


def bucket_key(namespace: str, endpoint: str, targets: Iterable[Any], body: dict[str, Any],
               messages: list[Any]) -> str:
    """The semantic cache's bucket: the same as :func:`cache_key` but with
    ``messages`` (the conversation before the prompt that is embedded) in
    place of the body's messages.  Only entries of one bucket are compared
    by similarity: same namespace, model, parameters and history."""
    fields = request_fields(body)
    fields["messages"] = messages
    return f"{namespace}:{_digest(['semantic', endpoint, route_identity(targets), fields])}"


def namespace_of(key: str) -> str:
    return key.partition(":")[0]


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached answers live.  Keys are ``<namespace>:<hash>`` (see
    :func:`cache_key`); values are opaque bytes.  Every method is async and
    must not block the event loop.  A backend registers through the
    ``register_cache_backends`` hook."""

    async def start(self) -> None:
        """Open connections and files (at the gateway's start-up)."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, replacing any entry."""

    async def delete(self, key: str) -> bool:
        """Remove one entry; whether it was there."""

    async def clear(self, namespace: str | None = None) -> int:
        """Remove every entry (and vector) of ``namespace``, or all of this
        cache's; how many entries went (backends that cannot count cheaply
        may give an estimate)."""

    async def add_vector(self, bucket: str, key: str, vector: bytes, ttl: float) -> None:
        """Append the embedding (float32 bytes) of entry ``key`` to ``bucket``
        (the semantic cache).  Kept at least ``ttl`` seconds."""

    async def vectors(self, bucket: str, start: int) -> tuple[list[tuple[str, bytes]], int]:
        """The vectors of ``bucket`` from position ``start`` on, in the order
        they were added, and how many the bucket holds in all (less than
        ``start`` when it was cleared or expired meanwhile: the caller then
        reads it again from 0)."""

    async def close(self) -> None:
        """Release connections and files."""


class SingleFlight:
    """Concurrent identical misses make one upstream call.

    The first request for a key leads (:meth:`lead` returns None); each
    later one gets the leader's future and waits for it.  The leader settles
    it with the answer it got (:meth:`done`) or with None when it failed,
    was cut short or must not be stored (:meth:`abandon`); waiters then go
    upstream themselves.  Per process and per event loop: workers and
    replicas do not wait for each other (their shared backend still stores
    one answer for all)."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def lead(self, key: str) -> asyncio.Future[Any] | None:
        """None: the caller leads the flight for ``key`` and must end it with
        :meth:`done` or :meth:`abandon`.  Otherwise the flight to wait for."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight
        self._flights[key] = asyncio.get_running_loop().create_future()
        return None

    def resolve(self, key: str, answer: Any) -> None:
        """Hand ``answer`` to the waiters now; the flight stays open (new
        arrivals still wait) until :meth:`done`."""
        flight = self._flights.get(key)
        if flight is not None and not flight.done():
            flight.set_result(answer)

    def done(self, key: str, answer: Any = None) -> None:
        """End the flight: waiters get ``answer`` (None: go upstream yourself)."""
        self.resolve(key, answer)
        self._flights.pop(key, None)

    abandon = done

    @staticmethod
    async def wait(flight: asyncio.Future[Any]) -> Any:
        """The leader's answer (None when it had none to share).  A waiter
        that is cancelled (its client left) does not cancel the flight."""
        return await asyncio.shield(flight)
