"""JSON in and out of the gateway.

orjson is several times faster than the stdlib ``json`` on both parse and
serialise, and it returns ``bytes``, which is what the ASGI server and the
upstream client want anyway (see docs/architecture.md for the figures).
"""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)
