"""Compact descriptors against the float path (``sketchsearch bench --only compact``).

The index keeps each photo's image descriptor and global sketch descriptor as int8 codes in PCA bases
learned on the collection (``engine.compact``, ``engine.imageindex``).  This benchmark describes the Sketchy
photos as the indexer's workers do (the photos in the network's int8 graph, their edge drawings in float) and the
sketches as a query is described (float), and scores them twice -- as the float vectors, and as the index keeps
them (the bases, codes and whitening learned on the collection by ``imageindex.learn``, then decoded) -- on
each half of the classes as its own collection (class-disjoint: nothing is fitted on the other half) and on
all of them:

* photo -> photo category mAP, each photo against the rest (whitened where the collection has the
  1,000 photos the whitening needs, as the index does);
* sketch -> photo category mAP of the global sketch descriptor alone (centred on the collection's mean).

A second table compares the photos described by the int8 graph with the same photos described by the float one,
each as the index keeps them: the cosine of the raw vectors and photo -> photo mAP.

The fused sketch ranking and the near-duplicates use these vectors through the product; their tables are
``--only fusion`` and ``--only rotation``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..cnn import GemDescriber
from ..describe import DEFAULT_BACKBONE, drawing_settings, gem_settings
from ..edges import sketch_edges
from ..fusion import drawing_input
from ..imageindex import MIN_WHITENING_IMAGES, WHITEN_DIM, as_kept, learn
from ..imageio import load_image
from ..imagesearch import learn_whitening
from ..indexer import run_jobs
from ..settings import SketchSettings
from ..vectors import l2n
from . import datasets as ds
from . import metrics as mt


def describe_photos(paths: list[Path], backbone: str = DEFAULT_BACKBONE, *,
                    int8: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, G) float32 raw GeM of the photos and of their edge maps drawn, as the indexer's workers compute
    them (float16; ``int8``: as in ``indexer.index_folders``)."""
    gem = gem_settings(backbone)
    got = {}
    for res in run_jobs([(str(p), None) for p in paths], SketchSettings(), None, cnn_json=gem.to_json(), int8=int8):
        if res.record is None:
            raise RuntimeError(f"{res.path}: {res.reason}")
        got[res.path] = (res.record.gem, res.record.sketch)
    g, s = zip(*(got[str(p)] for p in paths), strict=True)
    return np.stack(g).astype(np.float32), np.stack(s).astype(np.float32)


def describe_sketches(paths: list[Path], backbone: str = DEFAULT_BACKBONE) -> np.ndarray:
    """(Q, G) float32 raw global descriptors of query sketches."""
    drawer = GemDescriber(drawing_settings(gem_settings(backbone).backbone), backend="auto")  # as a query is
    return np.stack([drawer.describe([drawing_input(sketch_edges(load_image(p).pixels), query=True)])[0]
                     for p in paths]).astype(np.float32)


def photo_map(x: np.ndarray, labels: np.ndarray) -> float:
    x = l2n(x)
    s = x @ x.T
    rel = labels[:, None] == labels[None, :]
    return mt.mean_average_precision(s, rel, exclude=np.eye(len(x), dtype=bool))


def sketch_map(q: np.ndarray, p: np.ndarray, centre: np.ndarray, qcls: np.ndarray, pcls: np.ndarray) -> float:
    s = l2n(q - centre) @ l2n(p - centre).T
    return mt.mean_average_precision(s, qcls[:, None] == pcls[None, :])


def kept_images(gem: np.ndarray, sketch: np.ndarray):
    """What the index learns on a collection (``imageindex.learn``: bases, whitening) from its photos' raw vectors,
    and its photos' image vectors as the index keeps them: codes in its basis, decoded, whitened where it has the
    photos the whitening needs."""
    x = l2n(gem)
    learned = learn(x, sketch, sketch.astype(np.float64).sum(axis=0), len(x))
    cx = as_kept(learned.image_basis, x)
    return learned, learned.whitening.apply(cx) if learned.whitening is not None else cx


