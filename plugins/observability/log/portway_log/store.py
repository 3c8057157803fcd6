"""The request log's tables and queries, on a :class:`portway.stores.sql.Database`.

Tables (component ``log`` in ``schema_migrations``):

- ``log_requests``: one row per request (:data:`portway_log.record.COLUMNS`);
- ``log_tags``: the request's metadata tags, one row per tag, so filtering
  and deleting by tag is plain indexed SQL on both dialects;
- ``log_feedback`` (version 2): quality signals attached to a request id.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from portway import serialization
from portway.stores.sql import Connection, Database, Migration
from portway_log.record import COLUMNS, JSON_COLUMNS

COMPONENT = "log"

MIGRATIONS = (
    Migration(1, """
        CREATE TABLE log_requests (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            trace_id TEXT,
            time DOUBLE PRECISION NOT NULL,
            logged_at DOUBLE PRECISION NOT NULL,
            endpoint TEXT NOT NULL,
            client_format TEXT NOT NULL,
            stream BIGINT NOT NULL,
            key_id TEXT,
            tags TEXT,
            model TEXT,
            alias TEXT,
            provider TEXT,
            provider_model TEXT,
            attempts BIGINT NOT NULL,
            failures TEXT,
            status BIGINT NOT NULL,
            error_kind TEXT,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cached_tokens BIGINT,
            reasoning_tokens BIGINT,
            cost DOUBLE PRECISION,
            latency_ms DOUBLE PRECISION,
            ttft_ms DOUBLE PRECISION,
            output_tokens_per_s DOUBLE PRECISION,
            cache_status TEXT,
            verdicts TEXT,
            request_body TEXT,
            response_body TEXT,
            body_truncated BIGINT NOT NULL DEFAULT 0);
        CREATE INDEX log_requests_time ON log_requests (time, id);
        CREATE INDEX log_requests_logged_at ON log_requests (logged_at);
        CREATE INDEX log_requests_request_id ON log_requests (request_id);
        CREATE INDEX log_requests_key_id ON log_requests (key_id);
        CREATE TABLE log_tags (
            row_id TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT NOT NULL);
        CREATE INDEX log_tags_name_value ON log_tags (name, value);
        CREATE INDEX log_tags_row_id ON log_tags (row_id)
    """),
    Migration(2, """
        CREATE TABLE log_feedback (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            key_id TEXT,
            score DOUBLE PRECISION,
            label TEXT,
            comment TEXT);
        CREATE INDEX log_feedback_request_id ON log_feedback (request_id)
    """),
)

_TAG_COLUMNS = ("row_id", "name", "value")

#: Columns of a record in ``GET /admin/logs`` (the bodies only in a single record).
LIST_COLUMNS = tuple(c for c in COLUMNS if c not in ("request_body", "response_body"))


@dataclass
class Filters:
    """What ``GET /admin/logs``, the analytics and the deletes select by."""

    since: float | None = None
    until: float | None = None
    model: str | None = None
    provider: str | None = None
    status: int | None = None
    errors_only: bool | None = None  # True: status >= 400; False: below
    key_id: str | None = None
    request_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("model", self.model), ("provider", self.provider), ("status", self.status),
                              ("key_id", self.key_id), ("request_id", self.request_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since is not None:
            clauses.append("time >= ?")
            args.append(self.since)
        if self.until is not None:
            clauses.append("time < ?")
            args.append(self.until)
        if self.errors_only is not None:
            clauses.append("status >= 400" if self.errors_only else "status < 400")
        for name, value in sorted(self.tags.items()):
            clauses.append("id IN (SELECT row_id FROM log_tags WHERE name = ? AND value = ?)")
            args += [name, value]
        return (" AND ".join(clauses) or "1 = 1"), args

    def is_empty(self) -> bool:
        return self == Filters()


def encode_cursor(time: float, row_id: str) -> str:
    return base64.urlsafe_b64encode(serialization.dumps([time, row_id])).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError for anything :func:`encode_cursor` did not make."""
    try:
        time, row_id = serialization.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception as exc:
        raise ValueError("not a cursor from this API") from exc
    if not isinstance(time, (int, float)) or not isinstance(row_id, str):
        raise ValueError("not a cursor from this API")
    return float(time), row_id


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    for column in JSON_COLUMNS:
        if row.get(column) is not None:
            row[column] = serialization.loads(row[column])
    for column in ("stream", "body_truncated"):
        if column in row:
            row[column] = bool(row[column])
    return row


class LogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def migrate(self) -> list[int]:
        return await self.db.migrate(COMPONENT, MIGRATIONS)

    async def write(self, rows: Sequence[tuple[Any, ...]], tags: Sequence[tuple[str, str, str]]) -> None:
        # One call (on SQLite one trip to its thread): a writer that awaits once per
        # statement gets one event-loop turn each, and fell behind a loaded gateway.
        await self.db.insert_tables([("log_requests", COLUMNS, rows), ("log_tags", _TAG_COLUMNS, tags)])

    async def page(self, filters: Filters, limit: int, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, ``limit`` records after ``cursor``; and the cursor of the next page (None: no more)."""
        where, args = filters.where()
        if cursor is not None:
            time, row_id = decode_cursor(cursor)
            where += " AND (time < ? OR (time = ? AND id < ?))"
            args += [time, time, row_id]
        rows = await self.db.fetch(
            f"SELECT {', '.join(LIST_COLUMNS)} FROM log_requests WHERE {where} ORDER BY time DESC, id DESC LIMIT ?",
            *args, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["time"], rows[-1]["id"]) if more and rows else None
        return [_decoded(row) for row in rows], next_cursor

    async def get(self, request_id: str) -> dict[str, Any] | None:
        """The newest record with this request id (clients may reuse ``x-request-id``), with its feedback."""
        rows = await self.db.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM log_requests WHERE request_id = ? ORDER BY time DESC, id DESC LIMIT 1",
            request_id)
        if not rows:
            return None
        record = _decoded(rows[0])
        record["feedback"] = await self.db.fetch(
            "SELECT id, time, key_id, score, label, comment FROM log_feedback WHERE request_id = ? ORDER BY time",
            request_id)
        return record

    async def exists(self, request_id: str) -> bool:
        return bool(await self.db.fetch("SELECT 1 AS found FROM log_requests WHERE request_id = ? LIMIT 1", request_id))

    async def add_feedback(self, feedback_id: str, request_id: str, time: float, key_id: str | None,
                           score: float | None, label: str | None, comment: str | None) -> None:
        await self.db.execute(
            "INSERT INTO log_feedback (id, request_id, time, key_id, score, label, comment) VALUES (?, ?, ?, ?, ?, ?, ?)",
            feedback_id, request_id, time, key_id, score, label, comment)

    async def delete(self, filters: Filters) -> int:
        """Delete the matching records, their tags and their feedback; how many records."""
        where, args = filters.where()
        async with self.db.transaction() as conn:
            if not filters.tags:
                return await _delete(conn, where, args)
            # The filter reads log_tags, which the delete empties first: settle the rows before.
            ids = [row["id"] for row in await conn.fetch(f"SELECT id FROM log_requests WHERE {where}", *args)]
            deleted = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                deleted += await _delete(conn, f"id IN ({', '.join('?' * len(chunk))})", chunk)
            return deleted

    async def sweep(self, before: float, chunk: int = 2000) -> int:
        """Retention: delete every record that started before ``before``, a
        chunk per transaction (a long delete would hold SQLite's one write
        lock while every worker's batches wait)."""
        deleted = 0
        while True:
            async with self.db.transaction() as conn:
                ids = [row["id"] for row in await conn.fetch(
                    "SELECT id FROM log_requests WHERE time < ? ORDER BY time LIMIT ?", before, chunk)]
                if ids:
                    deleted += await _delete(conn, f"id IN ({', '.join('?' * len(ids))})", ids)
            if len(ids) < chunk:
                return deleted

    async def analytics_rows(self, filters: Filters, group_by: str | None, max_rows: int
                             ) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
        """The rows analytics are computed from (the newest ``max_rows + 1``,
        oldest first), each with ``group`` set; and the feedback scores per
        request id."""
        where, args = filters.where()
        rows = await self.db.fetch(
            "SELECT id, request_id, time, model, provider, key_id, status, input_tokens, output_tokens, "
            "cached_tokens, reasoning_tokens, cost, latency_ms, ttft_ms FROM log_requests "
            f"WHERE {where} ORDER BY time DESC, id DESC LIMIT ?", *args, max_rows + 1)
        rows.reverse()
        if group_by is not None and group_by.startswith("tag."):
            name = group_by[len("tag."):]
            tagged = await self.db.fetch(
                f"SELECT row_id, value FROM log_tags WHERE name = ? AND row_id IN (SELECT id FROM log_requests WHERE {where})",
                name, *args)
            values = {t["row_id"]: t["value"] for t in tagged}
            for row in rows:
                row["group"] = values.get(row["id"])
        else:
            column = {"model": "model", "provider": "provider", "key": "key_id"}.get(group_by or "")
            for row in rows:
                row["group"] = row[column] if column else None
        scores: dict[str, list[float]] = {}
        for item in await self.db.fetch(
                "SELECT request_id, score FROM log_feedback WHERE request_id IN "
                f"(SELECT request_id FROM log_requests WHERE {where})", *args):
            scores.setdefault(item["request_id"], []).append(item["score"])
        return rows, scores


async def _delete(conn: Connection, where: str, args: list[Any]) -> int:
    await conn.execute(f"DELETE FROM log_feedback WHERE request_id IN (SELECT request_id FROM log_requests WHERE {where})",
                       *args)
    await conn.execute(f"DELETE FROM log_tags WHERE row_id IN (SELECT id FROM log_requests WHERE {where})", *args)
    return await conn.execute(f"DELETE FROM log_requests WHERE {where}", *args)


# -- analytics ---------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of ``values`` (sorted ascending): the
    smallest value with at least ``p`` % of the values at or below it."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def _percentiles(values: list[float]) -> dict[str, float | None] | None:
    if not values:
        return None
    values.sort()
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99)}


