"""JSON in and out of the gateway.

orjson is several times faster than the stdlib ``json`` on both parse and
serialise, and it returns ``bytes``, which is what the ASGI server and the
upstream client want anyway (see docs/architecture.md for the figures).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


#: ``dumps(obj) -> bytes`` and ``loads(data) -> object``: orjson's own
#: functions, not wrappers (a Python frame per call; the stream path calls
#: each once per chunk).
dumps: Callable[[Any], bytes] = orjson.dumps
loads: Callable[[bytes | bytearray | memoryview | str], Any] = orjson.loads


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _encoder_max_depth() -> int | None:
    """The deepest nesting of containers orjson's encoder serialises (254 in
    orjson 3), found once at import; None if it has no limit below 1,000."""
    value: Any = None
    for depth in range(1, 1001):
        value = [value]
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return depth - 1
    return None


ENCODER_MAX_DEPTH = _encoder_max_depth()

_wrappers = threading.local()


#: Below this many bytes of JSON, a walk in Python is the quicker check.
WALK_BELOW_BYTES = 4096


def nests_deeper_than(value: Any, limit: int, size: int | None = None) -> bool:
    """Whether ``value`` (a parsed JSON value, ``size`` bytes of JSON when
    known) nests containers deeper than ``limit``.

    orjson's encoder walks a value in C and refuses one nested deeper than
    :data:`ENCODER_MAX_DEPTH`; wrapped in ``ENCODER_MAX_DEPTH - limit`` lists,
    ``value`` is refused exactly when it is deeper than ``limit``.  On a
    112 KB agent request that is about 30 µs against 70 µs for a walk in
    Python (the wrapper is made once per thread and limit); a body under
    :data:`WALK_BELOW_BYTES` is walked, which is quicker there.  Without a
    usable encoder limit: the walk."""
    if (size is not None and size < WALK_BELOW_BYTES) or ENCODER_MAX_DEPTH is None \
            or not 0 <= limit < ENCODER_MAX_DEPTH:
        return _walk_deeper_than(value, limit)
    cache = getattr(_wrappers, "by_limit", None)
    if cache is None:
        cache = _wrappers.by_limit = {}
    wrapper = cache.get(limit)
    if wrapper is None:
        inner: list[Any] = [None]
        outer = inner
        for _ in range(ENCODER_MAX_DEPTH - limit - 1):
            outer = [outer]
        wrapper = cache[limit] = (outer, inner)
    outer, inner = wrapper
    inner[0] = value
    try:
        orjson.dumps(outer)
    except orjson.JSONEncodeError as exc:
        if "ecursion" in str(exc):
            return True
        return _walk_deeper_than(value, limit)  # (not from parsed JSON: decide by walking)
    finally:
        inner[0] = None
    return False


def _walk_deeper_than(value: Any, limit: int) -> bool:
    """:func:`nests_deeper_than` by a walk in Python, a level at a time."""
    if type(value) is not dict and type(value) is not list:
        return limit < 0
    if limit < 1:
        return True
    level: list[Any] = [value]
    depth = 1
    while level:
        deeper = []
        for node in level:
            for child in (node.values() if type(node) is dict else node):
                kind = type(child)
                if kind is dict or kind is list:
                    deeper.append(child)
        if deeper and depth >= limit:
            return True
        level = deeper
        depth += 1
    return False
