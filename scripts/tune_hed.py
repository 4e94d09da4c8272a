"""Tune the HED detector's post-processing.

``python scripts/tune_hed.py edges``: boundary F on the tuning third of SYSU-Shapes (w >= 0.2 operating
point) over a grid of tau / p / min_length.  ``python scripts/tune_hed.py retrieval``: Sketchy and SYSU
sketch-search mAP for a few tau.  The network runs once per photo: its probability maps are cached in
``$HED_CACHE`` (default /tmp/hed-cache); each setting only redoes thinning and filtering.
"""
import hashlib
import itertools
import os
import sys
from pathlib import Path

import numpy as np

from engine.afm import FeatureLayout
from engine.bench import datasets as ds
from engine.bench import metrics as mt
from engine.bench.edges import DEFAULT_SYSU_ROOT, evaluate_detector, load_sysu
from engine.bench.quality import describe, run_queries
from engine.edges import register_detector, sketch_edges
from engine.hed import HEDDetector
from engine.imageio import load_image
from engine.search import SearchOptions
from engine.settings import SketchSettings

CACHE = Path(os.environ.get("HED_CACHE", "/tmp/hed-cache"))


@register_detector("hed-cached")
class Cached(HEDDetector):
    def __call__(self, rgb):
        key = hashlib.blake2b(rgb.tobytes(), digest_size=16).hexdigest()
        f = CACHE / f"{key}.npy"
        if f.exists():
            e = np.load(f).astype(np.float32)
        else:
            e = self.probabilities([rgb])[0]
            CACHE.mkdir(parents=True, exist_ok=True)
            np.save(f, e.astype(np.float16))
        return self.from_probability(e)


def edges() -> None:
    items = load_sysu(DEFAULT_SYSU_ROOT)
    images: dict = {}
    grid = {"tau": (0.1, 0.3, 0.5, 0.6, 0.7, 0.8), "p": (0.5, 1.0), "min_length": (1, 10)}
    for values in itertools.product(*grid.values()):
        kw = dict(zip(grid, values, strict=True))
        r = evaluate_detector(Cached(**kw), items=items, images=images, step=3, offset=0)
        print(f"{kw}  P {r['precision']:.3f} R {r['recall']:.3f} F {r['f']:.3f}  best F {r['ods_f']:.3f} "
              f"@{r['ods_threshold']:.2f}", flush=True)


def retrieval() -> None:
    root = ds.data_root()
    sk = ds.load_sketchy(root / "sketchy")
    sy = ds.load_sysu(root / "sysu-shapes")
    sy_q = ds.sysu_queries(sy)
    sy_rel, sy_excl = ds.sysu_ground_truth(sy, sy_q)
    for det, kw in [("hed-cached", {"tau": t}) for t in (0.5, 0.7, 0.3)]:
        if kw:
            register_detector("hed-cached")(type("C", (Cached,), {"__init__": lambda self, kw=kw: Cached.__init__(
                self, **kw)}))
        settings = SketchSettings(detector=det)
        layout = FeatureLayout.from_settings(settings)
        opt = SearchOptions(mode="exhaustive")
        coll = describe(sk.photo_paths, settings, workers=1)
        sketches = [sketch_edges(load_image(p).pixels, max_side=settings.max_side) for p in sk.query_paths]
        res = run_queries(sketches, coll, layout, opt)
        m1 = mt.mean_average_precision(res.scores, sk.relevance())
        r1 = mt.recall_at_k(res.scores, sk.query_photo, 1)
        coll = describe(sy.image_paths, settings, workers=1)
        res = run_queries([sketch_edges(q.image, max_side=settings.max_side) for q in sy_q], coll, layout, opt,
                          exclude=sy_excl)
        m2 = mt.mean_average_precision(res.scores, sy_rel, exclude=sy_excl)
        iou = mt.localization_rate(res.top_rows, res.top_boxes, sy.boxes, sy_rel)
        print(f"{det} {kw}: Sketchy mAP {m1:.3f} R@1 {r1:.3f} | SYSU mAP {m2:.3f} IoU>=0.5 {iou:.3f}", flush=True)


if __name__ == "__main__":
    {"edges": edges, "retrieval": retrieval}[sys.argv[1] if len(sys.argv) > 1 else "edges"]()
