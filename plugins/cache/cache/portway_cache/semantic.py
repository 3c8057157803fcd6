"""The semantic cache's vector search, in process.

Each bucket (one namespace, model, parameter set and conversation history;
see :func:`portway.caching.bucket_key`) is a matrix of unit vectors searched
by brute force with numpy: one matrix-vector product gives every cosine.
The vectors live in the backend (so they survive restarts with SQLite and
are shared through Redis); each process keeps a copy per bucket and reads
only what was added since it last looked.  Why not an ANN index: see
docs/caching.md (measured with bench/cache_vectors.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def unit(vector: Any) -> np.ndarray:
    """``vector`` as float32 of length one (a zero vector stays zero)."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


class Bucket:
    """The vectors of one bucket, in the order the backend holds them."""

    __slots__ = ("keys", "_buffer", "count")

    def __init__(self) -> None:
        self.keys: list[str] = []
        #: Rows ``[0, len(keys))`` are the vectors; the rest is room to grow
        #: (doubling, so an append costs O(1) amortised, not a copy of the bucket).
        self._buffer: np.ndarray | None = None
        #: How many of the backend's vectors are here (where the next read starts).
        self.count = 0

    def reset(self) -> None:
        self.keys, self._buffer, self.count = [], None, 0

    def add(self, rows: list[tuple[str, bytes]]) -> None:
        """Append what the backend added since the last read."""
        self.count += len(rows)
        for key, raw in rows:
            vector = np.frombuffer(raw, dtype=np.float32)
            buffer = self._buffer
            if buffer is None or buffer.shape[1] != vector.shape[0]:
                # The first vector, or the embedding model changed its width: older ones cannot be compared.
                self.keys, buffer = [], np.empty((16, vector.shape[0]), dtype=np.float32)
            elif len(self.keys) == buffer.shape[0]:
                grown = np.empty((buffer.shape[0] * 2, buffer.shape[1]), dtype=np.float32)
                grown[:len(self.keys)] = buffer
                buffer = grown
            buffer[len(self.keys)] = vector
            self._buffer = buffer
            self.keys.append(key)

    def best(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The most similar entry and its cosine similarity, newest first on a tie."""
        if self._buffer is None or not self.keys or self._buffer.shape[1] != vector.shape[0]:
            return None
        scores = self._buffer[:len(self.keys)] @ vector
        # The newest of equal scores: reversed, so argmax's first is the last added.
        index = len(scores) - 1 - int(np.argmax(scores[::-1]))
        return self.keys[index], float(scores[index])

    def __len__(self) -> int:
        return len(self.keys)
