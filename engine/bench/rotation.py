"""Rotation benchmark (``sketchsearch bench --only rotation``).

* Near-duplicates: a folder of Sketchy photos seeded with copies that are rotated (any angle, content
  kept inside the frame), turned by 90 degrees, mirrored, mirrored and rotated, rescaled,
  JPEG-recompressed, or shrunk to 60-80 %, rotated and pasted on a white canvas (a re-photographed
  print); indexed, then ``find_duplicates``: pair precision and copy recall per threshold.
* Rotated-copy search: each copy as an image query with ``--rotation any``: is its original first?
* Speed: the curves (1 degree, best angle refined) of one query against 100 results.
"""
from __future__ import annotations

import itertools
import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

TRANSFORMS = ("rotate", "rotate90", "mirror", "mirror+rotate", "rescale", "jpeg", "rotate+shrink-on-white")


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def shrink_on_white(img: np.ndarray, scale: float, degrees: float) -> np.ndarray:
    """The photo shrunk by ``scale``, turned by ``degrees`` and pasted at the centre of a white canvas of its own
    size: a print re-photographed or re-scanned on a white page (the print's corners may leave the canvas)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    m = cv2.getRotationMatrix2D(((sw - 1) / 2, (sh - 1) / 2), degrees, 1.0)
    m[:, 2] += ((w - sw) / 2, (h - sh) / 2)  # the print's centre at the canvas's centre
    return cv2.warpAffine(small, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(255, 255, 255))


def make_copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A transformed copy of a BGR photo and its JPEG quality."""
    q = 92
    if kind == "rotate":
        img = _rotate(img, float(rng.uniform(10, 350)))
    elif kind == "rotate90":
        turns = (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)
        img = cv2.rotate(img, turns[int(rng.integers(3))])
    elif kind == "mirror":
        img = img[:, ::-1]
    elif kind == "mirror+rotate":
        img = _rotate(np.ascontiguousarray(img[:, ::-1]), float(rng.uniform(10, 350)))
    elif kind == "rescale":
        s = float(rng.uniform(0.5, 0.8))
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    elif kind == "jpeg":
        q = int(rng.integers(30, 60))
    elif kind == "rotate+shrink-on-white":
        img = shrink_on_white(img, float(rng.uniform(0.6, 0.8)), float(rng.uniform(10, 350)))
    else:
        raise ValueError(f"unknown copy kind {kind!r}")
    return np.ascontiguousarray(img), {"quality": q}


def bench_duplicates(photos: list[Path], n_copies: int, *, thresholds=(0.93, 0.95, 0.97), seed: int = 0) -> dict:
    """Seed ``n_copies`` transformed copies among ``photos``, index, find the groups; P/R per threshold."""
    from ..collection import SketchIndex
    from ..indexer import index_folders
    from ..rotsearch import find_duplicates, search_image_any_rotation

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in photos:
            (folder / p.name).write_bytes(p.read_bytes())
        truth = {}
        chosen = rng.choice(len(photos), size=min(n_copies, len(photos)), replace=False)
        for i, j in enumerate(chosen):
            kind = TRANSFORMS[i % len(TRANSFORMS)]
            img, opts = make_copy(cv2.imread(str(photos[j])), kind, rng)
            name = f"copy{i:04d}_{kind}.jpg"
            cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, opts["quality"]])
            truth[str(folder / name)] = (str(folder / photos[j].name), kind)
        t0 = time.perf_counter()
        index_folders([folder], Path(tmp) / "db")
        index_s = time.perf_counter() - t0
        index = SketchIndex(Path(tmp) / "db")
        paths = index.paths
        true_pairs = {frozenset((c, o)) for c, (o, _) in truth.items()}
        rows = []
        for t in thresholds:
            t0 = time.perf_counter()
            groups = find_duplicates(index, threshold=t)
            seconds = time.perf_counter() - t0
            predicted = {frozenset((paths[a[0]], paths[b[0]])) for g in groups for a, b in itertools.combinations(g, 2)}
            hit = predicted & true_pairs
            per_kind = {k: sum(frozenset((c, o)) in predicted for c, (o, kk) in truth.items() if kk == k)
                        / max(1, sum(kk == k for _, kk in truth.values())) for k in TRANSFORMS}
            rows.append({"threshold": t, "pairs found": len(predicted), "precision": len(hit) / max(1, len(predicted)),
                         "recall": len(hit) / max(1, len(true_pairs)), "seconds": round(seconds, 2),
                         **{f"R {k}": round(v, 2) for k, v in per_kind.items()}})
        first = {k: [] for k in TRANSFORMS}
        for c, (o, kind) in truth.items():
            hits, _, _ = search_image_any_rotation(index, c, top_k=2)
            others = [h.path for h in hits if h.path != c]
            first[kind].append(bool(others) and others[0] == o)
    return {"photos": len(photos), "copies": len(truth), "index_s": round(index_s, 1), "rows": rows,
            "search_rank1": sum(map(sum, first.values())) / max(1, len(truth)),
            "search_rank1_per_kind": {k: round(sum(v) / len(v), 3) for k, v in first.items() if v}}


def bench_curve_speed(n_results: int = 100, repeats: int = 20) -> dict:
    """Median seconds for the curves (and best angles) of one query against ``n_results`` descriptors."""
    from ..rotation import PolarLayout, best_rotation, curve_coefficients, evaluate_curve

    lay = PolarLayout()
    rng = np.random.default_rng(0)
    q = rng.standard_normal(lay.dim)
    ys = rng.standard_normal((n_results, lay.dim)).astype(np.float16)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        c = curve_coefficients(q, ys.astype(np.float64), lay)
        evaluate_curve(c, np.arange(0.0, 360.0, 1.0))
        best_rotation(c)
        times.append(time.perf_counter() - t0)
    return {"results": n_results, "descriptor": lay.dim, "ms": round(1000 * float(np.median(times)), 2),
            "target_ms": 50}


def bench_rotation(*, data=None, quick: bool = False) -> dict:
    from .datasets import store_photos

    out = {"tables": {}, "skipped": []}
    photos = store_photos(Path(data) if data else None)
    step = 8 if quick else 1
    photos = photos[::step]
    n_copies = 30 if quick else 300
    d = bench_duplicates(photos, n_copies)
    out["duplicates"] = d
    out["tables"][f"Near-duplicates: {d['photos']} photos + {d['copies']} seeded copies (rotated any angle, 90 deg, "
                  f"mirrored, mirrored+rotated, rescaled, JPEG q30-60, rotated + shrunk on white); pair precision / "
                  f"copy recall"] = d["rows"]
    out["tables"]["Rotated-copy search (--rotation any): the copy's original ranked first"] = [
        {"queries": d["copies"], "rank-1 rate": round(d["search_rank1"], 3),
         **{f"rank-1 {k}": v for k, v in d["search_rank1_per_kind"].items()}}]
    sp = bench_curve_speed()
    out["curve_speed"] = sp
    out["tables"]["Rotation curves (1 deg grid + refined best angle) of one query against 100 results"] = [sp]
    return out
