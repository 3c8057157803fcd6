"""The semantic cache's vector search, in process.

Each bucket (one namespace, model, parameter set and conversation history;
see :func:`portway.caching.bucket_key`) is a matrix of unit vectors searched
by brute force with numpy: one matrix-vector product gives every cosine.
Past :data:`ANN_FROM` vectors, when ``usearch`` is installed
(``pip install portway-cache[ann]``), the bucket is searched through an HNSW
index instead (measured with bench/cache_vectors.py; docs/caching.md).
The vectors live in the backend (so they survive restarts with SQLite and
are shared through Redis); each process keeps a copy per bucket and reads
only what was added since it last looked.
"""

from __future__ import annotations

import os
from typing import Any

# One matrix-vector product per lookup, on the event loop's thread: OpenBLAS's
# own threads only add wake-ups to it (measured on 2 cores: a 1,000-vector search
# took 8 ms with them and 75 µs without).  Only when nothing chose before us.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

try:
    from usearch.index import Index as _HNSW
except ImportError:  # the optional extra: brute force at every size
    _HNSW = None

#: Vectors in a bucket from which it is searched with an HNSW index (when
#: usearch is installed): below it brute force is as fast (bench/cache_vectors.py).
ANN_FROM = 10_000


def unit(vector: Any) -> np.ndarray:
    """``vector`` as float32 of length one (a zero vector stays zero)."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


class Bucket:
    """The vectors of one bucket, in the order the backend holds them."""

    __slots__ = ("keys", "_buffer", "count", "_index")

    def __init__(self) -> None:
        self.keys: list[str] = []
        #: Rows ``[0, len(keys))`` are the vectors; the rest is room to grow
        #: (doubling, so an append costs O(1) amortised, not a copy of the bucket).
        self._buffer: np.ndarray | None = None
        #: How many of the backend's vectors are here (where the next read starts).
        self.count = 0
        #: The HNSW index of a large bucket (None: brute force).
        self._index: Any = None

    def reset(self) -> None:
        self.keys, self._buffer, self.count, self._index = [], None, 0, None

    def add(self, rows: list[tuple[str, bytes]]) -> None:
        """Append what the backend added since the last read."""
        self.count += len(rows)
        first = len(self.keys)
        for key, raw in rows:
            vector = np.frombuffer(raw, dtype=np.float32)
            buffer = self._buffer
            if buffer is None or buffer.shape[1] != vector.shape[0]:
                # The first vector, or the embedding model changed its width: older ones cannot be compared.
                self.keys, buffer, self._index, first = [], np.empty((16, vector.shape[0]), dtype=np.float32), None, 0
            elif len(self.keys) == buffer.shape[0]:
                grown = np.empty((buffer.shape[0] * 2, buffer.shape[1]), dtype=np.float32)
                grown[:len(self.keys)] = buffer
                buffer = grown
            buffer[len(self.keys)] = vector
            self._buffer = buffer
            self.keys.append(key)
        size = len(self.keys)
        if self._index is not None:
            if size > first:
                self._index.add(np.arange(first, size), self._buffer[first:size])  # type: ignore[index]
        elif _HNSW is not None and size >= ANN_FROM:
            self._index = _HNSW(ndim=self._buffer.shape[1], metric="cos", dtype="f32")  # type: ignore[union-attr]
            self._index.add(np.arange(size), self._buffer[:size])  # type: ignore[index]

    @property
    def indexed(self) -> bool:
        """Whether lookups go through the HNSW index."""
        return self._index is not None

    def best(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The most similar entry and its cosine similarity, newest first on a tie."""
        if self._buffer is None or not self.keys or self._buffer.shape[1] != vector.shape[0]:
            return None
        if self._index is not None:
            found = self._index.search(vector, 1)
            if not len(found.keys):
                return None
            return self.keys[int(found.keys[0])], 1.0 - float(found.distances[0])  # cosine distance
        scores = self._buffer[:len(self.keys)] @ vector
        # The newest of equal scores: reversed, so argmax's first is the last added.
        index = len(scores) - 1 - int(np.argmax(scores[::-1]))
        return self.keys[index], float(scores[index])

    def __len__(self) -> int:
        return len(self.keys)
