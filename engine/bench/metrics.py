"""Ranking and localisation metrics (pure numpy, vectorised over queries).

Ties in the scores are broken *pessimistically* (a relevant item ranks after every non-relevant item
with the same score), so constant or degenerate scorers earn no credit from lucky ordering.  All
ranking metrics take an optional ``exclude`` mask of (query, item) pairs that are removed from the
ranking altogether.  Boxes are ``[x0, y0, x1, y1]``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np


def _as_matrix(score_matrix, name: str = "score_matrix") -> np.ndarray:
    s = np.asarray(score_matrix, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"{name} must be 2-D (Q, N), got shape {s.shape}")
    return s


def _mask(mask, shape: tuple[int, ...], name: str) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape}, expected {shape}")
    return m


def _sorted_relevance(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Relevance flags in rank order: valid items first, score descending, relevant last among ties."""
    order = np.lexsort((relevant, -scores, exclude), axis=-1)
    return np.take_along_axis(relevant & ~exclude, order, axis=-1)


def per_query_average_precision(score_matrix: np.ndarray, relevant: np.ndarray, *,
                                exclude: np.ndarray | None = None) -> np.ndarray:
    """Non-interpolated average precision of every query.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.  NaN counts as the lowest score.
    relevant : (Q, N) array_like of bool
        Ground truth.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking (neither counted as retrieved nor as relevant).

    Returns
    -------
    (Q,) float64 ndarray
        ``AP_q = mean over relevant items r of (relevant items ranked at or above r) / rank(r)``.  Ties
        are broken pessimistically (relevant after non-relevant).  NaN for a query with no relevant item.
    """
    s = _as_matrix(score_matrix)
    rel = _mask(relevant, s.shape, "relevant")
    ex = _mask(exclude, s.shape, "exclude")
    rs = _sorted_relevance(s, rel, ex)
    hits = np.cumsum(rs, axis=1)
    ranks = np.arange(1, s.shape[1] + 1, dtype=np.float64)
    n_rel = rs.sum(axis=1)
    total = np.where(rs, hits / ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, total / np.maximum(n_rel, 1), np.nan)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Non-interpolated average precision of one ranking.

    Parameters
    ----------
    scores : (N,) array_like
        Higher is better; NaN counts as the lowest score.
    relevant : (N,) array_like of bool
        Ground truth.

    Returns
    -------
    float
        Mean over the relevant items of the precision at their rank; ties broken pessimistically
        (relevant items rank after non-relevant ones with an equal score).  NaN without relevant items.

    Examples
    --------
    >>> average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False])  # (1 + 2/3) / 2
    0.8333333333333333
    """
    s = np.asarray(scores, dtype=np.float64).reshape(1, -1)
    r = np.asarray(relevant, dtype=bool).reshape(1, -1)
    return float(per_query_average_precision(s, r)[0])


def mean_average_precision(score_matrix: np.ndarray, relevant: np.ndarray, *,
                           exclude: np.ndarray | None = None) -> float:
    """Mean of :func:`per_query_average_precision` over the queries that have a relevant item.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.
    relevant : (Q, N) array_like of bool
        Ground truth.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking.

    Returns
    -------
    float
        mAP in [0, 1]; NaN when no query has a relevant item.
    """
    ap = per_query_average_precision(score_matrix, relevant, exclude=exclude)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def precision_at_k(score_matrix: np.ndarray, relevant: np.ndarray, k: int, *,
                   exclude: np.ndarray | None = None) -> float:
    """Mean over queries of the fraction of relevant items among the top ``k``.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.
    relevant : (Q, N) array_like of bool
        Ground truth.
    k : int
        Cut-off, >= 1.  The denominator is always ``k`` (also when fewer than ``k`` items are ranked).
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking.

    Returns
    -------
    float
        P@k in [0, 1], ties broken pessimistically.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    s = _as_matrix(score_matrix)
    rs = _sorted_relevance(s, _mask(relevant, s.shape, "relevant"), _mask(exclude, s.shape, "exclude"))
    return float(np.mean(rs[:, :k].sum(axis=1) / k)) if s.shape[0] else float("nan")