def summarise(rows: list[dict[str, Any]], scores: dict[str, list[float]], bucket: float | None) -> list[dict[str, Any]]:
    """One entry per (time bucket, group): the figures ``GET /admin/analytics`` answers."""
    groups: dict[tuple[float | None, Any], list[dict[str, Any]]] = {}
    for row in rows:
        start = math.floor(row["time"] / bucket) * bucket if bucket else None
        groups.setdefault((start, row["group"]), []).append(row)
    out = []
    for (start, group), members in sorted(groups.items(), key=lambda kv: (kv[0][0] or 0, str(kv[0][1]))):
        errors = sum(1 for r in members if r["status"] >= 400)
        costs = [r["cost"] for r in members if r["cost"] is not None]
        feedback = [s for r in members for s in scores.get(r["request_id"], ()) if s is not None]
        counted = sum(len(scores.get(r["request_id"], ())) for r in members)
        out.append({
            "bucket": start,
            "group": group,
            "requests": len(members),
            "errors": errors,
            "error_rate": errors / len(members),
            **{name: sum(r[name] or 0 for r in members)
               for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")},
            "cost": sum(costs) if costs else None,
            "cost_unknown": len(members) - len(costs),
            "latency_ms": _percentiles([r["latency_ms"] for r in members if r["latency_ms"] is not None]),
            "ttft_ms": _percentiles([r["ttft_ms"] for r in members if r["ttft_ms"] is not None]),
            "feedback": {"count": counted, "mean_score": sum(feedback) / len(feedback) if feedback else None},
        })
    return out


async def newest(store: LogStore, count: int) -> list[dict[str, Any]]:
    """The ``count`` newest records, oldest first (for ``portway logs tail``)."""
    rows = await store.db.fetch(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM log_requests ORDER BY time DESC, id DESC LIMIT ?", count)
    return [_decoded(row) for row in reversed(rows)]



async def logged_since(store: LogStore, since: float, limit: int = 10_000) -> list[dict[str, Any]]:
    """Records written at or after ``since``, in the order they were written."""
    rows = await store.db.fetch(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM log_requests WHERE logged_at >= ? ORDER BY logged_at, time, id LIMIT ?",
        since, limit)
    return [_decoded(row) for row in rows]
