"""The request log's HTTP API (behind the master key when one is set):

- ``GET /admin/logs``: records, newest first, filtered, with cursor pagination;
- ``GET /admin/logs/{request_id}``: one record with its bodies and feedback;
- ``DELETE /admin/logs?key_id=…`` / ``?tag.<name>=…``: data-subject deletion;
- ``GET /admin/logs/stats``: this worker's sink counters;
- ``GET /admin/analytics``: figures per group and time bucket;
- ``POST /v1/feedback``: a quality signal attached to a logged request.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response

from portway.config import Duration
from portway.endpoints.common import JSONResponse, authenticate, error_response, read_json, request_id_of
from portway.errors import PortwayError
from portway.schemas import validate
from portway.stores.sql import StoreUnavailable
from portway_log.sink import LogSink
from portway_log.store import Filters, LogStore, summarise

log = logging.getLogger("portway.log")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
#: Seconds a read waits for this worker's queued records to be written first.
FLUSH_TIMEOUT = 2.0

_DURATION: TypeAdapter[float] = TypeAdapter(Duration)

_FILTER_KEYS = ("since", "until", "model", "provider", "status", "key_id", "request_id")


def _bad(message: str, param: str | None = None) -> PortwayError:
    return PortwayError(message, kind="bad_request", code="invalid_parameter", param=param)


def timestamp(value: str, param: str) -> float:
    """Unix seconds, or an ISO 8601 time (UTC when it names no zone)."""
    try:
        number = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _bad(f"{param}: {value!r} is neither unix seconds nor an ISO 8601 time", param) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(number):
        raise _bad(f"{param}: {value!r} is not a time", param)
    return number


def filters_from(request: Request, allowed: tuple[str, ...]) -> Filters:
    filters = Filters()
    for name, value in request.query_params.multi_items():
        if name.startswith("tag.") and len(name) > 4:
            filters.tags[name[4:]] = value
        elif name in ("since", "until"):
            setattr(filters, name, timestamp(value, name))
        elif name == "status":
            if value in ("error", "ok"):
                filters.errors_only = value == "error"
            elif value.isdigit() and len(value) == 3:
                filters.status = int(value)
            else:
                raise _bad(f"status: {value!r} is not an HTTP status, 'error' or 'ok'", "status")
        elif name in _FILTER_KEYS:
            setattr(filters, name, value)
        elif name not in allowed:
            known = ", ".join([*_FILTER_KEYS, "tag.<name>", *allowed])
            raise _bad(f"unknown query parameter {name!r} (known: {known})", name)
    return filters


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise _bad(f"{name}: must be a whole number from {low} to {high}", name)
    return int(value)


Handler = Callable[[Request, LogSink], Any]


def endpoint(sink_of: Callable[[Any], LogSink | None], handler: Handler) -> Callable[[Request], Any]:
    """A route around ``handler``: errors in the API's shape, a 503 when
    logging is off or the store cannot be reached."""

    async def run(request: Request) -> Response:
        try:
            sink = sink_of(request.app.state.gateway)
            if sink is None:
                raise PortwayError("the request log is off (store: false)", kind="unavailable", code="log_disabled")
            return await handler(request, sink)
        except PortwayError as error:
            return error_response(error, "openai", request_id_of(request))
        except StoreUnavailable as exc:
            error = PortwayError(f"the log store is unavailable: {exc}"[:500], kind="unavailable",
                                 code="store_unavailable")
            return error_response(error, "openai", request_id_of(request))
        except Exception:  # never a traceback to the client
            request_id = request_id_of(request)
            log.exception("request log API: %s %s failed (request id %s)", request.method, request.url.path, request_id)
            return error_response(PortwayError(f"internal error (request id {request_id})", kind="server_error"),
                                  "openai", request_id)

    return run


async def _store(sink: LogSink) -> LogStore:
    await sink.flush(FLUSH_TIMEOUT)  # this worker's records so far, so a client reads what it just did
    return await sink.store()


async def list_logs(request: Request, sink: LogSink) -> Response:
    filters = filters_from(request, ("limit", "cursor"))
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    store = await _store(sink)
    try:
        data, next_cursor = await store.page(filters, limit, request.query_params.get("cursor"))
    except ValueError as exc:
        raise _bad(f"cursor: {exc}", "cursor") from None
    return JSONResponse({"data": data, "next_cursor": next_cursor})


async def one_log(request: Request, sink: LogSink) -> Response:
    request_id = request.path_params["request_id"]
    record = await (await _store(sink)).get(request_id)
    if record is None:
        raise PortwayError(f"no logged request {request_id!r}", kind="not_found", code="log_not_found")
    return JSONResponse(record)


async def delete_logs(request: Request, sink: LogSink) -> Response:
    filters = filters_from(request, ())
    if filters.key_id is None and not filters.tags:
        raise _bad("say whose records to delete: key_id=… and/or tag.<name>=… (other filters narrow it)", "key_id")
    deleted = await (await _store(sink)).delete(filters)
    return JSONResponse({"deleted": deleted})


async def stats(request: Request, sink: LogSink) -> Response:
    return JSONResponse(sink.stats())


_GROUPS = ("model", "provider", "key")


async def analytics(request: Request, sink: LogSink) -> Response:
    filters = filters_from(request, ("group_by", "bucket"))
    group_by = request.query_params.get("group_by")
    if group_by is not None and group_by not in _GROUPS and not (group_by.startswith("tag.") and len(group_by) > 4):
        raise _bad(f"group_by: {group_by!r}: use model, provider, key or tag.<name>", "group_by")
    bucket = None
    if request.query_params.get("bucket"):
        try:
            bucket = _DURATION.validate_python(request.query_params["bucket"])
        except ValidationError:
            raise _bad("bucket: write a duration such as 1h, 15m, 1d or a number of seconds", "bucket") from None
        if bucket <= 0:
            raise _bad("bucket: must be longer than 0", "bucket")
    limit = sink.config.analytics_max_rows
    rows, scores = await (await _store(sink)).analytics_rows(filters, group_by, limit)
    truncated = len(rows) > limit
    rows = rows[len(rows) - limit:] if truncated else rows  # the newest
    return JSONResponse({"group_by": group_by, "bucket_seconds": bucket, "since": filters.since,
                         "until": filters.until, "rows": len(rows), "truncated": truncated,
                         "data": summarise(rows, scores, bucket)})


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=128)
    score: float | None = None
    label: str | None = Field(None, max_length=128)
    comment: str | None = Field(None, max_length=8192)

    @field_validator("score", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or (value is not None and not isinstance(value, (int, float))):
            raise ValueError("must be a number")
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return float(value) if value is not None else None


async def feedback(request: Request, sink: LogSink) -> Response:
    key_id = authenticate(request.app.state.gateway, request)
    body, _ = await read_json(request, 64 * 1024)
    validate(Feedback, body)  # a 400 naming the first bad field
    given = Feedback.model_validate(body)
    if given.score is None and given.label is None:
        raise _bad("send a score, a label, or both", "score")
    store = await sink.store()
    if not await store.exists(given.request_id):
        # The record may still be on its way to the store: write the queue, then look again.
        await sink.flush(FLUSH_TIMEOUT)
        if not await store.exists(given.request_id):
            raise PortwayError(f"no logged request {given.request_id!r}", kind="not_found", code="log_not_found",
                               param="request_id")
    feedback_id = "fb_" + os.urandom(12).hex()
    await store.add_feedback(feedback_id, given.request_id, time.time(), key_id, given.score, given.label,
                             given.comment)
    return JSONResponse({"id": feedback_id, "object": "feedback", "request_id": given.request_id,
                         "score": given.score, "label": given.label}, status_code=201)
