"""Where ``/v1/responses`` keeps the responses it produced, so a later
request can continue one (``previous_response_id``) and a client can read
or delete it (``GET`` / ``DELETE /v1/responses/{id}``, ``.../input_items``).

A :class:`ResponseRecord` holds the Response object, its input items, the
owner's key id (``ctx.key_id``), and which provider instance produced it and
whether natively (a target that speaks Responses itself knows the id, so a
later request to it can forward ``previous_response_id`` as it is).  Every
read takes the reader's key id: a record owned by another key is "not
found", never "forbidden", so ids cannot be probed.

:class:`MemoryResponseStore` is the default: one process's memory, bounded
by ``max_entries`` (least recently used first out) and an optional TTL.  A
store for the log store's database implements the same protocol.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: Longest ``previous_response_id`` chain :meth:`ResponseStore.history` follows.
MAX_CHAIN = 10_000


@dataclass(slots=True)
class ResponseRecord:
    """One stored response.  ``response`` and ``input_items`` are shared
    with the store, not copied: treat them as read-only."""

    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    key_id: str | None
    provider: str | None = None  # the provider instance that answered
    native: bool = False  # produced by an upstream that speaks Responses itself

    @property
    def id(self) -> str:
        return self.response["id"]

    @property
    def previous_response_id(self) -> str | None:
        return self.response.get("previous_response_id")


class ResponseStore(Protocol):
    """Async, so a database-backed store fits the same calls."""

    async def get(self, response_id: str, key_id: str | None) -> ResponseRecord | None:
        """The record, or None when there is none, it expired, or another key owns it."""
        ...

    async def put(self, record: ResponseRecord) -> None:
        """Store (or replace) ``record`` under its id."""
        ...

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        """Remove the record; False when :meth:`get` would not have found it."""
        ...

    async def history(self, response_id: str, key_id: str | None) -> list[dict[str, Any]] | None:
        """The items of the whole conversation up to and including
        ``response_id``: each earlier turn's input items then its output
        items, oldest turn first, following ``previous_response_id``.  None
        when any response of the chain cannot be read with ``key_id`` (a
        conversation with a hole in it would be a different conversation)."""
        chain: list[ResponseRecord] = []
        seen: set[str] = set()
        next_id: str | None = response_id
        while next_id is not None:
            if next_id in seen or len(chain) >= MAX_CHAIN:
                return None  # a loop (or a runaway chain) in stored data: refuse rather than spin
            seen.add(next_id)
            record = await self.get(next_id, key_id)
            if record is None:
                return None
            chain.append(record)
            next_id = record.previous_response_id
        items: list[dict[str, Any]] = []
        for record in reversed(chain):
            items += record.input_items
            items += record.response.get("output") or []
        return items


class MemoryResponseStore(ResponseStore):
    """Responses in this process's memory: at most ``max_entries`` (the
    least recently used go first), each for at most ``ttl`` seconds after it
    was stored (None: until evicted).  ``clock`` is for tests."""

    def __init__(self, max_entries: int = 10_000, ttl: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive")
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._records: OrderedDict[str, tuple[ResponseRecord, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _live(self, response_id: str, key_id: str | None) -> ResponseRecord | None:
        entry = self._records.get(response_id)
        if entry is None:
            return None
        record, expires = entry
        if expires is not None and self._clock() >= expires:
            del self._records[response_id]
            return None
        if record.key_id != key_id:
            return None
        return record

    async def get(self, response_id: str, key_id: str | None) -> ResponseRecord | None:
        record = self._live(response_id, key_id)
        if record is not None:
            self._records.move_to_end(response_id)
        return record

    async def put(self, record: ResponseRecord) -> None:
        expires = None if self.ttl is None else self._clock() + self.ttl
        self._records[record.id] = (record, expires)
        self._records.move_to_end(record.id)
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    async def delete(self, response_id: str, key_id: str | None) -> bool:
        if self._live(response_id, key_id) is None:
            return False
        del self._records[response_id]
        return True
