"""Boundary precision / recall of photo edge detectors against the SYSU-Shapes object outlines.

Protocol (see :func:`evaluate_detector`):

* Each photo is brought to the working resolution (longer side 400 px) by ``photo_edges``; its
  detected points with ``w >= threshold`` are the detections.
* The annotated outline polygons are drawn as one-pixel closed curves at the same resolution.
* **Recall**: the fraction of outline pixels with a detection within ``tol`` px.
* **Precision**: the fraction of detections within ``tol`` px of an outline, counting only the
  detections inside the object boxes enlarged by ``2 * tol`` px (``precision_box``).  The outlines
  are object outlines only -- the background, and the inner structure of the object (spokes,
  windows, rigging) are not annotated -- so precision is pessimistic in any case; over the whole
  image (``precision_all``) it is more so, and is reported too.
* Counts are summed over all images before dividing (micro average); ``F = 2PR / (P + R)``.
  Matching is by distance transform (not one-to-one, unlike the BSDS benchmark).
* Besides the operating point ``w >= 0.2`` of the method, the best F over a sweep of thresholds
  (``ods_f`` / ``ods_threshold``) shows how good the strength ordering is, independent of its
  calibration.

Run ``python -m engine.bench.edges [ROOT]`` for the comparison table of the registered detectors
and a few variants.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ..edges import EdgeMap, get_detector, photo_edges, render_edges
from ..imageio import ImageError, load_image
from .datasets import DatasetMissing, data_root
from .datasets import load_sysu as load_sysu_data

__all__ = [
    "DEFAULT_SYSU_ROOT",
    "THRESHOLDS",
    "boundary_counts",
    "boundary_prf",
    "evaluate_detector",
    "load_sysu",
    "summarise",
]

log = logging.getLogger(__name__)

#: Where the evaluation data usually is (see /work/shared/data/README.md); override by argument.
DEFAULT_SYSU_ROOT = data_root() / "sysu-shapes"

#: Strength thresholds of the sweep (the method's operating point 0.2 is among them).
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.05, 1.0, 0.05))


def load_sysu(root=DEFAULT_SYSU_ROOT, *, classes=None) -> list[tuple[Path, np.ndarray, list[np.ndarray]]]:
    """SYSU-Shapes annotations as ``(image_path, boxes, polygons)`` items (read by ``datasets.load_sysu``).

    Parameters
    ----------
    root : str or Path
        The ``sysu-shapes`` folder (or the data root that holds it).
    classes : iterable of str, optional
        Only these classes.

    Returns
    -------
    list of (image_path, boxes, polygons)
        ``boxes``: (K, 4) float64 ``[x0, y0, x1, y1]`` in 0-based pixel-edge coordinates, clipped to the
        image; ``polygons``: K arrays (N_k, 2) of outline vertices (x, y).  An empty list (with a logged
        message) when the data are missing.
    """
    try:
        data = load_sysu_data(root)
    except DatasetMissing as e:
        log.warning("%s: nothing to evaluate", e)
        return []
    wanted = set(classes) if classes is not None else None
    return [(path, boxes, polys) for path, cls, boxes, polys
            in zip(data.image_paths, data.image_class, data.boxes, data.polygons, strict=True)
            if wanted is None or data.class_names[cls] in wanted]


def _to_working(points: np.ndarray, edge_map: EdgeMap) -> np.ndarray:
    """Original pixel coordinates (x, y) -> working-frame column / row (inverse of the EdgeMap map)."""
    origin = np.asarray(edge_map.origin, np.float64)
    return (np.asarray(points, np.float64) - origin + 0.5) * edge_map.scale - 0.5


def boundary_counts(edge_map: EdgeMap, polygons, tol: float = 3.0, *, boxes=None,
                    thresholds=THRESHOLDS) -> dict[str, np.ndarray]:
    """Matching counts of one image at several strength thresholds.

    Parameters
    ----------
    edge_map : EdgeMap
        Detected edges (photo frame: ``origin`` and ``scale`` map to the original pixels).
    polygons : list of (N, 2) float ndarray
        Outline vertices (x, y) in original pixels.
    tol : float
        Matching distance in working-frame pixels.
    boxes : (K, 4) float ndarray, optional
        ``[x0, y0, x1, y1]`` object boxes in original pixels; precision counts only detections inside
        them (enlarged by ``2 * tol``).  Default: the polygons' bounding boxes.
    thresholds : sequence of float
        Strength thresholds ``w >= t``.

    Returns
    -------
    dict of (T,) int64 ndarrays
        ``gt`` (outline pixels), ``gt_hit`` (outline pixels matched), ``det_box`` / ``det_box_hit``
        (detections in the boxes / of those, matched), ``det_all`` / ``det_all_hit`` (whole image).
    """
    h, w = edge_map.height, edge_map.width
    gt = np.zeros((h, w), np.uint8)
    shift = 4
    for poly in polygons:
        pts = np.rint(_to_working(poly, edge_map) * (1 << shift)).astype(np.int32)
        cv2.polylines(gt, [pts.reshape(-1, 1, 2)], True, 1, thickness=1, lineType=cv2.LINE_8, shift=shift)
    if boxes is None:
        boxes = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polygons])
    inside = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        (c0, r0), (c1, r1) = _to_working(np.array([[x0, y0], [x1, y1]]), edge_map)
        c0, r0 = max(0, int(np.floor(c0 - 2 * tol))), max(0, int(np.floor(r0 - 2 * tol)))
        c1, r1 = min(w - 1, int(np.ceil(c1 + 2 * tol))), min(h - 1, int(np.ceil(r1 + 2 * tol)))
        inside[r0:r1 + 1, c0:c1 + 1] = True
    dist_to_gt = cv2.distanceTransform((gt == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    strength = render_edges(edge_map)
    rows, cols = np.nonzero(strength > 0)
    ws = strength[rows, cols]
    near = dist_to_gt[rows, cols] <= tol
    in_box = inside[rows, cols]
    n_gt = int(gt.sum())
    out = {k: np.zeros(len(thresholds), np.int64)
           for k in ("gt", "gt_hit", "det_box", "det_box_hit", "det_all", "det_all_hit")}
    for i, t in enumerate(thresholds):
        sel = ws >= t
        det = (strength >= t) & (strength > 0)
        dist_to_det = cv2.distanceTransform((~det).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out["gt"][i] = n_gt
        out["gt_hit"][i] = int(((dist_to_det <= tol) & (gt > 0)).sum()) if det.any() else 0
        out["det_all"][i] = int(sel.sum())
        out["det_all_hit"][i] = int((sel & near).sum())
        out["det_box"][i] = int((sel & in_box).sum())
        out["det_box_hit"][i] = int((sel & in_box & near).sum())
    return out


def _prf(c: dict, i: int) -> tuple[float, float, float, float]:
    r = c["gt_hit"][i] / max(1, c["gt"][i])
    p = c["det_box_hit"][i] / max(1, c["det_box"][i])
    p_all = c["det_all_hit"][i] / max(1, c["det_all"][i])
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return float(p), float(r), float(f), float(p_all)


def boundary_prf(edge_map: EdgeMap, polygons, tol: float = 3.0, *, boxes=None,
                 threshold: float = 0.2) -> dict[str, float]:
    """Boundary precision / recall / F of one image at one strength threshold.

    Parameters
    ----------
    edge_map, polygons, tol, boxes
        As for :func:`boundary_counts`.
    threshold : float
        Detections are the points with ``w >= threshold``.

    Returns
    -------
    dict
        ``precision`` (inside the enlarged boxes), ``recall``, ``f``, ``precision_all`` (whole image).
    """
    c = boundary_counts(edge_map, polygons, tol, boxes=boxes, thresholds=(threshold,))
    p, r, f, p_all = _prf(c, 0)
    return {"precision": p, "recall": r, "f": f, "precision_all": p_all}


def summarise(counts: dict[str, np.ndarray], thresholds=THRESHOLDS, *, operating_point: float = 0.2) -> dict:
    """Summed counts -> precision / recall / F at the operating point and the best F over thresholds."""
    thresholds = list(thresholds)
    i0 = int(np.argmin(np.abs(np.asarray(thresholds) - operating_point)))
    p, r, f, p_all = _prf(counts, i0)
    fs = [_prf(counts, i)[2] for i in range(len(thresholds))]
    best = int(np.argmax(fs))
    return {"precision": p, "recall": r, "f": f, "precision_all": p_all,
            "ods_f": fs[best], "ods_threshold": thresholds[best],
            "ods_precision": _prf(counts, best)[0], "ods_recall": _prf(counts, best)[1]}


def evaluate_detector(name, root=DEFAULT_SYSU_ROOT, limit: int | None = None, *, tol: float = 3.0,
                      max_side: int = 400, items=None, images=None, step: int = 1,
                      offset: int = 0) -> dict:
    """Boundary P / R / F of one detector on SYSU-Shapes (protocol in the module docstring).

    Parameters
    ----------
    name : str or EdgeDetector
        Registered detector name or an instance.
    root : str or Path
        SYSU-Shapes folder.
    limit : int, optional
        Use only this many images (after ``offset`` / ``step`` sub-sampling).
    tol : float
        Matching tolerance in working-frame pixels.
    max_side : int
        Working resolution (longer side).
    items : list, optional
        Pre-loaded ``load_sysu`` output (saves re-reading the annotations).
    images : dict, optional
        Cache ``{path: LoadedImage}`` shared between calls (filled as images are read).
    step, offset : int
        Use items ``offset::step`` (e.g. a tuning split).

    Returns
    -------
    dict
        ``summarise`` output plus ``detector``, ``n_images``, ``ms_per_image`` (detection only)
        and ``tol``; ``n_images`` is 0 when the data is missing.
    """
    detector = get_detector(name) if isinstance(name, str) else name
    if items is None:
        items = load_sysu(root)
    items = items[offset::step]
    if limit is not None:
        items = items[:limit]
    total = None
    seconds = 0.0
    n = 0
    for path, boxes, polys in items:
        try:
            if images is not None and path in images:
                loaded = images[path]
            else:
                loaded = load_image(path, max_side=max_side)
                if images is not None:
                    images[path] = loaded
        except ImageError as e:
            log.warning("skipped: %s", e)
            continue
        t0 = time.perf_counter()
        em = photo_edges(loaded, detector=detector, max_side=max_side, min_strength=min(THRESHOLDS))
        seconds += time.perf_counter() - t0
        c = boundary_counts(em, polys, tol, boxes=boxes)
        total = c if total is None else {k: total[k] + c[k] for k in total}
        n += 1
    if total is None:
        return {"detector": repr(detector), "n_images": 0, "tol": tol}
    out = summarise(total)
    out.update(detector=repr(detector), n_images=n, ms_per_image=1000.0 * seconds / n, tol=tol)
    return out


def _format_row(label: str, r: dict) -> str:
    return (f"{label:<58s} {r['precision']:.3f} {r['recall']:.3f} {r['f']:.3f}   {r['precision_all']:.3f}"
            f"   {r['ods_f']:.3f} @{r['ods_threshold']:.2f}  {r.get('ms_per_image', 0):5.1f} ms")


def main(argv=None) -> int:
    """Log the comparison table for the registered detectors and a few variants."""
    from ..edges import CannyDetector, ClassicalDetector

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else DEFAULT_SYSU_ROOT
    items = load_sysu(root)
    if not items:
        return 1
    images: dict = {}
    variants = [
        ("canny auto (median) sigma 1", CannyDetector()),
        ("canny 50/100 sigma 1", CannyDetector(low=50, high=100)),
        ("canny 100/200 sigma 1.5", CannyDetector(sigma=1.5, low=100, high=200)),
        ("classical, no surround suppression", ClassicalDetector(alpha=0.0)),
        ("classical, first try (s1.5 c20 hyst .1/.3 len 8)",
         ClassicalDetector(sigma=1.5, contrast=20.0, low=0.1, high=0.3, min_length=8)),
        ("classical, strong suppression (alpha 1.25)", ClassicalDetector(alpha=1.25)),
        ("classical, hysteresis high 0.3", ClassicalDetector(high=0.3)),
        ("classical (defaults)", get_detector("classical")),
    ]
    log.info("%d images, tol 3 px at 400 px; P = precision in boxes, P_all = whole image", len(items))
    log.info("%-58s %5s %5s %5s   %5s   %s", "detector", "P", "R", "F", "P_all", "best F @ w")
    for label, det in variants:
        log.info(_format_row(label, evaluate_detector(det, items=items, images=images)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
