"""Small array helpers that every layer uses: L2 normalisation and the positions of the best scores."""
from __future__ import annotations

import numpy as np

__all__ = ["l2n", "top_positions"]


def l2n(x: np.ndarray) -> np.ndarray:
    """``x`` with each row (last axis) divided by its L2 norm (norms below 1e-12 count as 1e-12: a zero row stays
    zero); the dtype follows numpy's rules for ``x``."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


#: collections from this size on first narrow the best scores down with a sample's threshold (``top_positions``)
SAMPLED_FROM = 65_536


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first, ties in position order (as a stable full sort gives;
    without sorting every score of a large collection).

    From ``SAMPLED_FROM`` scores on, a strided sample's quantile gives a threshold that about ``2 k + 64`` scores
    pass (``_candidates``); where at least ``k`` do, the ``k`` best are among them, and only those are sorted (a
    comparison and a few hundred rows instead of a partition of the whole array: 1 ms instead of 10 at 1M).
    """
    scores = np.asarray(scores)
    if k <= 0:
        return np.zeros(0, np.int64)
    if len(scores) >= SAMPLED_FROM and k < len(scores) // 16:
        cand = _candidates(scores, k)
        if cand is not None:
            return cand[_top_of(scores[cand], k)]
    return _top_of(scores, k)


def _top_of(scores: np.ndarray, k: int) -> np.ndarray:
    if k < len(scores) // 4:
        kth = np.partition(-scores, k - 1)[k - 1]
        head = np.flatnonzero(-scores <= kth)  # the k best and any ties with the k-th, in position order
        return head[np.argsort(-scores[head], kind="stable")][:k]
    return np.argsort(-scores, kind="stable")[:k]


def _candidates(scores: np.ndarray, k: int) -> np.ndarray | None:
    """Positions (in order) of the scores at or above a threshold that at least ``k`` scores reach, so that
    they hold the ``k`` best and their ties; None where the sample's threshold lets fewer through (or is NaN)."""
    n = len(scores)
    step = max(1, n // 16_384)
    sample = scores[::step]
    want = min(len(sample) - 1, int(np.ceil((2 * k + 64) * len(sample) / n)))  # ~2k + 64 of the n pass
    thr = np.partition(sample, len(sample) - 1 - want)[len(sample) - 1 - want]
    if np.isnan(thr):
        return None
    cand = np.flatnonzero(scores >= thr)
    return cand if len(cand) >= k else None
