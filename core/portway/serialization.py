"""JSON in and out of the gateway.

orjson is several times faster than the stdlib ``json`` on both parse and
serialise, and it returns ``bytes``, which is what the ASGI server and the
upstream client want anyway (see docs/architecture.md for the figures).
"""

from __future__ import annotations

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