def recall_at_k(score_matrix: np.ndarray, target_index: np.ndarray, k: int, *,
                exclude: np.ndarray | None = None) -> float:
    """Instance recall: fraction of queries whose own target item is among the top ``k``.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better.
    target_index : (Q,) array_like of int
        The one correct item of each query (e.g. ``SketchyData.query_photo``).
    k : int
        Cut-off, >= 1.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Pairs removed from the ranking (an excluded target is a miss).

    Returns
    -------
    float
        Recall@k in [0, 1]; the target must beat every other item with an equal score (pessimistic ties).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    s = _as_matrix(score_matrix)
    t = np.asarray(target_index, dtype=np.int64).ravel()
    if t.shape != (s.shape[0],):
        raise ValueError(f"target_index has shape {t.shape}, expected ({s.shape[0]},)")
    rel = np.zeros(s.shape, dtype=bool)
    rel[np.arange(s.shape[0]), t] = True
    rs = _sorted_relevance(s, rel, _mask(exclude, s.shape, "exclude"))
    return float(np.mean(rs[:, :k].any(axis=1))) if s.shape[0] else float("nan")


def top_k(score_matrix: np.ndarray, k: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` best items of every query.

    Parameters
    ----------
    score_matrix : (Q, N) array_like
        Higher is better; NaN counts as the lowest score.
    k : int
        How many, >= 1.
    exclude : (Q, N) array_like of bool, optional, keyword-only
        Items never returned.

    Returns
    -------
    (Q, k) int64 ndarray
        Best first; equal scores in index order; ``-1`` where fewer than ``k`` items are left.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    s = _as_matrix(score_matrix)
    ex = _mask(exclude, s.shape, "exclude")
    order = np.lexsort((-s, ex), axis=-1)[:, :k]
    order = np.where(np.take_along_axis(ex, order, axis=-1), -1, order)
    if order.shape[1] < k:
        order = np.pad(order, ((0, 0), (0, k - order.shape[1])), constant_values=-1)
    return order.astype(np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes, broadcasting over the leading axes.

    Parameters
    ----------
    a, b : (..., 4) array_like
        Boxes ``[x0, y0, x1, y1]`` with ``x1 >= x0, y1 >= y0``; the leading shapes must broadcast.

    Returns
    -------
    (...) float64 ndarray
        IoU in [0, 1]; 0 where the union is empty or a box contains NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError("boxes must have a last axis of length 4")
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = iw * ih
    area_a = np.clip(a[..., 2] - a[..., 0], 0.0, None) * np.clip(a[..., 3] - a[..., 1], 0.0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0.0, None) * np.clip(b[..., 3] - b[..., 1], 0.0, None)
    union = area_a + area_b - inter
    ok = union > 0
    out = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=np.float64)
    np.divide(inter, union, out=out, where=ok)
    return out


def _pad_boxes(boxes_per_image: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) list of (M_i, 4) -> (N, max M_i, 4) float64 padded with NaN."""
    m = max((len(np.asarray(b).reshape(-1, 4)) for b in boxes_per_image), default=0)
    out = np.full((len(boxes_per_image), max(m, 1), 4), np.nan)
    for i, b in enumerate(boxes_per_image):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        out[i, :len(b)] = b
    return out


def localization_counts(ranked_index: np.ndarray, ranked_boxes: np.ndarray,
                        gt_boxes_per_image: Sequence[np.ndarray], relevant: np.ndarray, *, k: int = 10,
                        iou: float = 0.5, skip_unannotated: bool = False) -> tuple[int, int]:
    """Count the correct-class top-``k`` hits and how many of them are well localised.

    Parameters
    ----------
    ranked_index : (Q, K) array_like of int
        Each query's retrieved images, best first (e.g. from :func:`top_k`); ``-1`` pads.
    ranked_boxes : (Q, K, 4) array_like
        The predicted box ``[x0, y0, x1, y1]`` of each retrieved image, in its pixel coordinates.
    gt_boxes_per_image : sequence of (M_i, 4) array_like
        Ground-truth boxes of each of the N images (may be empty).
    relevant : (Q, N) array_like of bool
        Ground truth of the class: which images count as hits.
    k : int, keyword-only
        Only the first ``k`` columns of the ranking are looked at.
    iou : float, keyword-only
        A hit is localised when its box has IoU >= ``iou`` with ANY ground-truth box of its image.
    skip_unannotated : bool, keyword-only
        Leave out the hits on images without a ground-truth box (their box can be neither right nor wrong:
        distractor photos of the query's class); default: they count as misses.

    Returns
    -------
    n_localized, n_hits : int
        Localised hits and relevant hits among the top ``k`` of all queries together.
    """
    idx = np.asarray(ranked_index, dtype=np.int64)[:, :k]
    pred = np.asarray(ranked_boxes, dtype=np.float64)[:, :k]
    rel = np.asarray(relevant, dtype=bool)
    if idx.ndim != 2 or pred.shape != idx.shape + (4,) or rel.ndim != 2 or rel.shape[0] != idx.shape[0]:
        raise ValueError("expected ranked_index (Q, K), ranked_boxes (Q, K, 4) and relevant (Q, N)")
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    hit = valid & np.take_along_axis(rel, safe, axis=1)
    if skip_unannotated:
        annotated = np.array([len(b) > 0 for b in gt_boxes_per_image], bool)
        hit &= annotated[safe]
    gt = _pad_boxes(gt_boxes_per_image)[safe]                     # (Q, K, M, 4)
    best = box_iou(pred[:, :, None, :], gt).max(axis=-1)          # (Q, K)
    return int((hit & (best >= iou)).sum()), int(hit.sum())


