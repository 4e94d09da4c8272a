"""Region queries on SYSU-Shapes (``sketchsearch bench --only region``).

Protocol: each query is the annotated object box of one photo (its first, the largest when several), searched
against the collection with the query's own photo left out; relevant photos are those of the query's class.
Reported per mode (``engine.region``: the region as an image query, as a shape, both fused) and for the
whole photo as an image query: category mAP over the whole ranking, P@10, and the box rate -- of the correct-class
photos among the top 5, the share whose box overlaps one of the photo's annotated boxes at IoU >= 0.5 (an
image query's box is the whole photo).  Nothing here is fitted.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..collection import SketchIndex
from ..errors import QueryError
from ..indexer import index_folders
from . import datasets as ds
from . import metrics as mt


def _metrics(ranked: list[list[int]], boxes: list[list[tuple]], qcls: np.ndarray, data) -> dict:
    """mAP, P@10 and the top-5 box rate of ranked rows (indices into ``data``) per query."""
    aps, p10, hit5, n5 = [], [], 0, 0
    n_rel_total = np.bincount(data.image_class, minlength=len(data.class_names))
    for rows, bxs, c in zip(ranked, boxes, qcls, strict=True):
        rel = np.array([data.image_class[r] == c for r in rows], bool)
        n_rel = n_rel_total[c] - 1  # the query's own photo is left out
        prec = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        aps.append(float((prec * rel).sum() / max(n_rel, 1)))
        p10.append(float(rel[:10].mean()) if len(rel) else 0.0)
        for r, b, ok in list(zip(rows, bxs, rel, strict=True))[:5]:
            if ok:
                n5 += 1
                hit5 += bool((mt.box_iou(np.array([b], np.float64), data.boxes[r]) >= 0.5).any())
    return {"mAP": round(float(np.mean(aps)), 3), "P@10": round(float(np.mean(p10)), 3),
            "top-5 box IoU>=0.5": round(hit5 / max(n5, 1), 3)}


def bench_region(*, data: str | os.PathLike | None = None, quick: bool = False, per_class: int | None = None,
                 work: str | os.PathLike | None = None) -> dict:
    """The region query table; ``tables`` maps titles to rows, ``skipped`` lists what could not run."""
    out: dict = {"tables": {}, "skipped": []}
    sysu = ds.load_or_skip(ds.load_sysu, data, out["skipped"], "region queries")
    if sysu is None:
        return out
    per_class = per_class or (10 if quick else 40)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(work) if work else Path(tmp) / "sysu-index"
        t0 = time.perf_counter()
        index_folders(sorted({Path(p).parent for p in sysu.image_paths}), db)
        out["index_seconds"] = round(time.perf_counter() - t0, 1)
        ix = SketchIndex(db)
        depth = len(ix)  # the whole ranking
        where = {os.path.realpath(p): i for i, p in enumerate(sysu.image_paths)}
        row_of = {r: where.get(os.path.realpath(p), -1) for r, p in enumerate(ix.paths)}
        rng = np.random.default_rng(0)
        queries = np.concatenate([rng.permutation(np.flatnonzero(sysu.image_class == c))[:per_class]
                                  for c in range(len(sysu.class_names))])
        modes = {"region as image": "image", "region as shape": "shape", "region, both fused": "both",
                 "whole photo as image": None}
        ranked = {m: [] for m in modes}
        boxes = {m: [] for m in modes}
        seconds = {m: 0.0 for m in modes}
        failed = {m: 0 for m in modes}
        for q in queries.tolist():
            path = str(sysu.image_paths[q])
            box = tuple(float(v) for v in sysu.boxes[q][0])
            for name, mode in modes.items():
                t = time.perf_counter()
                try:
                    hits = (ix.search_image(path, top_k=depth) if mode is None
                            else ix.search_region(path, box, mode=mode, top_k=depth))
                except QueryError:
                    hits = []
                    failed[name] += 1
                seconds[name] += time.perf_counter() - t
                got = [(row_of[h.row], h.box) for h in hits if row_of[h.row] != q]
                ranked[name].append([r for r, _ in got])
                boxes[name].append([b for _, b in got])
        qcls = sysu.image_class[queries]
        rows = []
        for name in modes:
            rows.append({"query": name, **_metrics(ranked[name], boxes[name], qcls, sysu),
                         "s/query": round(seconds[name] / len(queries), 3), "no result": failed[name]})
        out["tables"][f"Region queries on SYSU-Shapes ({len(queries)} queries: an annotated object box of a photo, "
                      f"against the other {len(sysu) - 1} photos)"] = rows
    return out
