"""The depth check on parsed JSON: the encoder's way (large bodies) and the
walk (small ones) agree with each other and with the definition."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from portway import serialization
from portway.serialization import _walk_deeper_than, nests_deeper_than


def nested(depth: int) -> Any:
    """``depth`` containers, lists and objects in turn, around a string."""
    value: Any = "leaf"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def test_the_encoders_limit_is_found() -> None:
    assert serialization.ENCODER_MAX_DEPTH == 254  # orjson 3's; found at import, not assumed
    orjson.dumps(nested(254))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(255))


@pytest.mark.parametrize("limit", [0, 1, 2, 7, 100, 253, 254, 400])
def test_both_ways_say_deeper_exactly_past_the_limit(limit: int) -> None:
    for depth in range(max(0, limit - 3), limit + 4):
        value = nested(depth)
        expected = depth > limit
        assert nests_deeper_than(value, limit) is expected, (limit, depth)  # large: the encoder
        assert nests_deeper_than(value, limit, size=10) is expected, (limit, depth)  # small: the walk
        assert _walk_deeper_than(value, limit) is expected, (limit, depth)


def test_a_wide_value_is_measured_by_its_deepest_branch() -> None:
    value = {"tools": [{"schema": {"type": "object"}} for _ in range(500)], "deep": nested(98), "text": "x" * 9000}
    assert not nests_deeper_than(value, 99)  # 1 + 98
    assert nests_deeper_than(value, 98)
    assert nests_deeper_than(value, 98, size=len(orjson.dumps(value))) is True


def test_the_value_is_not_kept_after_the_check() -> None:
    value = nested(3)
    nests_deeper_than(value, 100)
    outer, inner = serialization._wrappers.by_limit[100]
    assert inner == [None]  # the wrapper holds nothing between calls


def test_another_encoding_failure_is_decided_by_the_walk() -> None:
    # Not from parsed JSON (orjson parses big integers as floats), but the check must not call it deep.
    assert nests_deeper_than([[2**70]], 100) is False
    assert nests_deeper_than([[2**70], nested(100)], 100) is True


def test_threads_check_their_own_values() -> None:
    results: dict[int, list[bool]] = {}

    def check(depth: int) -> None:
        value = nested(depth)
        results[depth] = [nests_deeper_than(value, 100) for _ in range(2000)]

    threads = [threading.Thread(target=check, args=(depth,)) for depth in (50, 150)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results[50]) == {False} and set(results[150]) == {True}
