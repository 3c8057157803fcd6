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

    __slots__ = ("keys", "_matrix", "count")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._matrix: np.ndarray | None = None
        #: How many of the backend's vectors are here (where the next read starts).
        self.count = 0

    def reset(self) -> None:
        self.keys, self._matrix, self.count = [], None, 0

    def add(self, rows: list[tuple[str, bytes]]) -> None:
        """Append what the backend added since the last read."""
        if not rows:
            return
        vectors = [np.frombuffer(raw, dtype=np.float32) for _, raw in rows]
        width = vectors[0].shape[0]
        kept = [(key, v) for (key, _), v in zip(rows, vectors, strict=True) if v.shape[0] == width]
        self.count += len(rows)
        if self._matrix is not None and self._matrix.shape[1] != width:
            # The embedding model changed its width: older vectors cannot be compared.
            self.keys, self._matrix = [], None
        block = np.stack([v for _, v in kept])
        self._matrix = block if self._matrix is None else np.concatenate([self._matrix, block])
        self.keys.extend(key for key, _ in kept)

    def best(self, vector: np.ndarray) -> tuple[str, float] | None:
        """The most similar entry and its cosine similarity, newest first on a tie."""
        if self._matrix is None or self._matrix.shape[1] != vector.shape[0]:
            return None
        scores = self._matrix @ vector
        # The newest of equal scores: reversed, so argmax's first is the last added.
        index = len(scores) - 1 - int(np.argmax(scores[::-1]))
        return self.keys[index], float(scores[index])

    def __len__(self) -> int:
        return len(self.keys)
