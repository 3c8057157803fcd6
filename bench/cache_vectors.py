"""How the semantic cache should search its vectors: numpy brute force (what
portway-cache does: its own ``Bucket``, measured as it is) against an HNSW
index (usearch), by bucket size.

    python -m bench.cache_vectors             # needs numpy; usearch if installed (pip install usearch)

For each size N (vectors in one bucket, 1536 wide like text-embedding-3-small)
it reports the median time of one query, the time to add one vector, and for
the index its recall of the true nearest neighbour.  The brute-force search
is exact by construction.  docs/caching.md has the numbers and the choice.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from portway_cache import semantic
from portway_cache.semantic import Bucket

semantic._HNSW = None  # the brute-force column is brute force at every size

SIZES = (100, 1_000, 3_000, 10_000, 30_000)


def unit_rows(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    rows = rng.standard_normal((n, width)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def measure(n: int, width: int, queries_per_size: int, rng: np.random.Generator, index_class: Any) -> str:
    """One table row: bucket size ``n``."""
    data = unit_rows(rng, n, width)
    # Queries near stored vectors (a paraphrase is close to its original), so there is a true best.
    picks = rng.integers(0, n, queries_per_size)
    queries = data[picks] + 0.3 * unit_rows(rng, queries_per_size, width)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    bucket = Bucket()
    bucket.add([(str(i), row.tobytes()) for i, row in enumerate(data)])
    asked = iter(queries)
    brute_query = timed(lambda: bucket.best(next(asked)), queries_per_size)
    extra = iter([(f"new{i}", row.tobytes()) for i, row in enumerate(unit_rows(rng, 50, width))])
    brute_add = timed(lambda: bucket.add([next(extra)]), 20)
    row = f"| {n:,} | {brute_query:,.0f} | {brute_add:,.0f} |"
    if index_class is None:
        return row + " – | – | – |"
    index = index_class(ndim=width, metric="cos", dtype="f32")
    index.add(np.arange(n), data)
    asked = iter(queries)
    found: list[int] = []
    hnsw_query = timed(lambda: found.append(int(index.search(next(asked), 1).keys[0])), queries_per_size)
    recall = sum(int(f == p) for f, p in zip(found, picks, strict=True)) / len(picks)
    keys = iter(range(n, n + 50))
    hnsw_add = timed(lambda: index.add(next(keys), queries[0]), 20)
    return row + f" {hnsw_query:,.0f} | {hnsw_add:,.0f} | {recall:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(14)
    try:
        from usearch.index import Index
    except ImportError:
        Index = None  # noqa: N806
    print(f"width {args.width}, {args.queries} queries per size; µs, median\n")
    print("| vectors | brute force: query | brute force: add | HNSW: query | HNSW: add | HNSW: recall@1 |")
    print("|--:|--:|--:|--:|--:|--:|")
    for n in SIZES:
        print(measure(n, args.width, args.queries, rng, Index), flush=True)


if __name__ == "__main__":
    main()
