"""Image-search benchmark (``sketchsearch bench --only image``).

* Photo -> photo category retrieval on the Sketchy photos (each photo against all the others): mAP and
  P@20 of the raw GeM vectors and of the collection-whitened ones, each with and without alpha-QE.
* Sketch -> photo on the same data: the AFM ranking, and the same ranking after sketch-to-image
  expansion (the image vectors of the top 3 / 10 sketch hits averaged into an image query), as
  :meth:`engine.collection.SketchIndex.search` does it.
* Descriptor extraction speed (images/s) on real and on synthetic 640 x 480 photos.
* Image-search latency at 100k and 1M synthetic descriptors: faiss flat, torch, faiss IVF-PQ (with its
  recall@10 against the exact search and its build time).

Photos go through the indexer's own decode and resize (:func:`engine.indexer._run_jobs`) and whitening
uses the index's settings (:mod:`engine.imageindex`), so the figures are those of an index of these photos.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..afm import FeatureLayout
from ..cnn import Device, GemDescriber, GemSettings, photo_backend
from ..describe import DEFAULT_BACKBONE, gem_settings
from ..edges import sketch_edges
from ..imageindex import ALPHA, NPROBE, RERANK, WHITEN_DIM
from ..imageio import load_image
from ..imagesearch import VectorIndex, alpha_qe, learn_whitening
from ..indexer import run_jobs
from ..search import SearchOptions, pick_device
from ..settings import SketchSettings
from ..vectors import l2n
from . import datasets as ds
from . import metrics as mt
from .quality import Described, run_queries

log = logging.getLogger(__name__)

QE_NEIGHBOURS = (1, 2, 5, 10)
EXPANSIONS = (3, 10)



def describe_both(paths: list[Path], settings: SketchSettings, backbone: str = DEFAULT_BACKBONE,
                  device: str | None = None) -> tuple[Described, np.ndarray, float]:
    """AFM descriptors and raw GeM vectors of photos, decoded and described as the indexer does (on the CPU,
    the photos' network in the int8 graph where the indexer's workers use it: ``cnn.photo_backend``).

    Returns the collection, the (N, d) float32 raw GeM vectors and the GeM extraction's images/s
    (network only: the photos are already decoded and resized).
    """
    gem = gem_settings(backbone)
    records, inputs = {}, {}
    for res in run_jobs([(str(p), None) for p in paths], settings, None, net_side=gem.max_side):
        if res.record is None:
            raise RuntimeError(f"{res.path}: {res.reason}")
        records[res.path], inputs[res.path] = res.record, res.net_input[0]  # (photo, edges drawn)
    rs = [records[str(p)] for p in paths]
    geometry = np.array([[r.width, r.height, r.work_width, r.work_height, r.work_scale] for r in rs], np.float64)
    coll = Described(np.stack([r.codes for r in rs]), np.stack([r.inv_norms for r in rs]), geometry)
    cpu = pick_device(device).type == "cpu"
    describer = GemDescriber(gem, device, **({"backend": photo_backend(gem.backbone)} if cpu else {}))
    net = [inputs[str(p)] for p in paths]
    t0 = time.perf_counter()
    raw = np.concatenate([describer.describe(net[i:i + 16]) for i in range(0, len(net), 16)])
    return coll, raw.astype(np.float32), len(net) / (time.perf_counter() - t0)


def _photo_rows(raw: np.ndarray, white: np.ndarray | None, labels: np.ndarray) -> list[dict]:
    """mAP / P@20 of photo -> photo retrieval (the query itself excluded) with and without alpha-QE."""
    relevant = labels[:, None] == labels[None, :]
    exclude = np.eye(len(labels), dtype=bool)
    rows = []
    for name, x in (("raw GeM", raw), ("whitened", white)):
        if x is None:
            continue
        x = l2n(x)
        _, ids = VectorIndex(x, kind="flat").search(x, max(QE_NEIGHBOURS) + 1)
        variants = [(f"{name}", x)]
        for n in QE_NEIGHBOURS:  # a query from outside the collection: its neighbours are other photos
            nb = np.stack([r[r != i][:n] for i, r in enumerate(ids)])
            variants.append((f"{name} + aQE n={n}", alpha_qe(x, x, nb, alpha=ALPHA)))
        for n in QE_NEIGHBOURS[1:]:  # "search with this photo": the photo itself is its first neighbour
            variants.append((f"{name} + aQE n={n}, query in the collection", alpha_qe(x, x, ids[:, :n], alpha=ALPHA)))
        for vname, q in variants:
            s = q @ x.T
            rows.append({"method": vname, "dim": x.shape[1],
                         "mAP": mt.mean_average_precision(s, relevant, exclude=exclude),
                         "P@20": mt.precision_at_k(s, relevant, 20, exclude=exclude)})
    s = mt.random_baseline_scores(len(labels), len(labels))
    rows.append({"method": "random", "dim": 0, "mAP": mt.mean_average_precision(s, relevant, exclude=exclude),
                 "P@20": mt.precision_at_k(s, relevant, 20, exclude=exclude)})
    return rows


def expansion_scores(afm_top: np.ndarray, vectors: np.ndarray, n: int) -> np.ndarray:
    """(Q, N) scores of sketch-to-image expansion: cosine to the mean vector of each query's top ``n`` AFM
    hits (``afm_top``: (Q, >= n) rows, best first) -- the ranking :meth:`SketchIndex.search` returns."""
    q = l2n(vectors[afm_top[:, :n]].mean(axis=1))
    return q @ vectors.T


def bench_sketch_expansion(data: ds.SketchyData, n_classes: int, coll: Described, vectors: np.ndarray,
                           settings: SketchSettings) -> list[dict]:
    """Sketch -> photo mAP, P@20 and instance R@1/R@10 of AFM alone and with expansion (the sketches of
    the first ``n_classes`` classes against the photos of those classes: ``coll`` and ``vectors``)."""
    q_idx = np.flatnonzero(data.query_class < n_classes)
    sketches = [sketch_edges(load_image(data.query_paths[i]).pixels, max_side=settings.max_side) for i in q_idx]
    relevant = data.relevance()[q_idx][:, :len(vectors)]
    target = data.query_photo[q_idx]
    res = run_queries(sketches, coll, FeatureLayout.from_settings(settings), SearchOptions())
    top = np.argsort(-res.scores, axis=1, kind="stable")[:, :max(EXPANSIONS)]
    rows = []

    def add(name, s):
        rows.append({"method": name, "mAP": mt.mean_average_precision(s, relevant),
                     "P@20": mt.precision_at_k(s, relevant, 20), "R@1": mt.recall_at_k(s, target, 1),
                     "R@10": mt.recall_at_k(s, target, 10)})

    add("AFM (fast, defaults)", res.scores)
    for n in EXPANSIONS:
        add(f"AFM + expansion n={n}", expansion_scores(top, vectors, n))
    add("random", mt.random_baseline_scores(len(q_idx), vectors.shape[0]))
    base = rows[0]["mAP"]
    for r in rows:
        r["x AFM mAP"] = r["mAP"] / base if base > 0 else float("nan")
        r["queries"], r["photos"] = len(q_idx), vectors.shape[0]
    return rows


def clustered_vectors(n: int, d: int, *, clusters: int = 2000, spread: float = 0.6, seed: int = 0) -> np.ndarray:
    """(n, d) float32 L2-normalised synthetic descriptors around ``clusters`` random centres."""
    rng = np.random.default_rng(seed)
    centres = l2n(rng.standard_normal((clusters, d), dtype=np.float32))
    out = np.empty((n, d), np.float32)
    for i in range(0, n, 65536):
        m = min(65536, n - i)
        block = centres[rng.integers(0, clusters, m)] + spread / np.sqrt(d) * rng.standard_normal((m, d),
                                                                                                  dtype=np.float32)
        out[i:i + m] = l2n(block)
    return out


def _rerank(vectors: np.ndarray, q: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best of candidate ids by exact inner product (as ImageSearcher re-ranks IVF-PQ hits)."""
    ids = np.sort(ids[ids >= 0])
    return ids[np.argsort(-(vectors[ids].astype(np.float32) @ q), kind="stable")][:k]


