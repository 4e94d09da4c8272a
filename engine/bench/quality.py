"""Search quality on the evaluation data, next to the simple baselines of the same benchmark.

* Sketchy (every sketch ``-1`` against all 1,250 photos): category mAP, P@20, instance recall@1/@10.
* SYSU-Shapes (queries drawn from the annotated outlines, own image excluded): category mAP and the
  fraction of correct-class top-10 hits whose box has IoU >= 0.5 with a ground-truth box.

Baselines computed in the same run: random scores; HOG of the sketch vs HOG of the photo's edge map;
for boxes, the whole image and a sliding-window HOG on the same hits.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..afm import FeatureLayout, encode_query
from ..describe import defer_edges, finish_deferred
from ..edges import EdgeMap, get_detector, photo_edges, sketch_edges
from ..hed import hed_available
from ..hits import photo_box
from ..imageio import load_image, to_rgb
from ..indexer import run_jobs
from ..search import QueryScorer, SearchOptions, rank
from ..settings import SketchSettings
from . import baselines as bl
from . import datasets as ds
from . import metrics as mt

log = logging.getLogger(__name__)


@dataclass
class Described:
    """Descriptors of a list of photos, in list order."""

    codes: np.ndarray
    inv_norms: np.ndarray
    geometry: np.ndarray  # (N, 5) width, height, work_width, work_height, work_scale


def describe(paths: list[Path], settings: SketchSettings, *, workers: int | None = None) -> Described:
    """Descriptors of photos (all must be readable), computed with the indexer's worker pool."""
    records, deferred = {}, []
    defer = defer_edges(settings.detector, None)  # a learned detector on a GPU: batched here
    for res in run_jobs([(str(p), None) for p in paths], settings, workers, defer_edges=defer):
        if res.deferred is not None:
            deferred.append(res.deferred)
        elif res.record is None:
            raise RuntimeError(f"{res.path}: {res.reason}")
        else:
            records[res.path] = res.record
    if deferred:
        layout, detector = FeatureLayout.from_settings(settings), get_detector(settings.detector)
        for i in range(0, len(deferred), 256):
            for r, _ in finish_deferred(deferred[i:i + 256], layout, detector):
                records[r.path] = r
    rs = [records[str(p)] for p in paths]
    geometry = np.array([[r.width, r.height, r.work_width, r.work_height, r.work_scale] for r in rs], np.float64)
    return Described(np.stack([r.codes for r in rs]), np.stack([r.inv_norms for r in rs]), geometry)


@dataclass
class RunResult:
    """Scores (Q, N) as ranks (higher is better), top-10 rows and boxes per query, seconds per query."""

    scores: np.ndarray
    top_rows: np.ndarray  # (Q, 10)
    top_boxes: np.ndarray  # (Q, 10, 4)
    seconds_per_query: float


def run_queries(sketches: list[EdgeMap], coll: Described, layout: FeatureLayout, options: SearchOptions,
                *, exclude: np.ndarray | None = None) -> RunResult:
    """Rank the whole collection for every sketch; scores are rank-based so every pipeline is comparable."""
    n = coll.codes.shape[0]
    scores = np.zeros((len(sketches), n), np.float32)
    top_rows = np.full((len(sketches), 10), -1, np.int64)
    top_boxes = np.zeros((len(sketches), 10, 4))
    t0 = time.perf_counter()
    for q, sk in enumerate(sketches):
        scorer = QueryScorer(encode_query(sk, layout), layout, mirror=options.mirror)
        r = rank(scorer, coll.codes, coll.inv_norms, options, top_k=n, n_align=20)
        scores[q, r.rows] = np.arange(n, 0, -1)
        keep = [j for j in range(len(r.alignments)) if exclude is None or not exclude[q, r.rows[j]]][:10]
        for i, j in enumerate(keep):
            row, al = int(r.rows[j]), r.alignments[j]
            top_rows[q, i] = row
            top_boxes[q, i] = photo_box(coll.geometry[row], sk.width * al.scale, sk.height * al.scale,
                                        al.dx, al.dy)
    return RunResult(scores, top_rows, top_boxes, (time.perf_counter() - t0) / max(1, len(sketches)))