def compare(gem: np.ndarray, sketch: np.ndarray, labels: np.ndarray, q: np.ndarray, qcls: np.ndarray) -> list[dict]:
    """Float and compact rows of one collection (its photos' raw vectors, its queries)."""
    x = l2n(gem)
    white = learn_whitening(x, dim=WHITEN_DIM, min_images=MIN_WHITENING_IMAGES)
    fl_img = white.apply(x) if white is not None else x
    learned, co_img = kept_images(gem, sketch)
    mean = sketch.mean(axis=0)
    co_sketch = as_kept(learned.sketch_basis, sketch)
    rows = []
    for what, f, c in (("photo -> photo mAP" + (" (whitened)" if white is not None else ""),
                        photo_map(fl_img, labels), photo_map(co_img, labels)),
                       ("sketch -> photo mAP, global descriptor", sketch_map(q, sketch, mean, qcls, labels),
                        sketch_map(q, co_sketch, mean, qcls, labels))):
        rows.append({"measure": what, "float": round(f, 4), "compact": round(c, 4),
                     "change %": round(100 * (c - f) / f, 2)})
    return rows


def kept_photo_map(gem: np.ndarray, sketch: np.ndarray, labels: np.ndarray) -> float:
    """Photo -> photo mAP of a collection's photos as the index keeps them (:func:`kept_images`)."""
    return photo_map(kept_images(gem, sketch)[1], labels)


def bench_compact(*, data=None, quick: bool = False) -> dict:
    out: dict = {"tables": {}, "skipped": []}
    sk = ds.load_or_skip(ds.load_sketchy, data, out["skipped"], "compact descriptors")
    if sk is None:
        return out
    keep = np.flatnonzero(sk.photo_class < (10 if quick else len(sk.class_names)))
    paths, labels = [sk.photo_paths[i] for i in keep], sk.photo_class[keep]
    qkeep = np.flatnonzero(np.isin(sk.query_class, np.unique(labels)))
    t0 = time.perf_counter()
    gem, sketch = describe_photos(paths)
    gem_float, sketch_float = describe_photos(paths, int8=False)
    q = describe_sketches([sk.query_paths[i] for i in qkeep])
    qcls = sk.query_class[qkeep]
    out["describe_seconds"] = round(time.perf_counter() - t0, 1)
    rows = []
    for name, sel, qsel in (("even classes", labels % 2 == 0, qcls % 2 == 0),
                            ("odd classes", labels % 2 == 1, qcls % 2 == 1),
                            ("all classes", np.ones(len(labels), bool), np.ones(len(qcls), bool))):
        for r in compare(gem[sel], sketch[sel], labels[sel], q[qsel], qcls[qsel]):
            rows.append({"collection": f"{name} ({int(sel.sum())} photos)", **r})
    out["rows"] = rows
    out["tables"]["Compact descriptors (int8 codes in bases learned on the collection) against the float "
                  "vectors, Sketchy; each collection its own bases"] = rows
    from ..cnn import int8_agrees

    out["int8_network"] = int8_agrees(DEFAULT_BACKBONE)
    out["drawings_same"] = bool(np.array_equal(sketch, sketch_float))  # the drawings stay in float
    cos = np.sum(l2n(gem) * l2n(gem_float), axis=1)
    net_rows = []
    for name, sel in (("even classes", labels % 2 == 0), ("odd classes", labels % 2 == 1),
                      ("all classes", np.ones(len(labels), bool))):
        f = kept_photo_map(gem_float[sel], sketch[sel], labels[sel])
        i = kept_photo_map(gem[sel], sketch[sel], labels[sel])
        net_rows.append({"collection": f"{name} ({int(sel.sum())} photos)",
                         "cosine mean": round(float(cos[sel].mean()), 4),
                         "cosine least": round(float(cos[sel].min()), 4),
                         "photo -> photo mAP, float network": round(f, 4), "int8 network": round(i, 4),
                         "change %": round(100 * (i - f) / f, 2)})
    out["network_rows"] = net_rows
    used = "int8" if out["int8_network"] else "float (the int8 graph does not agree with it on this CPU)"
    out["tables"][f"The photos' network: {used} against float, each as the index keeps it (Sketchy; the edge "
                  f"drawings in float both times: {'the same' if out['drawings_same'] else 'NOT the same'})"] = net_rows
    return out