def bench_search_latency(sizes: tuple[int, ...], *, d: int = WHITEN_DIM, queries: int = 20, k: int = 20,
                         device: str | None = None) -> list[dict]:
    """Single-query latency (median over ``queries`` queries) of each vector-index kind at each size."""
    rows = []
    for n in sizes:
        x = clustered_vectors(n, d)
        q = l2n(x[np.random.default_rng(1).choice(n, queries, replace=False)]
                 + 0.3 / np.sqrt(d) * np.random.default_rng(2).standard_normal((queries, d), dtype=np.float32))
        exact = None
        x16 = x.astype(np.float16)  # the index's stored vectors, which re-rank IVF-PQ candidates
        for kind in ("flat", "torch", "ivfpq", "ivfpq+rerank"):
            t0 = time.perf_counter()
            if kind != "ivfpq+rerank":
                index = VectorIndex(x, kind=kind, device=device if kind == "torch" else None)
                index.nprobe = NPROBE
            build = time.perf_counter() - t0
            kk = RERANK * k if kind == "ivfpq+rerank" else k
            index.search(q[:1], kk)  # warm-up
            times, found = [], []
            for i in range(queries):
                t0 = time.perf_counter()
                _, ids = index.search(q[i:i + 1], kk)
                if kind == "ivfpq+rerank":
                    ids = _rerank(x16, q[i], ids[0], k)[None]
                times.append(time.perf_counter() - t0)
                found.append(ids[0])
            found = np.stack(found)[:, :k]
            exact = found if exact is None else exact
            rows.append({"vectors": n, "dim": d, "index": kind + (f" ({index.device})" if kind == "torch" else ""),
                         "build s": round(build, 2) if kind != "ivfpq+rerank" else "",
                         "ms/query": round(1000 * float(np.median(times)), 2),
                         "recall@10": round(neighbour_recall(found[:, :10], exact[:, :10], 10), 3),
                         "nprobe": index.nprobe or ""})
    return rows


