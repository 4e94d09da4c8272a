"""Train the query sketch's learned adaptation (``engine.adaptation``) on half of Sketchy's classes, check it on
the other half, and ship it only where it wins there.

Pairs: every Sketchy sketch (``sketch/<class>/<photo-id>-<k>.png``) described as a query is, and the descriptor
of its photo's edge drawing as the index keeps it (the Sketchy index of the benchmarks).  On the fit half (the
classes at even positions of the sorted class list, ``--half 0``), ``lam`` is chosen among a few values by
class-disjoint cross-validation inside the fit classes (two folds of classes; the global descriptor's category
mAP of the held fold's sketches against all 1,250 photos), then the map is fitted on all of the fit half.  On the
other half it is measured against the plain descriptor: the global descriptor alone (every sketch of those
classes against all photos) and the whole default search (fused + expansion, the benchmark's queries, sketches
1-3), category mAP and R@10 of the sketch's own photo; and the same the other way round (fitted on the odd
classes).  The map is written (``engine/data/sketch_adaptation.npz``, with the log beside it, ``.json``) only
where it beats the plain descriptor on the held classes in both directions.

Usage: SKETCHSEARCH_BENCH_CACHE=~/.cache/sketchsearch-bench python scripts/train_sketch_adaptation.py
(about 3 minutes on 2 cores once the benchmark's Sketchy index exists; 10 more to build it).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAMS = (1.0, 3.0, 10.0, 30.0, 100.0)
RANK = 64


def sketch_pairs(root: Path, work: Path):
    """(sketch descriptors (n, d), drawing descriptors of their photos (n, d), class of each, photo of each,
    photo classes, backbone)."""
    from engine.bench import datasets as ds
    from engine.bench import fusion as fb
    from engine.cnn import GemDescriber, GemSettings
    from engine.describe import drawing_settings
    from engine.edges import sketch_edges
    from engine.fusion import drawing_input
    from engine.imageio import load_image
    from engine.reference import chunk_rows

    data = ds.load_sketchy(root / "sketchy", sketch_index=1)
    index = fb.sketchy_index(root, work)
    backbone = GemSettings.from_json(index.image_settings).backbone
    drawings = chunk_rows(index, "sketch")[fb.columns_of(index, data.photo_paths)].astype(np.float64)
    drawer = GemDescriber(drawing_settings(backbone), backend="auto")
    where = {Path(p).stem: i for i, p in enumerate(data.photo_paths)}
    desc, photo = [], []
    for f in sorted((root / "sketchy" / "sketch").glob("*/*.png")):
        m = re.match(r"(.+)-(\d+)$", f.stem)
        if not m or m.group(1) not in where:
            continue
        desc.append(drawer.describe([drawing_input(sketch_edges(load_image(f).pixels), query=True)])[0])
        photo.append(where[m.group(1)])
    photo = np.array(photo)
    return np.array(desc, np.float64), drawings, data.photo_class[photo], photo, data.photo_class, backbone


def global_measures(adapt, sketches, drawings, cls, photo, photo_class, mask) -> dict:
    """Category mAP and R@10 of the global descriptor alone: the sketches ``mask`` against every photo."""
    from engine.bench import metrics as mt
    from engine.vectors import l2n

    mu = drawings.mean(axis=0)
    q = sketches[mask] if adapt is None else adapt(sketches[mask])
    g = l2n(np.asarray(q - mu, np.float32)) @ l2n(np.asarray(drawings - mu, np.float32)).T
    rel = cls[mask][:, None] == photo_class[None, :]
    return {"mAP": mt.mean_average_precision(g, rel), "R@10": mt.recall_at_k(g, photo[mask], 10)}


def fused_measures(pool, adapt, half: int) -> dict:
    """Category mAP and R@10 of the default search (simulated over all 1,250 photos, as the product computes
    it) for the benchmark queries of the classes of ``half``, the query adapted by ``adapt`` (None: plain)."""
    from engine.bench import fusion as fb
    from engine.bench import metrics as mt
    from engine.fusion import load_params

    params = load_params()
    q = np.flatnonzero(pool.query_class % 2 == half)
    sub = pool.take(q)
    if adapt is not None:
        sub = dataclasses.replace(sub, q_sketch=adapt(sub.q_sketch.astype(np.float64)).astype(np.float32))
    sel = np.arange(pool.afm.shape[1])
    keys = np.stack([fb.simulate(sub, i, sel, params, adaptation=False).key for i in range(len(q))])
    return {"mAP": mt.mean_average_precision(keys, sub.relevant), "R@10": mt.recall_at_k(keys, sub.target, 10)}


def fit_half(pairs, half: int):
    """The map fitted on the classes of ``half`` (lam by class-disjoint cross-validation inside them), and the
    cross-validation's figures."""
    from engine.adaptation import SketchAdaptation

    sketches, drawings, cls, photo, photo_class, backbone = pairs
    classes = np.unique(cls[cls % 2 == half])
    folds = (classes[::2], classes[1::2])
    cv = {}
    for lam in LAMS:
        score = 0.0
        for a, b in (folds, folds[::-1]):
            fit = np.isin(cls, a)
            m = SketchAdaptation.fit(sketches[fit], drawings[photo[fit]], lam=lam, rank=RANK, backbone=backbone)
            score += global_measures(m, sketches, drawings, cls, photo, photo_class, np.isin(cls, b))["mAP"] / 2
        cv[lam] = round(score, 4)
    lam = max(cv, key=cv.get)
    fit = cls % 2 == half
    return SketchAdaptation.fit(sketches[fit], drawings[photo[fit]], lam=lam, rank=RANK, backbone=backbone), lam, cv


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="the folder holding sketchy/ (default: the benchmarks')")
    ap.add_argument("--out", type=Path, default=None, help="default: engine/data/sketch_adaptation.npz")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine.adaptation import ADAPTATION_FILE
    from engine.bench import datasets as ds
    from engine.bench import fusion as fb
    from engine.reference import load_reference

    out = args.out or ADAPTATION_FILE
    root = args.data or ds.data_root()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        pairs = sketch_pairs(root, Path(tmp))
        pool = fb.cached_pool("sketchy", root, Path(tmp), load_reference())
    sketches, drawings, cls, photo, photo_class, backbone = pairs
    log = {"data": "Sketchy: every sketch described as a query, paired with the drawing of its photo's edges as the "
                   "index keeps it", "pairs": int(len(sketches)), "rank": RANK, "lams": list(LAMS),
           "backbone": backbone, "directions": []}
    maps, wins = {}, True
    for half in (0, 1):
        m, lam, cv = fit_half(pairs, half)
        held = cls % 2 != half
        row = {"fitted on": ("even", "odd")[half] + " classes", "reported on": ("odd", "even")[half] + " classes",
               "fit pairs": int((~held).sum()), "lam": lam, "inner CV global mAP per lam": cv}
        for name, adapt in (("plain", None), ("adapted", m)):
            g = global_measures(adapt, sketches, drawings, cls, photo, photo_class, held)
            f = fused_measures(pool, adapt, 1 - half)
            row[name] = {"global alone mAP": round(g["mAP"], 4), "global alone R@10": round(g["R@10"], 4),
                         "default search mAP": round(f["mAP"], 4), "default search R@10": round(f["R@10"], 4)}
        wins &= all(row["adapted"][k] > row["plain"][k] for k in ("global alone mAP", "default search mAP"))
        log["directions"].append(row)
        print(json.dumps(row), flush=True)
        maps[half] = m
    log["ships"] = bool(wins)
    log["seconds"] = round(time.time() - t0, 1)
    log["date"] = time.strftime("%Y-%m-%d")
    if wins:
        maps[0].save(out, reverse=maps[1])  # the odd classes' map beside it: the benchmarks' other direction
        out.with_suffix(".json").write_text(json.dumps(log, indent=1) + "\n")
        print(f"wrote {out} and its log")
    else:
        print("the adaptation does not beat the plain descriptor on the held classes in both directions: not written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