def _hog_photo_images(paths: list[Path], settings: SketchSettings) -> list[np.ndarray]:
    out = []
    for p in paths:
        img = load_image(p, max_side=settings.max_side).pixels
        out.append(bl.render_edge_map(photo_edges(img, detector=settings.detector, max_side=settings.max_side,
                                                  min_strength=settings.min_strength)))
    return out


#: a larger descriptor, measured beside the default one
QUALITY_PRESET = SketchSettings.preset("quality")
#: the default descriptor on the learned detector's edges
HED_SETTINGS = SketchSettings(detector="hed")


def _sketch_variants(quick: bool) -> list[tuple[str, SearchOptions, SketchSettings | None]]:
    """AFM pipelines compared (settings None: the benchmark's own); S=10% stresses the shortlist (the
    default S covers these small sets)."""
    ten = {"shortlist_fraction": 0.1, "min_shortlist": 1}
    variants = [
        ("AFM exhaustive", SearchOptions(mode="exhaustive"), None),
        ("AFM fast, defaults", SearchOptions(), None),
        ("AFM exhaustive, no mirror", SearchOptions(mode="exhaustive", mirror=False), None),
        ("AFM fast S=10% coarse 2-D", SearchOptions(order="coarse", **ten), None),
        ("AFM fast S=10% S_x+S_y", SearchOptions(order="sum", **ten), None),
        ("AFM fast S=10% discriminative", SearchOptions(order="discriminative", **ten), None),
        ("AFM fast S=10% S_x+S_y binary", SearchOptions(order="sum", binary=True, **ten), None),
        (f"AFM exhaustive, {QUALITY_PRESET.dim}-D (6,3)", SearchOptions(mode="exhaustive"), QUALITY_PRESET),
    ]
    if quick:
        return variants[:2]
    if hed_available():  # the learned edge detector (the photos described again, with HED edges)
        variants.append(("AFM exhaustive, HED edges", SearchOptions(mode="exhaustive"), HED_SETTINGS))
    return variants


def _run_variants(paths: list[Path], sketches: list[EdgeMap], settings: SketchSettings, quick: bool,
                  exclude: np.ndarray | None = None):
    """(name, RunResult) of every variant; the photos are described once per descriptor setting."""
    collections: dict[SketchSettings, Described] = {}
    for name, opt, own in _sketch_variants(quick):
        own = own or settings
        if own not in collections:
            collections[own] = describe(paths, own)
        yield name, run_queries(sketches, collections[own], FeatureLayout.from_settings(own), opt, exclude=exclude)