def localization_rate(ranked_index: np.ndarray, ranked_boxes: np.ndarray,
                      gt_boxes_per_image: Sequence[np.ndarray], relevant: np.ndarray, *, k: int = 10,
                      iou: float = 0.5, skip_unannotated: bool = False) -> float:
    """Fraction of the correct-class top-``k`` hits whose box has IoU >= ``iou`` with a ground-truth box.

    Parameters
    ----------
    ranked_index : (Q, K) array_like of int
        Each query's retrieved images, best first (e.g. ``top_k(scores, k, exclude=exclude)``); ``-1``
        pads.
    ranked_boxes : (Q, K, 4) array_like
        Predicted box of each retrieved image (NaN boxes count as misses).
    gt_boxes_per_image : sequence of (M_i, 4) array_like
        Ground-truth boxes of each of the N images (e.g. ``SysuData.boxes``).
    relevant : (Q, N) array_like of bool
        Which images are correct-class hits.
    k : int, keyword-only
        Cut-off.
    iou : float, keyword-only
        IoU threshold; a hit may match any ground-truth box of its image.

    Returns
    -------
    float
        Pooled over all queries (each hit weighs the same); NaN when there is no correct-class hit.
    """
    n_loc, n_hit = localization_counts(ranked_index, ranked_boxes, gt_boxes_per_image, relevant, k=k,
                                       iou=iou, skip_unannotated=skip_unannotated)
    return n_loc / n_hit if n_hit else float("nan")


def random_baseline_scores(n_queries: int, n_items: int, seed: int = 0) -> np.ndarray:
    """Uniform random scores: the chance level of every ranking metric.

    Parameters
    ----------
    n_queries, n_items : int
        Shape of the score matrix.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    (n_queries, n_items) float64 ndarray
        Independent U(0, 1) scores (no ties, almost surely).
    """
    return np.random.default_rng(seed).random((n_queries, n_items))


def reliability(scores: np.ndarray, relevant: np.ndarray, bins=(0, .02, .05, .1, .2, .3, .4, .5, .6, .7, .8, 1.0)):
    """Precision of results per calibrated-score bin: rows of (low, high, n, mean score, precision)."""
    s = np.asarray(scores, np.float64).ravel()
    r = np.asarray(relevant, bool).ravel()
    out = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        m = (s >= lo) & ((s < hi) if hi < 1.0 else (s <= hi))
        if m.any():
            out.append((lo, hi, int(m.sum()), float(s[m].mean()), float(r[m].mean())))
    return out


def expected_calibration_error(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean |precision - mean score| over the reliability bins, weighted by their sizes."""
    rows = reliability(scores, relevant)
    n = sum(r[2] for r in rows)
    return float(sum(r[2] * abs(r[3] - r[4]) for r in rows) / max(n, 1))


def plot_reliability(rows: list[tuple], path: str | Path, *, title: str = "") -> None:
    """Write the reliability curve (precision against mean calibrated score per bin) as a PNG (OpenCV)."""
    size, m = 480, 60
    img = np.full((size, size, 3), 255, np.uint8)
    x0, y0, x1, y1 = m, size - m, size - 20, 30

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x0 + x * (x1 - x0))), int(round(y0 - y * (y0 - y1)))

    for t in np.linspace(0, 1, 6):
        cv2.line(img, pt(t, 0), pt(t, 1), (235, 235, 235), 1)
        cv2.line(img, pt(0, t), pt(1, t), (235, 235, 235), 1)
        cv2.putText(img, f"{t:.1f}", (pt(t, 0)[0] - 10, y0 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{t:.1f}", (x0 - 32, pt(0, t)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.rectangle(img, pt(0, 0), pt(1, 1), (0, 0, 0), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (150, 150, 150), 1, cv2.LINE_AA)  # perfect calibration
    pts = [pt(r[3], r[4]) for r in rows]
    for a, b in zip(pts[:-1], pts[1:], strict=False):
        cv2.line(img, a, b, (200, 90, 30), 2, cv2.LINE_AA)
    for r, p in zip(rows, pts, strict=True):
        cv2.circle(img, p, max(3, int(round(2 * math.log10(max(r[2], 1))))), (200, 90, 30), -1, cv2.LINE_AA)
    cv2.putText(img, "calibrated score (bin mean)", (x0 + 90, size - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "precision", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if title:
        cv2.putText(img, title, (x0 + 10, y1 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