def bench_image(*, data: str | os.PathLike | None = None, quick: bool = False, device: str | None = None) -> dict:
    """All image-search tables; ``tables`` maps titles to rows, ``skipped`` lists what could not run."""
    from ..imageindex import MIN_WHITENING_IMAGES

    out: dict = {"tables": {}, "skipped": []}
    rate = extraction_speed(8 if quick else 32, device)
    out["extraction_synthetic_images_per_s"] = rate
    root = ds.existing_root(data)
    sk = None
    try:
        sk = ds.load_sketchy(root) if root else None
    except ds.DatasetMissing as e:
        out["skipped"].append(f"photo and sketch retrieval: {e}")
    if root is None:
        out["skipped"].append("photo and sketch retrieval: no evaluation data (../shared/data)")
    if sk is not None:
        settings = SketchSettings()
        n_classes = 10 if quick else len(sk.class_names)  # photos are sorted by class: a prefix
        n = int(np.sum(sk.photo_class < n_classes))
        paths, labels = sk.photo_paths[:n], sk.photo_class[:n]
        t0 = time.perf_counter()
        coll, raw, net_rate = describe_both(paths, settings, device=device)
        out["describe_seconds"] = time.perf_counter() - t0
        white = learn_whitening(raw, dim=WHITEN_DIM, min_images=MIN_WHITENING_IMAGES)  # as the index would
        wx = white.apply(raw) if white is not None else None
        out["tables"][f"Photo -> photo category retrieval, Sketchy ({len(paths)} photos, each against the "
                      f"rest; aQE alpha={ALPHA:g})"] = _photo_rows(raw, wx, labels)
        vectors = l2n(wx if wx is not None else raw)
        out["tables"]["Sketch -> photo on Sketchy, AFM alone and with sketch-to-image expansion "
                      f"({'whitened' if wx is not None else 'raw'} GeM, {vectors.shape[1]}-D)"] = \
            bench_sketch_expansion(sk, n_classes, coll, vectors, settings)
        out["extraction_real_images_per_s"] = net_rate
    out["tables"]["GeM extraction (EfficientNet-Lite0, scales 1, 1/sqrt2, 1/2 at 384 px; target >= 10/s)"] = [
        {"photos": "synthetic 640x480", "images/s": round(rate, 1)}] + (
        [{"photos": "Sketchy 256 px (net only)", "images/s": round(out["extraction_real_images_per_s"], 1)}]
        if "extraction_real_images_per_s" in out else [])
    sizes = (10_000,) if quick else (100_000, 1_000_000)
    out["tables"][f"Image search latency, one query, top 20 (synthetic clustered {WHITEN_DIM}-D descriptors)"] = \
        bench_search_latency(sizes, device=device)
    return out


