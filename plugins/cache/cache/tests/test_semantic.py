"""The semantic cache's pieces: what is embedded, and the in-process search."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from portway_cache.cache import prompt_text
from portway_cache.semantic import Bucket, unit


def rows(*vectors: tuple[str, list[float]]) -> list[tuple[str, bytes]]:
    return [(key, unit(v).tobytes()) for key, v in vectors]


def test_the_best_is_the_most_similar_and_the_newest_on_a_tie() -> None:
    bucket = Bucket()
    bucket.add(rows(("a", [1, 0, 0]), ("b", [0, 1, 0]), ("c", [1, 0, 0])))
    key, score = bucket.best(unit([0.9, 0.1, 0]))  # type: ignore[misc]
    assert key == "c" and score == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert bucket.best(unit([0, 1, 0])) == ("b", pytest.approx(1.0))


def test_a_bucket_grows_past_its_room_and_finds_every_vector() -> None:
    rng = np.random.default_rng(3)
    vectors = [unit(v) for v in rng.standard_normal((100, 8))]
    bucket = Bucket()
    for i in range(0, 100, 7):  # reads of several sizes, as lookups bring them
        bucket.add([(str(j), vectors[j].tobytes()) for j in range(i, min(i + 7, 100))])
    assert len(bucket) == bucket.count == 100
    for j in (0, 15, 16, 33, 64, 99):
        assert bucket.best(vectors[j])[0] == str(j)  # type: ignore[index]


def test_a_new_width_starts_the_bucket_again_and_other_widths_find_nothing() -> None:
    bucket = Bucket()
    bucket.add(rows(("old", [1, 0])))
    bucket.add(rows(("new", [0, 0, 1])))
    assert bucket.keys == ["new"] and bucket.count == 2
    assert bucket.best(unit([1, 0])) is None
    assert Bucket().best(unit([1, 0])) is None


@pytest.mark.parametrize(("messages", "expected"), [
    ([{"role": "user", "content": "hi there"}], ("hi there", [])),
    ([{"role": "system", "content": "be brief"}, {"role": "user", "content": [
        {"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}],
     ("one\ntwo", [{"role": "system", "content": "be brief"}])),
    ([{"role": "user", "content": [{"type": "text", "text": "look"},
                                   {"type": "image_url", "image_url": {"url": "data:,"}}]}], None),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], None),
    ([{"role": "tool", "tool_call_id": "x", "content": "42"}], None),
    ([{"role": "user", "content": "   "}], None),
    ([], None),
])
def test_what_is_embedded(messages: list[dict[str, Any]], expected: Any) -> None:
    assert prompt_text(messages) == expected


def test_a_large_bucket_is_searched_through_an_hnsw_index_with_the_same_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("usearch")  # the [ann] extra; the test extras install it
    from portway_cache import semantic

    monkeypatch.setattr(semantic, "ANN_FROM", 64)
    rng = np.random.default_rng(5)
    vectors = [unit(v) for v in rng.standard_normal((200, 32))]
    indexed, brute = Bucket(), Bucket()
    for start in range(0, 200, 40):  # the index is built at 64 and then grows with each read
        indexed.add([(str(j), vectors[j].tobytes()) for j in range(start, start + 40)])
    monkeypatch.setattr(semantic, "_HNSW", None)
    brute.add([(str(j), vectors[j].tobytes()) for j in range(200)])
    assert indexed.indexed and not brute.indexed
    for j in (0, 63, 64, 150, 199):
        near = unit(vectors[j] + 0.05 * rng.standard_normal(32))
        (key, score), (brute_key, brute_score) = indexed.best(near), brute.best(near)  # type: ignore[misc]
        assert key == brute_key == str(j) and score == pytest.approx(brute_score, abs=1e-4)
