"""Small array helpers that every layer uses: L2 normalisation and the positions of the best scores."""
from __future__ import annotations

import numpy as np

__all__ = ["l2n", "top_positions"]


def l2n(x: np.ndarray) -> np.ndarray:
    """``x`` with each row (last axis) divided by its L2 norm (norms below 1e-12 count as 1e-12: a zero row stays
    zero); the dtype follows numpy's rules for ``x``."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first, ties in position order (as a stable full sort gives;
    without sorting every score of a large collection)."""
    scores = np.asarray(scores)
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(scores) // 4:
        kth = np.partition(-scores, k - 1)[k - 1]
        head = np.flatnonzero(-scores <= kth)  # the k best and any ties with the k-th, in position order
        return head[np.argsort(-scores[head], kind="stable")][:k]
    return np.argsort(-scores, kind="stable")[:k]