def bench_sketchy(root: Path, settings: SketchSettings, *, quick: bool = False) -> list[dict]:
    """Sketchy: category mAP, P@20, instance R@1/R@10 for AFM variants and the baselines."""
    data = ds.load_sketchy(root)
    q_idx = np.arange(len(data.query_paths))
    if quick:
        q_idx = q_idx[:: max(1, len(q_idx) // 40)]
    sketches_img = [load_image(data.query_paths[i]).pixels for i in q_idx]
    sketches = [sketch_edges(img, max_side=settings.max_side) for img in sketches_img]
    relevant = data.relevance()[q_idx]
    target = data.query_photo[q_idx]
    rows = []

    def metrics(name, s, seconds=None):
        rows.append({"method": name, "mAP": mt.mean_average_precision(s, relevant),
                     "P@20": mt.precision_at_k(s, relevant, 20), "R@1": mt.recall_at_k(s, target, 1),
                     "R@10": mt.recall_at_k(s, target, 10),
                     "ms/query": round(1000 * seconds, 1) if seconds is not None else ""})

    for name, res in _run_variants(data.photo_paths, sketches, settings, quick):
        metrics(name, res.scores, res.seconds_per_query)
    metrics("random", mt.random_baseline_scores(len(q_idx), len(data.photo_paths)))
    photo_imgs = _hog_photo_images(data.photo_paths, settings)
    metrics("HOG (sketch vs photo edge map)",
            bl.hog_scores([bl.sketch_edge_image(img) for img in sketches_img], photo_imgs))
    for r in rows:
        r["photos"], r["queries"] = len(data.photo_paths), len(q_idx)
    return rows


def bench_sysu(root: Path, settings: SketchSettings, *, quick: bool = False) -> tuple[list[dict], list[dict]]:
    """SYSU-Shapes: category mAP per method, and box IoU >= 0.5 rates on AFM's top-10 hits."""
    data = ds.load_sysu(root)
    queries = ds.sysu_queries(data, per_class=30 if quick else None)
    relevant, exclude = ds.sysu_ground_truth(data, queries)
    sketches = [sketch_edges(q.image, max_side=settings.max_side) for q in queries]
    map_rows, box_rows = [], []
    main = None
    for name, res in _run_variants(data.image_paths, sketches, settings, quick, exclude):
        main = main or res
        map_rows.append({"method": name, "mAP": mt.mean_average_precision(res.scores, relevant, exclude=exclude),
                         "P@10": mt.precision_at_k(res.scores, relevant, 10, exclude=exclude),
                         "ms/query": round(1000 * res.seconds_per_query, 1)})
        box_rows.append({"boxes": name, "hits": "own top-10",
                         "IoU>=0.5": mt.localization_rate(res.top_rows, res.top_boxes, data.boxes, relevant)})
    map_rows.append({"method": "random", "mAP": mt.mean_average_precision(
        mt.random_baseline_scores(len(queries), len(data.image_paths)), relevant, exclude=exclude)})
    photo_imgs = _hog_photo_images(data.image_paths, settings)
    query_imgs = [bl.sketch_edge_image(to_rgb(q.image)) for q in queries]
    hog = bl.hog_scores(query_imgs, photo_imgs)
    map_rows.append({"method": "HOG (sketch vs photo edge map)",
                     "mAP": mt.mean_average_precision(hog, relevant, exclude=exclude),
                     "P@10": mt.precision_at_k(hog, relevant, 10, exclude=exclude)})
    # boxes of the baselines on the very hits of the main AFM run
    whole = np.zeros_like(main.top_boxes)
    hog_boxes = np.zeros_like(main.top_boxes)
    for q in range(len(queries)):
        for i, row in enumerate(main.top_rows[q]):
            if row < 0:
                continue
            w, h = data.image_sizes[row]
            whole[q, i] = bl.whole_image_box(w, h)
            if relevant[q, row]:  # only correct-class hits count, so only those need the slow baseline
                _, box = bl.hog_sliding_window(query_imgs[q], photo_imgs[row])
                sx, sy = w / photo_imgs[row].shape[1], h / photo_imgs[row].shape[0]
                hog_boxes[q, i] = box * [sx, sy, sx, sy]
    box_rows.append({"boxes": "whole image", "hits": f"{_sketch_variants(quick)[0][0]} top-10",
                     "IoU>=0.5": mt.localization_rate(main.top_rows, whole, data.boxes, relevant)})
    box_rows.append({"boxes": "sliding-window HOG", "hits": f"{_sketch_variants(quick)[0][0]} top-10",
                     "IoU>=0.5": mt.localization_rate(main.top_rows, hog_boxes, data.boxes, relevant)})
    for r in map_rows:
        r["images"], r["queries"] = len(data.image_paths), len(queries)
    return map_rows, box_rows


def bench_quality(*, data: str | os.PathLike | None = None, quick: bool = False,
                  settings: SketchSettings | None = None) -> dict:
    """All quality tables (skipping data sets that are absent, with the reason)."""
    settings = settings or SketchSettings()
    root = ds.existing_root(data)
    out: dict = {"tables": {}, "skipped": [], "settings": settings.to_json()}
    if root is None:
        out["skipped"].append(f"evaluation data not found at {data or ds.data_root()} "
                              f"(set --data or {ds.DATA_ENV_VAR})")
        return out
    try:
        out["tables"]["Sketchy: sketch -> photo (category mAP, P@20; instance R@1, R@10)"] = \
            bench_sketchy(root, settings, quick=quick)
    except ds.DatasetMissing as e:
        out["skipped"].append(str(e))
    try:
        maps, boxes = bench_sysu(root, settings, quick=quick)
        out["tables"]["SYSU-Shapes: outline sketch -> photo (category mAP)"] = maps
        out["tables"]["SYSU-Shapes: correct-class top-10 hits with box IoU >= 0.5"] = boxes
    except ds.DatasetMissing as e:
        out["skipped"].append(str(e))
    return out