def neighbour_recall(approx_ids: np.ndarray, exact_ids: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top ``k`` found in the approximate top ``k``.

    Parameters
    ----------
    approx_ids, exact_ids : (m, >= k) int array_like
        Ids from an approximate and an exact search of the same queries.
    k : int
        Rank cut-off.

    Returns
    -------
    float
        ``mean_q |approx[q, :k] & exact[q, :k]| / k`` (``-1`` ids never count).
    """
    a = np.asarray(approx_ids)
    e = np.asarray(exact_ids)
    if a.ndim != 2 or e.ndim != 2 or a.shape[0] != e.shape[0] or min(a.shape[1], e.shape[1]) < k:
        raise ValueError(f"need (m, >= {k}) id arrays of the same m, got {a.shape} and {e.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    a, e = a[:, :k], e[:, :k]
    hits = (a[:, :, None] == e[:, None, :]) & (e[:, None, :] >= 0)
    return float(hits.any(axis=2).sum(axis=1).mean() / k)


def extraction_speed(n: int = 32, device: str | Device | None = None, *,
                     settings: GemSettings | None = None, size: tuple[int, int] = (480, 640),
                     batch_size: int | None = None, seed: int = 0, backend: str = "torch") -> float:
    """Measured descriptor throughput (images/s: resizing, all scales, pooling) on synthetic photos.

    Parameters
    ----------
    n : int
        Images timed (after one warm-up image).
    device : str or Device, optional
        As :class:`GemDescriber`.
    settings : GemSettings, optional
        Default :class:`GemSettings()`.
    size : (int, int)
        (height, width) of the synthetic photos.
    batch_size : int, optional
        As :class:`GemDescriber`.
    seed : int
        Seed of the synthetic photos.
    backend : str
        As :class:`GemDescriber` (torch: as indexing runs).

    Returns
    -------
    float
        Images per second.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    describer = GemDescriber(settings, device, batch_size=batch_size, backend=backend)
    images = [_synthetic_photo(rng, *size) for _ in range(min(n, 8))]
    images = [images[i % len(images)] for i in range(n)]
    describer.describe(images[:1])  # load weights, warm up kernels
    cuda = describer.device.type == "cuda"
    if cuda:
        import torch

        torch.cuda.synchronize(str(describer.device))
    t0 = time.perf_counter()
    describer.describe(images)
    if cuda:
        torch.cuda.synchronize(str(describer.device))
    return n / (time.perf_counter() - t0)


def _synthetic_photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured RGB float32 image: smooth gradient, blobs and noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = (0.3 + 0.4 * xx / width)[..., None] * rng.uniform(0.5, 1.0, 3).astype(np.float32)
    img = img + 0.2 * (yy / height)[..., None]
    for _ in range(12):
        c = tuple(float(v) for v in rng.uniform(0, 1, 3))
        cv2.circle(img, (int(rng.integers(0, width)), int(rng.integers(0, height))), int(rng.integers(5, 60)), c, -1)
    img += rng.normal(0, 0.05, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


