"""Fit and measure the fused sketch search (engine.fusion) on Sketchy and SYSU-Shapes.

``python -m engine.bench.fusion fit [DATA]`` fits the weights on one half of the Sketchy classes (even
positions in the sorted class list) and writes ``engine/data/fusion.json``; ``sketchsearch bench --only
fusion`` reports on the other half (and on SYSU-Shapes) and writes the reliability curve PNG.

Collections of every size (issue 17, ``docs/calibration.md``): ``python -m engine.bench.fusion fit-sizes``
fits the reference sample's weight, the small-collection calibration and the likely-match cut on the even
half; ``bench_sizes`` reports them on collections of 30, 100, 300 and all photos simulated from one scoring
of every query against every photo (``collect_pool``, ``simulate``, ``size_runs``).  Set
``SKETCHSEARCH_BENCH_CACHE`` to keep the indexes and those scores between runs.

Both index the photos with the product's indexer (a temporary index folder) and score every query against
every photo with the product's scorers; the fusion itself is ``engine.fusion.fuse``, the function the
search runs.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..afm import encode_query
from ..edges import EdgeMap, sketch_edges
from ..fusion import (
    FUSION_FILE,
    FusionParams,
    fuse,
    load_params,
    standardise,
)
from ..imageio import load_image
from ..imagesearch import alpha_qe
from ..vectors import l2n
from . import datasets as ds
from . import metrics as mt
from .metrics import expected_calibration_error, plot_reliability, reliability

log = logging.getLogger(__name__)

__all__ = ["Pool", "SizeRuns", "Signals", "bench_fusion", "bench_sizes", "collect", "collect_pool", "fit", "fit_sizes",
           "rank_variants", "shard_cap_check", "simulate", "size_runs", "size_tables", "sketchy_index"]


@dataclass
class Signals:
    """Every query's scores against every photo (columns in the data set's photo order)."""

    afm: np.ndarray  # (Q, N) alignment, mirror on
    afm_plain: np.ndarray  # (Q, N) alignment, mirror off
    glob: np.ndarray  # (Q, N) global sketch cosine
    image: np.ndarray  # (N, d) the photos' image vectors (index space)
    seconds_per_query: float


def _index(folders: list[Path], db: Path):
    from ..collection import SketchIndex
    from ..indexer import index_folders

    index_folders(folders, db, backbone="efficientnet-lite0")
    return SketchIndex(db)


def collect(index, sketches: list[EdgeMap], photo_paths: list[Path]) -> Signals:
    """Score ``sketches`` against every photo of ``index`` with the alignment (mirror on and off) and the
    global sketch descriptor; columns reordered to ``photo_paths``."""
    from ..search import QueryScorer

    cols = columns_of(index, photo_paths)
    images = index.images()
    n, q = len(cols), len(sketches)
    afm = np.zeros((q, n), np.float32)
    plain = np.zeros((q, n), np.float32)
    glob = np.zeros((q, n), np.float32)
    codes, inv = np.asarray(index.codes[cols]), np.asarray(index.inv_norms[cols])
    t0 = time.perf_counter()
    for i, e in enumerate(sketches):
        query = encode_query(e, index.layout)
        afm[i] = QueryScorer(query, index.layout, mirror=True).score_2d(codes, inv)
        plain[i] = QueryScorer(query, index.layout, mirror=False).score_2d(codes, inv)
        glob[i] = images.sketch_scores(images.describe_sketch(e), cols)
    seconds = (time.perf_counter() - t0) / max(q, 1)
    return Signals(afm, plain, glob, images.vectors_of_rows(cols), seconds)


def _fused(sig: Signals, params: FusionParams, variant: str, mirror: bool, *,
           key: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(ranking keys, calibrated scores), each (Q, N), of one variant: "afm", "global", "fused", "fused+qe",
    "fused+qe, fused order" (the likely hits not reordered by the drawing: ``FusionParams.likely_by_drawing``)
    (``key`` False: the fused scores themselves instead of the ranking keys, for fitting the calibration)."""
    afm = sig.afm if mirror else sig.afm_plain
    q, n = afm.shape
    rows = np.arange(n)
    bg = rows  # the whole (small) collection is the background, as in the search for N <= params.background
    final = np.zeros((q, n))
    score = np.zeros((q, n))
    if variant == "global":
        final = sig.glob.astype(np.float64)
        return final, np.full_like(final, np.nan)
    p = params if variant != "fused" else dataclasses.replace(params, qe_n=0)
    if variant == "afm":
        p = dataclasses.replace(p, calibration=p.calibration_afm)
    if variant == "fused+qe, fused order":  # the hits at or above the likely cut ordered by the fused score
        p, variant = dataclasses.replace(p, likely_by_drawing=False), "fused+qe"
    for i in range(q):
        glob = None if variant == "afm" else sig.glob[i].astype(np.float64)
        a = afm[i].astype(np.float64)

        def image(seeds, i=i, a=a, glob=glob):
            qv = alpha_qe(sig.image[seeds[0]], sig.image[seeds], np.arange(len(seeds)), alpha=p.qe_alpha)
            return rows, sig.image @ qv, a, glob, None

        f = fuse(rows, a, glob, bg, p, image=image if variant == "fused+qe" else None)
        final[i], score[i] = (f.key if key else f.final), f.score
    return final, score


def _metrics(final: np.ndarray, relevant: np.ndarray, target: np.ndarray | None = None) -> dict:
    out = {"mAP": mt.mean_average_precision(final, relevant), "P@20": mt.precision_at_k(final, relevant, 20)}
    if target is not None:
        out["R@1"] = mt.recall_at_k(final, target, 1)
        out["R@10"] = mt.recall_at_k(final, target, 10)
        ahead = (final > final[np.arange(len(final)), target][:, None]).sum(axis=1)
        out["median rank"] = float(np.median(ahead + 1))  # of the photo the sketch was drawn from
    return out


VARIANTS = (("AFM alone", "afm"), ("global sketch descriptor alone", "global"), ("fused", "fused"),
            ("fused + QE, likely hits in the fused order", "fused+qe, fused order"), ("fused + QE", "fused+qe"))


def rank_variants(sig: Signals, params: FusionParams) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: _fused(sig, params, v, params.mirror) for name, v in VARIANTS}


def _fit_calibration(z: np.ndarray, relevant: np.ndarray, knot: float = 5.0,
                     weights: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """Hinge-logistic ``sigmoid(a + b z - c max(z - knot, 0))`` by (weighted) maximum likelihood
    (b >= c >= 0)."""
    from scipy.optimize import minimize

    z = z.ravel().astype(np.float64)
    y = relevant.ravel().astype(np.float64)
    wt = np.ones_like(z) if weights is None else np.asarray(weights, np.float64).ravel()
    wt = wt / wt.sum()
    hinge = np.maximum(z - knot, 0.0)

    def nll(theta):
        a, b, c = theta
        t = a + b * z - c * hinge
        return float(np.sum(wt * (np.logaddexp(0.0, t) - y * t)))

    res = minimize(nll, x0=np.array([-4.0, 1.0, 0.5]), method="L-BFGS-B",
                   bounds=[(-20, 20), (0.0, 10.0), (0.0, 10.0)])
    a, b, c = (float(v) for v in res.x)
    return a, b, min(c, b), knot


def _zscores(final: np.ndarray) -> np.ndarray:
    """Each query's final scores standardised over the whole (small) collection, as the search does."""
    return np.stack([standardise(f, f) for f in final])


def sketchy_index(root: Path, work: Path):
    """The index of all Sketchy photos: built in ``work`` or, with ``$SKETCHSEARCH_BENCH_CACHE``, kept there
    between runs (and between the benchmarks and tests of one session; an existing one is brought up to date)."""
    return _index([root / "sketchy" / "photo"], _work_dir(work, "sketchy-index"))


def _sysu_index(data, work: Path):
    """The index of SYSU-Shapes' photos (not its contours/ folder of outline drawings), kept like
    ``sketchy_index``."""
    return _index(sorted({Path(p).parent for p in data.image_paths}), _work_dir(work, "sysu-index"))


def _sketchy(root: Path, work: Path, sketch_indices=(1,)):
    data = [ds.load_sketchy(root / "sketchy", sketch_index=k) for k in sketch_indices]
    return data, sketchy_index(root, work)


def _queries(data_list, half: int):
    """Query edges, classes, target photos of the given half of the classes (0: even positions, 1: odd)."""
    edges, cls, target = [], [], []
    for d in data_list:
        for path, c, t in zip(d.query_paths, d.query_class, d.query_photo, strict=True):
            if c % 2 == half:
                edges.append(sketch_edges(load_image(path).pixels))
                cls.append(int(c))
                target.append(int(t))
    return edges, np.array(cls), np.array(target)


def _choose_expansion(tried: list[tuple[float, float, dict]], *, tie: float = 0.005, near: float = 0.01
                      ) -> tuple[dict, bool]:
    """The expansion setting (``tried``: (Sketchy mAP, worst margin of SYSU mAP / box@1 / box@5 over the
    alignment alone, setting)).  Among the settings that keep the alignment's SYSU measures, those within
    ``near`` (relative) of the best Sketchy mAP -- closer than the noise of a few hundred queries -- and of
    those, the one that keeps them with the widest margin; where none keeps them, among those closest to
    keeping them (worst margin within ``tie`` of the best one), the best Sketchy mAP.  Returns (setting,
    whether the measures were kept)."""
    kept = [t for t in tried if t[1] >= -1e-9]
    if kept:
        best = max(t[0] for t in kept)
        return max((t for t in kept if t[0] >= (1 - near) * best), key=lambda t: (t[1], t[0]))[2], True
    best = max(t[1] for t in tried)
    return max((t for t in tried if t[1] >= best - tie), key=lambda t: t[0])[2], False


def fit_half(root: Path, work: Path, *, half: int = 0, sketch_indices=(1, 2, 3)) -> tuple[FusionParams, dict]:
    """Fit every weight of the fused score on one class-disjoint half: Sketchy's classes at even (``half`` 0) or
    odd positions of the sorted class list, and SYSU-Shapes' class of the same index (0: bicycle, 1: boat).

    * ``w`` (fused without expansion): best Sketchy mAP;
    * the expansion and the confirmed-first depth: among the settings that keep the SYSU measures of the
      alignment alone (category mAP, top-1 and top-5 box rates) on the SYSU class and come within 1 % of the
      best Sketchy mAP, the widest margin; where none keeps them, the closest (``_choose_expansion``);
    * the mirror default and the calibrations of the fused score and of the alignment alone.

    Returns the params (``fit`` records the data and figures) and the fit half's measurements."""
    data_list, index = _sketchy(root, work, sketch_indices)
    photo_class = data_list[0].photo_class
    edges, cls, _ = _queries(data_list, half)
    log.info("fit half %d: %d Sketchy queries", half, len(edges))
    sig = collect(index, edges, data_list[0].photo_paths)
    sysu = sysu_signals(root, work)
    mine = np.flatnonzero(sysu.query_class == half)
    relevant = cls[:, None] == photo_class[None, :]
    base = FusionParams()
    best: tuple[float, dict] = (-1.0, {})
    for w in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        m = _metrics(_fused(sig, dataclasses.replace(base, w=w), "fused", True)[0], relevant)["mAP"]
        log.info("w %.1f: fused mAP %.4f", w, m)
        best = max(best, (m, {"w": w}), key=lambda t: t[0])
    params = dataclasses.replace(base, **best[1])
    floor = sysu_metrics(_fused(sysu.sig, params, "afm", True)[0], sysu, mine)
    tried = []
    grid = itertools.product((10, 20), (0.5, 1.0, 2.5), (4.0, 6.0, 8.0), (0.0, 1.0, 2.0, 3.0, 4.0), (0, 10, 20))
    for n, qw, v, lam, cn in grid:
        p = dataclasses.replace(params, qe_n=n, qe_v=v, qe_w=qw, qe_afm=lam, confirm_n=cn)
        m = _metrics(_fused(sig, p, "fused+qe", True)[0], relevant)["mAP"]
        sm = sysu_metrics(_fused(sysu.sig, p, "fused+qe", True)[0], sysu, mine)
        log.info("QE n %d base w %.1f v %.0f afm %.1f confirm %d: Sketchy mAP %.4f, SYSU mAP %.4f box@1 %.4f box@5 "
                 "%.4f", n, qw, v, lam, cn, m, sm["mAP"], sm["box@1"], sm["box@5"])
        margin = min(sm[k] - floor[k] for k in ("mAP", "box@1", "box@5"))
        tried.append((m, margin, {"qe_n": n, "qe_v": v, "qe_w": qw, "qe_afm": lam, "confirm_n": cn}))
    best, kept = _choose_expansion(tried)
    params = dataclasses.replace(params, **best)
    mirror = {}
    for on in (True, False):
        mirror[on] = _metrics(_fused(sig, params, "fused+qe", on)[0], relevant)
    params = dataclasses.replace(params, mirror=bool(mirror[True]["mAP"] >= mirror[False]["mAP"]))
    final, _ = _fused(sig, params, "fused+qe", params.mirror)
    cal = _fit_calibration(_zscores(_fused(sig, params, "fused+qe", params.mirror, key=False)[0]), relevant)
    afm_final, _ = _fused(sig, params, "afm", params.mirror)
    cal_afm = _fit_calibration(_zscores(afm_final), relevant)
    names = ("even", "odd")
    info = {"data": f"Sketchy, classes at {names[half]} positions of the sorted class list (25 of 50); SYSU-Shapes "
                    f"{ds.SYSU_CLASSES[half]} queries: the expansion and the confirmed-first depth keep the alignment "
                    "alone's SYSU mAP and top-1 / top-5 box rates there",
            "half": half, "sysu_class": ds.SYSU_CLASSES[half],
            "sysu_floor": {k: round(v, 4) for k, v in floor.items()}, "sysu_floor_kept": kept,
            "sysu_fit": {k: round(v, 4) for k, v in sysu_metrics(
                _fused(sysu.sig, params, "fused+qe", params.mirror)[0], sysu, mine).items()},
            "queries": int(len(edges)), "sketch_indices": list(sketch_indices),
            "fit_half_fused_qe_mAP": round(_metrics(final, relevant)["mAP"], 4),
            "mirror_on_mAP": round(mirror[True]["mAP"], 4), "mirror_off_mAP": round(mirror[False]["mAP"], 4),
            "date": time.strftime("%Y-%m-%d")}
    return dataclasses.replace(params, calibration=cal, calibration_afm=cal_afm, fit=info), info


def fit(data: str | Path | None = None, *, out: Path = FUSION_FILE, sketch_indices=(1, 2, 3)) -> FusionParams:
    """Fit the fused score on both class-disjoint halves (``fit_half``) and write the even half's params to
    ``out``, the odd half's weights beside them (``fit.reverse``: the benchmark reports each half with the
    other half's fit).  The size-dependent part (``fit_sizes``) is kept as it is in ``out``."""
    root = ds.data_root() if data is None else Path(data)
    old = load_params()
    with tempfile.TemporaryDirectory() as tmp:
        even, _ = fit_half(root, Path(tmp), half=0, sketch_indices=sketch_indices)
        with _direction(fitted_on=1):
            odd, _ = fit_half(root, Path(tmp), half=1, sketch_indices=sketch_indices)
    keep = {k: getattr(old, k) for k in ("calibration_small", "ref_k", "ref_full", "likely", "stand_out", "qe_loo",
                                         "likely_by_drawing")}
    fit_info = dict(even.fit)
    fit_info["reverse"] = {**{k: getattr(odd, k) for k in REVERSE_FIELDS}, "fit": odd.fit}
    if "sizes" in old.fit:
        fit_info["sizes"] = old.fit["sizes"]
    params = dataclasses.replace(even, **keep, fit=fit_info)
    out.write_text(params.to_json() + "\n")
    load_params.cache_clear()
    log.info("wrote %s: %s", out, params)
    return params


#: the fields of the reverse (odd-half) fit kept in ``fit.reverse``
REVERSE_FIELDS = ("w", "qe_n", "qe_w", "qe_v", "qe_alpha", "qe_afm", "confirm_n", "mirror", "calibration",
                  "calibration_afm")


def _direction(*, fitted_on: int):
    """The learned parts of one class-disjoint direction in use: the shipped ones were fitted on the even half
    (0); for the odd half (1), the sketch adaptation fitted on the odd classes (``engine.adaptation``, kept beside
    the shipped map), so that the even classes are reported with nothing fitted on them."""
    import contextlib

    from ..adaptation import load_adaptation, use_adaptation

    if fitted_on == 0:
        return contextlib.nullcontext()
    return use_adaptation(load_adaptation(reverse=True))


def reverse_params(params: FusionParams) -> FusionParams | None:
    """The params fitted on the other half of the classes (``fit.reverse``), or None where the fit has none."""
    rev = params.fit.get("reverse")
    if not rev:
        return None
    d = {k: rev[k] for k in REVERSE_FIELDS if k in rev}
    for k in ("calibration", "calibration_afm"):
        if k in d:
            d[k] = tuple(float(v) for v in d[k])
    return dataclasses.replace(params, **d)


def shard_cap_check(index, edges: list[EdgeMap], params: FusionParams, *, background: int = 250) -> list[dict]:
    """The product's search (top 20) with the shortlist a shard sends capped (``SearchOptions.candidates``: 1 and
    the default), against the whole shortlist.  A background of ``background`` photos, so that the cap binds:
    with the default 2,000, every photo of a 1,250-photo collection is in the background, which is always sent,
    and no cap changes anything."""
    from ..search import SearchOptions

    p = dataclasses.replace(params, background=background)

    def top(candidates):
        opts = SearchOptions(mirror=p.mirror, candidates=candidates)
        return [[h.path for h in index.search(e, top_k=20, options=opts, params=p)] for e in edges]

    whole = top(None)
    rows = []
    for c in (1, SearchOptions().candidates):
        got = top(c)
        rows.append({"candidates": c, "cap (photos of the shortlist that may beat one sent)":
                     SearchOptions(candidates=c).shard_cap(20, p.qe_n), "queries": len(edges),
                     "same top 20, in order": sum(a == b for a, b in zip(got, whole, strict=True)),
                     "same top 20 photos": sum(set(a) == set(b) for a, b in zip(got, whole, strict=True))})
    return rows


def _mean_rows(tables: list[list[dict]]) -> list[dict]:
    """Per method, the mean of each measure over tables of the same methods (both class-disjoint directions)."""
    out = []
    for rows in zip(*tables, strict=True):
        keys = [k for k in rows[0] if k != "method" and not isinstance(rows[0][k], str)]  # a rule's label: per table
        out.append({"method": rows[0]["method"], **{k: float(np.mean([r[k] for r in rows])) for k in keys}})
    return out


def bench_fusion(*, data: str | Path | None = None, quick: bool = False, png: Path | None = None) -> dict:
    """The fused sketch search on class-disjoint halves, each reported with the weights fitted on the other half
    (``fit``: the shipped params were fitted on Sketchy's even classes and SYSU's bicycles, ``fit.reverse`` on the
    odd classes and the boats), and the mean of both directions: Sketchy (every sketch of the half's classes
    against all 1,250 photos), SYSU-Shapes (outline queries against its 420 photos) and, in the full run, SYSU's
    outlines among the 1,250 Sketchy photos as well (1,670 photos, a whitened collection); the calibration's
    reliability (table and PNG) on the odd half."""
    root = ds.data_root() if data is None else Path(data)
    params = load_params()
    reverse = reverse_params(params) or params
    by_half = {1: params, 0: reverse}  # the half reported -> the params fitted on the other one
    out: dict = {"tables": {}, "skipped": [], "params": json.loads(params.to_json())}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            (d,), index = _sketchy(root, Path(tmp), (None,))  # every sketch of the reported half's classes
        except ds.DatasetMissing as e:
            out["skipped"].append(str(e))
        else:
            halves = []
            for h in (1, 0):
                edges, cls, target = _queries([d], h)
                if quick:
                    edges, cls, target = edges[::5], cls[::5], target[::5]
                with _direction(fitted_on=1 - h):
                    sig = collect(index, edges, d.photo_paths)
                relevant = cls[:, None] == d.photo_class[None, :]
                ranked = rank_variants(sig, by_half[h])
                rows = [{"method": name, **_metrics(final, relevant, target)} for name, (final, _) in ranked.items()]
                halves.append(rows)
                half = ("even", "odd")[h]
                out["tables"][f"Sketchy {half} classes (every sketch of 25 classes against all 1,250 photos), weights "
                              f"fitted on the {('odd', 'even')[h]} classes"] = rows
                if h != 1:
                    continue
                _, score = ranked["fused + QE"]
                rel = reliability(score, relevant)
                out["reliability"] = rel
                out["ece"] = expected_calibration_error(score, relevant)
                out["tables"]["Calibrated score reliability (odd classes, fused + QE, all query-photo pairs)"] = [
                    {"score bin": f"{lo:.2f}-{hi:.2f}", "pairs": n, "mean score": m, "precision": p}
                    for lo, hi, n, m, p in rel]
                if png is not None:
                    plot_reliability(rel, png, title=f"Sketchy odd classes, ECE {out['ece']:.4f}")
                    out["png"] = str(png)
                times = []
                for e in edges[:20]:  # the product's search path (fast mode), end to end
                    t0 = time.perf_counter()
                    index.search(e, top_k=20)
                    times.append(time.perf_counter() - t0)
                out["search_ms_median"] = round(1000 * float(np.median(times)), 1)
                out["tables"]["Fused sketch search latency (1,250 photos, index.search top 20, median)"] = [
                    {"photos": len(index), "ms/query": out["search_ms_median"],
                     "global descriptor + both alignments, ms/query (bench)": round(1000 * sig.seconds_per_query, 1)}]
                out["tables"]["Shard cap: odd-class queries whose top 20 is that of the whole shortlist (1,250 "
                              "photos, a background of 250 so that the cap binds)"] = shard_cap_check(
                    index, edges[:10] if quick else edges[:60], params)
            out["tables"]["Sketchy, class-disjoint: mean of both directions"] = _mean_rows(halves)
        for distractors in (False, True) if not quick else (False,):
            try:
                signals = {}
                for c in (1, 0):  # the boats with what was fitted on the even half, the bicycles with the odd's
                    with _direction(fitted_on=1 - c):
                        signals[c] = sysu_signals(root, Path(tmp), per_class=30 if quick else None,
                                                  distractors=distractors)
            except ds.DatasetMissing as e:
                out["skipped"].append(str(e))
                continue
            m = signals[1]
            own = sum(len(np.asarray(g).reshape(-1, 4)) > 0 for g in m.gt)
            title = (f"SYSU-Shapes outlines among the Sketchy photos ({own} + {len(m.gt) - own} photos)" if distractors
                     else "SYSU-Shapes (outline queries against its 420 photos)")
            out["tables"].update(_sysu_tables(signals, by_half, title))
    return out


def _sysu_tables(signals: dict, by_half: dict, title: str) -> dict[str, list[dict]]:
    """SYSU measures per class, each with the params and the box rule (softness, and the box fit's reach and trim)
    fitted on the other class (and Sketchy half; ``signals``: class -> the signals computed with that direction's
    learned parts), and their mean; the placed frame's box rates (the fitted softness, and the best placement's)
    beside them."""
    tables, per = {}, []
    for c in (1, 0):
        s = signals[c]
        sel = np.flatnonzero(s.query_class == c)
        rule = fit_box_rule(s, by_half[c], np.flatnonzero(s.query_class == 1 - c))
        frame, best = BoxRule(rule.softness, None), BoxRule(0.0, None)
        rows = []
        for name, (final, _) in rank_variants(s.sig, by_half[c]).items():
            rows.append({"method": name, **sysu_metrics(final, s, sel, rule=rule), "box rule": rule.label})
            if name in ("AFM alone", "fused + QE"):
                for what, r in (("the placed frame's box", frame), ("the best placement's frame", best)):
                    rows.append({"method": f"{name}, {what}", **sysu_metrics(final, s, sel, rule=r),
                                 "box rule": r.label})
        per.append(rows)
        tables[f"{title}: {ds.SYSU_CLASSES[c]} queries, weights and box rule fitted on "
               f"{ds.SYSU_CLASSES[1 - c]}"] = rows
    tables[f"{title}: class-disjoint mean of both directions"] = _mean_rows(per)
    return tables


#: box softnesses (``engine.search.BOX_SOFTNESS``) the benchmark tries
SOFTNESS_GRID = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
#: reaches and trims of the box fit (``engine.boxes``) the benchmark tries
REACH_GRID = (0.06, 0.08, 0.10, 0.12, 0.16)
TRIM_GRID = (1.0, 3.0, 5.0)


@dataclass(frozen=True)
class BoxRule:
    """How a hit's box is drawn: the placement's softness (``engine.search.BOX_SOFTNESS``) and the box fit's
    (reach, trim) (``engine.boxes``), or None: the placed sketch frame."""

    softness: float
    fit: tuple[float, float] | None

    @property
    def label(self) -> str:
        fit = "frame" if self.fit is None else f"fit reach {self.fit[0]:g} trim {self.fit[1]:g}"
        return f"softness {self.softness:g}, {fit}"


def search_rule() -> BoxRule:
    """The box rule the search uses."""
    from ..boxes import REACH, TRIM
    from ..search import BOX_SOFTNESS

    return BoxRule(BOX_SOFTNESS, (REACH, TRIM))


def box_rules() -> list[BoxRule]:
    """The rules ``fit_box_rule`` tries, in the order of preference among equal rates (the smaller softness, the
    frame, then the smaller reach and trim)."""
    return [BoxRule(t, fit) for t in SOFTNESS_GRID
            for fit in (None, *itertools.product(REACH_GRID, TRIM_GRID))]


def fit_box_rule(s: SysuSignals, params: FusionParams, sel: np.ndarray) -> BoxRule:
    """The box rule of the best mean of the top-1 and top-5 box rates of the alignment alone's ranking of the
    queries ``sel`` (one SYSU class; the first of equal rates in ``box_rules``' order)."""
    final = _fused(s.sig, params, "afm", params.mirror)[0]
    top = np.argsort(-np.where(s.exclude[sel], -np.inf, final[sel]), axis=1, kind="stable")[:, :5]
    rel = s.relevant[sel]

    def rate_of(rule: BoxRule) -> float:
        boxes = s.boxes_of(sel, top, rule, cache=False)
        return float(np.mean([mt.localization_rate(top[:, :k], boxes[:, :k], s.gt, rel, k=k, skip_unannotated=True)
                              for k in (1, 5)]))

    rate = {r: rate_of(r) for r in box_rules()}
    chosen = max(rate, key=lambda r: rate[r])  # the first of the maxima
    log.info("box rule on %d queries: %s (%.4f; the frame at that softness %.4f)", len(sel), chosen.label,
             rate[chosen], rate[BoxRule(chosen.softness, None)])
    return chosen


@dataclass
class SysuSignals:
    """SYSU-Shapes queries against every photo, with the alignment's soft placement (of every softness of
    ``SOFTNESS_GRID`` and the search's) for every pair, from which the boxes of a ``BoxRule`` are drawn."""

    sig: Signals
    relevant: np.ndarray  # (Q, N)
    exclude: np.ndarray  # (Q, N) the query's own photo
    gt: list  # ground-truth boxes per photo
    query_class: np.ndarray  # (Q,) 0 bicycle, 1 boat (``datasets.SYSU_CLASSES``)
    sketches: list  # (Q,) the queries' EdgeMaps
    geometry: np.ndarray  # (N, 5) the photos' geometry (``hits.photo_box``)
    cells: list  # (N,) the photos' packed edge cells (``engine.boxes``)
    placements: dict  # softness -> (Q, N, 4) float32 scale, mirrored, dx, dy of the soft placement
    _boxes: dict = dataclasses.field(default_factory=dict)  # rule -> (Q, N, 4) drawn so far (NaN: not yet)

    def boxes_of(self, queries: np.ndarray, rows: np.ndarray, rule: BoxRule | None = None, *,
                 cache: bool = True) -> np.ndarray:
        """(Q', K, 4) boxes, in original pixels, of the photos ``rows`` (Q', K) for the queries ``queries`` (Q',),
        drawn by ``rule`` (None: the search's) as the search draws them."""
        from ..boxes import fitted_box
        from ..hits import photo_box

        rule = search_rule() if rule is None else rule
        done = self._boxes.get(rule) if cache else None
        if cache and done is None:
            done = self._boxes[rule] = np.full((*self.relevant.shape, 4), np.nan)
        out = np.zeros((*rows.shape, 4))
        where = self.placements[rule.softness]
        for a, q in enumerate(np.asarray(queries).tolist()):
            e = self.sketches[q]
            for b, j in enumerate(np.asarray(rows[a]).tolist()):
                if done is not None and not np.isnan(done[q, j, 0]):
                    out[a, b] = done[q, j]
                    continue
                sc, m, dx, dy = (float(v) for v in where[q, j])
                box = None if rule.fit is None else fitted_box(self.geometry[j], e, sc, m > 0.5, dx, dy,
                                                               self.cells[j], reach=rule.fit[0], trim=rule.fit[1])
                out[a, b] = box or photo_box(self.geometry[j], e.width * sc, e.height * sc, dx, dy)
                if done is not None:
                    done[q, j] = out[a, b]
        return out


def sysu_signals(root: Path, work: Path, *, per_class: int | None = None, distractors: bool = False) -> SysuSignals:
    """SYSU-Shapes outline queries against its photos (the query's own photo excluded), with the alignment's soft
    placements for every pair; ``distractors``: in one collection with the 1,250 Sketchy photos of 50 other
    subjects (Sketchy's photos of a SYSU class are relevant to its queries; they have no annotated box)."""
    from ..search import BOX_SOFTNESS, QueryScorer

    data = ds.load_sysu(root / "sysu-shapes")
    queries = ds.sysu_queries(data, per_class=per_class)
    relevant, exclude = ds.sysu_ground_truth(data, queries)
    paths, gt = list(data.image_paths), list(data.boxes)
    if distractors:
        sk = ds.load_sketchy(root / "sketchy", sketch_index=1)
        index = _index(sorted({Path(p).parent for p in data.image_paths}) + [root / "sketchy" / "photo"],
                       _work_dir(work, "sysu-sketchy-index"))
        names = [ds.SYSU_CLASSES[q.class_index] for q in queries]
        sk_names = np.array([sk.class_names[c] for c in sk.photo_class])
        relevant = np.concatenate([relevant, np.array(names)[:, None] == sk_names[None, :]], axis=1)
        exclude = np.concatenate([exclude, np.zeros((len(queries), len(sk.photo_paths)), bool)], axis=1)
        paths += list(sk.photo_paths)
        gt += [np.zeros((0, 4))] * len(sk.photo_paths)
    else:
        index = _sysu_index(data, work)
    edges = [sketch_edges(q.image) for q in queries]
    sig = collect(index, edges, paths)
    cols = columns_of(index, paths)
    assert (cols >= 0).all(), "a photo is not in the benchmark's index"
    found = index.lookup(cols.tolist(), cells=True)
    geometry, cells = np.stack([m[1] for m in found]), [m[2] for m in found]
    # placements of SYSU's own photos only: the distractors have no annotated box to meet (their boxes, drawn
    # from a zero placement, are never counted)
    own = cols[:len(data.image_paths)]
    codes, inv = np.asarray(index.codes[own]), np.asarray(index.inv_norms[own])
    placements = {t: np.zeros((len(edges), len(paths), 4), np.float32) for t in (*SOFTNESS_GRID, BOX_SOFTNESS)}
    for qi, e in enumerate(edges):
        scorer = QueryScorer(encode_query(e, index.layout), index.layout, mirror=True)
        scores = scorer.placement_scores(codes, inv)
        for t, where in placements.items():
            where[qi, :len(own)] = [(a.scale, float(a.mirrored), a.dx, a.dy) for a in scorer.alignments_of(scores, t)]
    return SysuSignals(sig, relevant, exclude, gt, np.array([q.class_index for q in queries]), edges, geometry,
                       cells, placements)


def sysu_metrics(final: np.ndarray, s: SysuSignals, sel: np.ndarray | None = None, *,
                 rule: BoxRule | None = None, cache: bool = True) -> dict:
    """mAP, P@10, the box IoU >= 0.5 rate of the correct-class top 10 and of the correct top 1 and top 5
    (``box@1``, ``box@5``; the query's own photo excluded; correct hits without an annotated box -- Sketchy's
    photos of the class among the distractors -- are left out of the box rates, neither right nor wrong); the
    boxes drawn by ``rule`` (None: the search's, ``search_rule``)."""
    sel = np.arange(len(final)) if sel is None else sel
    rel, ex = s.relevant[sel], s.exclude[sel]
    f = np.where(ex, -np.inf, final[sel])
    top = np.argsort(-f, axis=1, kind="stable")[:, :10]
    boxes = s.boxes_of(sel, top, rule, cache=cache)
    out = {"mAP": mt.mean_average_precision(final[sel], rel, exclude=ex),
           "P@10": mt.precision_at_k(final[sel], rel, 10, exclude=ex),
           "IoU>=0.5": mt.localization_rate(top, boxes, s.gt, rel, skip_unannotated=True)}
    for k in (1, 5):
        out[f"box@{k}"] = mt.localization_rate(top[:, :k], boxes[:, :k], s.gt, rel, k=k, skip_unannotated=True)
    return out


def columns_of(index, paths) -> np.ndarray:
    """Rows of ``index`` holding ``paths`` (in that order)."""
    where = {p: i for i, p in enumerate(index.paths)}
    return np.array([where.get(str(Path(p).resolve()), where.get(str(p), -1)) for p in paths], np.int64)


# --------------------------------------------------------------------------------------------------
# Calibration on collections of every size (issue 17): every query against every photo once, then
# collections of 30, 100, 300 photos ... simulated by subsets of the photos' rows, each computing what a
# real collection of those photos computes (its own background, sketch-descriptor mean, image vectors).

BENCH_CACHE_ENV = "SKETCHSEARCH_BENCH_CACHE"


def bench_cache() -> Path | None:
    """Folder that keeps the benchmark's indexes and signals between runs (``$SKETCHSEARCH_BENCH_CACHE``),
    or None (temporary folders)."""
    import os

    v = os.environ.get(BENCH_CACHE_ENV, "").strip()
    return Path(v).expanduser() if v else None


@dataclass
class Pool:
    """Raw, collection-independent signals of queries against all photos of a data set (and the reference
    sample), from which a collection of any subset of the photos is simulated (``simulate``)."""

    afm: np.ndarray  # (Q, N) alignment (mirror on)
    q_sketch: np.ndarray  # (Q, G) raw global sketch descriptors of the queries
    p_sketch: np.ndarray  # (N, G) raw global sketch descriptors of the photos
    p_gem: np.ndarray  # (N, G) raw GeM of the photos
    vectors: np.ndarray  # (N, d) the full index's image vectors (whitened when it is large enough)
    whitening: object  # the full index's Whitening or None
    relevant: np.ndarray  # (Q, N) bool
    exclude: np.ndarray  # (Q, N) bool: pairs left out (SYSU: the query's own photo)
    query_class: np.ndarray  # (Q,)
    photo_class: np.ndarray  # (N,)
    target: np.ndarray  # (Q,) the photo a sketch was drawn from (-1: none)
    ref_afm: np.ndarray | None = None  # (Q, R) alignment of the reference photos
    ref_sketch: np.ndarray | None = None  # (R, G) raw
    ref_gem: np.ndarray | None = None  # (R, G) raw

    def save(self, path: Path) -> None:
        np.savez(path, **{k: v for k, v in dataclasses.asdict(self).items() if k != "whitening" and v is not None},
                 **({"w_mean": self.whitening.mean, "w_proj": self.whitening.projection} if self.whitening else {}))

    @classmethod
    def load(cls, path: Path) -> Pool:
        from ..imagesearch import Whitening

        z = dict(np.load(path))
        white = Whitening(z.pop("w_mean"), z.pop("w_proj")) if "w_mean" in z else None
        return cls(whitening=white, **z)

    def take(self, queries: np.ndarray) -> Pool:
        """The pool of a subset of the queries."""
        q = np.asarray(queries)
        return dataclasses.replace(self, afm=self.afm[q], q_sketch=self.q_sketch[q], relevant=self.relevant[q],
                                   exclude=self.exclude[q], query_class=self.query_class[q], target=self.target[q],
                                   ref_afm=None if self.ref_afm is None else self.ref_afm[q])


def collect_pool(index, sketches: list[EdgeMap], photo_paths: list[Path], *, relevant, exclude, query_class,
                 photo_class, target, reference=None) -> Pool:
    """Score ``sketches`` against every photo of ``index`` (and the reference sample's photos) with the
    product's scorers; raw descriptors for the simulation of smaller collections."""
    from ..cnn import GemDescriber, GemSettings
    from ..describe import drawing_settings
    from ..fusion import drawing_input
    from ..search import QueryScorer

    cols = columns_of(index, photo_paths)
    images = index.images()
    drawer = GemDescriber(drawing_settings(GemSettings.from_json(index.image_settings).backbone))
    codes, inv = np.asarray(index.codes[cols]), np.asarray(index.inv_norms[cols])
    afm = np.zeros((len(sketches), len(cols)), np.float32)
    ref_afm = None if reference is None else np.zeros((len(sketches), len(reference.codes)), np.float32)
    q_sketch = []
    for i, e in enumerate(sketches):
        scorer = QueryScorer(encode_query(e, index.layout), index.layout, mirror=True)
        afm[i] = scorer.score_2d(codes, inv)
        if reference is not None:
            ref_afm[i] = scorer.score_2d(reference.codes, reference.inv_norms)
        q_sketch.append(drawer.describe([drawing_input(e, query=True)])[0])
        if i % 50 == 0:
            log.info("pool: %d/%d queries", i, len(sketches))
    from ..reference import chunk_rows

    return Pool(afm, np.stack(q_sketch).astype(np.float32), chunk_rows(index, "sketch")[cols],
                chunk_rows(index, "gem")[cols], images.vectors_of_rows(cols), images.whitening,
                np.asarray(relevant, bool), np.asarray(exclude, bool), np.asarray(query_class),
                np.asarray(photo_class), np.asarray(target), ref_afm,
                None if reference is None else np.asarray(reference.sketch, np.float32),
                None if reference is None else np.asarray(reference.gem, np.float32))



def simulate(pool: Pool, qi: int, sel: np.ndarray, params, *, reference: bool = True, adaptation: bool = True):
    """The fused search of query ``qi`` in a collection of the photos ``sel`` (columns of the pool), as the
    product computes it there: the collection is its own background (``sel`` is at most
    ``params.background`` photos), its global sketch descriptors are centred on its own mean, its image
    vectors are plain L2 below the whitening's minimum (else the full index's whitened vectors), and the
    reference sample joins the background with ``reference_weight(len(sel))``; the query's global descriptor is
    adapted as the product adapts it (``adaptation``, ``engine.adaptation``).  ``params``: one
    FusionParams, or a list of them (the collection's arrays computed once).  Returns ``fusion.Fused`` (a
    list of them) with rows = positions in ``sel``."""
    from ..fusion import ReferenceScores, reference_weight
    from ..imageindex import MIN_WHITENING_IMAGES

    many = isinstance(params, list | tuple)
    plist = list(params) if many else [params]
    sel = np.asarray(sel, np.int64)
    m = len(sel)
    afm = pool.afm[qi, sel].astype(np.float64)
    mu = pool.p_sketch[sel].mean(axis=0)
    raw = pool.q_sketch[qi]
    if adaptation:  # the query's learned adaptation, as the product applies it (engine.adaptation)
        from ..adaptation import adapt_sketch
        from ..cnn import GemSettings

        raw = adapt_sketch(raw, GemSettings().backbone)
    q = l2n(np.asarray(raw - mu, np.float32))
    glob = (l2n(np.asarray(pool.p_sketch[sel] - mu, np.float32)) @ q).astype(np.float64)
    big = m >= MIN_WHITENING_IMAGES and pool.whitening is not None
    vec = pool.vectors[sel] if big else l2n(np.asarray(pool.p_gem[sel], np.float32))
    has_ref = reference and pool.ref_afm is not None
    ref_afm = ref_glob = ref_vec = None
    if has_ref and any(reference_weight(m, p) > 0 for p in plist):
        ref_afm = pool.ref_afm[qi].astype(np.float64)
        ref_glob = (l2n(np.asarray(pool.ref_sketch - mu, np.float32)) @ q).astype(np.float64)
        ref_vec = pool.whitening.apply(pool.ref_gem) if big else l2n(np.asarray(pool.ref_gem, np.float32))
    rows = np.arange(m)
    out = []
    for p in plist:
        w = reference_weight(m, p) if ref_afm is not None else 0.0
        ref = ReferenceScores(ref_afm, ref_glob, w) if w > 0 else None

        def image(seeds, p=p, ref=ref):
            qv = alpha_qe(vec[seeds[0]], vec[seeds], np.arange(len(seeds)), alpha=p.qe_alpha)
            cos = (vec @ qv).astype(np.float64)
            if p.qe_loo and ref is not None:
                from ..fusion import leave_one_out_cosines

                cos[seeds] = leave_one_out_cosines(vec[seeds[0]], vec[seeds], p.qe_alpha)
            return rows, cos, afm, glob, None if ref is None else (ref_vec @ qv)

        p = dataclasses.replace(p, calibration=p.calibration_for(fused=True, whitened=big))
        out.append(fuse(rows, afm, glob, rows, p, image=image if p.qe_n > 0 else None, reference=ref))
    return out if many else out[0]


SIZES = (30, 100, 300, 0)  # 0: every photo
TOP_KEPT = 50  # the best final z kept of each simulated collection without the query's class


@dataclass
class SizeRuns:
    """Simulated collections of several sizes: per size, the pairs (calibrated score, z, relevant), the best
    hit of collections without the query's class, the score of one tracked correct photo per (query,
    repetition) and the ranking metrics."""

    z: dict  # size -> (pairs,) final z
    relevant: dict  # size -> (pairs,) bool
    absent_best: dict  # size -> (runs,) best final z without the query's class
    tracked: dict  # size -> (queries * reps,) final z of the tracked correct photo
    ap: dict  # size -> (runs,) average precision
    p20: dict  # size -> (runs,) precision at 20 (or at the collection size)
    top: dict  # size -> (runs,) relevant flags of the top 10, as (runs, 10) (NaN where fewer)
    best: dict  # size -> (runs,) best final z of the collection
    n: dict  # size -> (runs,) photos in the collection
    absent_n: dict  # size -> (runs,) photos in the collection without the query's class
    absent_top: dict  # size -> (runs, TOP_KEPT) its best final z, best first (-inf where fewer photos)
    za: dict  # size -> (pairs,) the alignment's z (a hit's box is sure where it is >= ``sure_z``)
    absent_top_za: dict  # size -> (runs, TOP_KEPT) the alignment's z of the rows of ``absent_top``
    whitened: dict  # size -> whether a collection of that size has whitened image vectors

    def calibrated(self, s: int, params: FusionParams, z: np.ndarray | None = None) -> np.ndarray:
        """Calibrated scores of size ``s`` (its pairs' z, or ``z``) with the calibration its regime uses."""
        from ..fusion import calibrate

        return calibrate(self.z[s] if z is None else z, params.calibration_for(fused=True, whitened=self.whitened[s]))

    def likely(self, s: int, params: FusionParams) -> np.ndarray:
        """Which pairs of size ``s`` the product shows as likely matches: score at or above the cut, in a
        collection whose hits stand out (``FusionParams.stands_out``)."""
        n = self.n[s].astype(np.int64)
        score = self.calibrated(s, params)
        cut = score >= params.likely
        count = np.bincount(np.repeat(np.arange(len(n)), n), weights=params.counted(score, self.za[s]),
                            minlength=len(n))
        return cut & np.repeat(self.stands_out(s, params, self.best[s], count, n), n)

    def absent_counts(self, s: int, params: FusionParams) -> np.ndarray:
        """Per collection without the query's class: its hits that count towards the stand-out test
        (``FusionParams.counted``; at most ``TOP_KEPT``)."""
        return params.counted(self.calibrated(s, params, self.absent_top[s]), self.absent_top_za[s]).sum(axis=1)

    def absent_likely(self, s: int, params: FusionParams) -> np.ndarray:
        """Per collection without the query's class: whether its best hit shows as a likely match."""
        a = self.absent_best[s]
        return (self.calibrated(s, params, a) >= params.likely) & self.stands_out(
            s, params, a, self.absent_counts(s, params), self.absent_n[s])

    def stands_out(self, s: int, params: FusionParams, best, count, n) -> np.ndarray:
        return np.array([params.stands_out(int(k), whitened=self.whitened[s], best_z=float(b), count=int(c))
                         for b, c, k in zip(best, count, n, strict=True)], bool)


def size_runs(pool: Pool, params, *, sizes=SIZES, reps: int = 3, seed: int = 0, reference: bool = True,
              absent: bool = True, share: float | None = None):
    """Collections of ``sizes`` photos drawn at random (nested: the smaller inside the larger), each holding
    at least one photo of the query's class (the tracked one), ``reps`` draws per query; and collections
    without the query's class (``absent``).  ``share``: instead, collections "full of one subject", with
    that share of their photos (as far as there are) from the query's class.  ``params``: one FusionParams
    or a list (one SizeRuns each, on the same collections)."""
    many = isinstance(params, list | tuple)
    plist = list(params) if many else [params]
    rng = np.random.default_rng(seed)
    from ..imageindex import MIN_WHITENING_IMAGES

    n_all = int((~pool.exclude[0]).sum()) if len(pool.exclude) else 0
    whitened = {s: pool.whitening is not None and (s if 0 < s < n_all else n_all) >= MIN_WHITENING_IMAGES
                for s in sizes}
    outs = [SizeRuns(*({s: [] for s in sizes} for _ in range(13)), whitened=dict(whitened)) for _ in plist]
    for qi in range(len(pool.afm)):
        allowed = np.flatnonzero(~pool.exclude[qi])
        rel = pool.relevant[qi]
        others = allowed[~rel[allowed]]
        mine = allowed[rel[allowed]]
        if len(mine) == 0:
            continue
        full_present = full_absent = None
        for _ in range(reps):
            t = int(rng.choice(mine))
            perm = np.concatenate([[t], rng.permutation(allowed[allowed != t])])
            if share is not None:  # the query's class first (t leading), then the others
                perm = np.concatenate([[t], rng.permutation(mine[mine != t]), rng.permutation(others)])
            aperm = rng.permutation(others)
            for s in sizes:
                if share is not None and 0 < s < len(allowed):
                    k_rel = min(len(mine), max(1, int(round(share * s))))
                    sel = np.concatenate([perm[:k_rel], perm[len(mine):len(mine) + s - k_rel]])
                    fs = simulate(pool, qi, sel, plist, reference=reference)
                elif s == 0 or s >= len(allowed):
                    if full_present is None:
                        full_present = simulate(pool, qi, allowed, plist, reference=reference)
                    fs, sel = full_present, allowed
                else:
                    sel = perm[:s]
                    fs = simulate(pool, qi, sel, plist, reference=reference)
                fas, n_absent = None, 0
                if absent:
                    if s == 0 or s >= len(others):
                        if full_absent is None:
                            full_absent = simulate(pool, qi, others, plist, reference=reference)
                        fas, n_absent = full_absent, len(others)
                    else:
                        fas, n_absent = simulate(pool, qi, aperm[:s], plist, reference=reference), s
                r = rel[sel]
                k = min(20, len(sel))
                for j, (out, f) in enumerate(zip(outs, fs, strict=True)):
                    out.z[s].append(f.z[: len(sel)])
                    out.za[s].append(f.za[: len(sel)])
                    out.relevant[s].append(r)
                    out.tracked[s].append(float(f.z[np.flatnonzero(sel == t)[0]]))
                    order = np.argsort(-f.key[: len(sel)], kind="stable")
                    out.ap[s].append(mt.average_precision(f.key[: len(sel)], r))
                    out.p20[s].append(float(r[order[:k]].mean()))
                    top = np.full(10, np.nan)
                    top[: min(10, len(sel))] = r[order[:10]]
                    out.top[s].append(top)
                    out.best[s].append(float(f.z[: len(sel)].max()))
                    out.n[s].append(len(sel))
                    if fas is not None:
                        out.absent_best[s].append(float(fas[j].z.max()))
                        out.absent_n[s].append(n_absent)
                        top_z, top_za = np.full(TOP_KEPT, -np.inf), np.full(TOP_KEPT, -np.inf)
                        best_first = np.argsort(-fas[j].z, kind="stable")[:TOP_KEPT]
                        top_z[: len(best_first)] = fas[j].z[best_first]
                        top_za[: len(best_first)] = fas[j].za[best_first]
                        out.absent_top[s].append(top_z)
                        out.absent_top_za[s].append(top_za)
    for out in outs:
        for d in (out.z, out.za, out.relevant):
            for s in list(d):
                d[s] = np.concatenate(d[s]) if d[s] else np.zeros(0)
        for d in (out.absent_best, out.tracked, out.ap, out.p20, out.best, out.n, out.absent_n):
            for s in list(d):
                d[s] = np.asarray(d[s], np.float64)
        for s in list(out.top):
            out.top[s] = np.asarray(out.top[s]).reshape(-1, 10)
            out.absent_top[s] = np.asarray(out.absent_top[s]).reshape(-1, TOP_KEPT)
            out.absent_top_za[s] = np.asarray(out.absent_top_za[s]).reshape(-1, TOP_KEPT)
    return outs if many else outs[0]


def _work_dir(tmp: Path, name: str) -> Path:
    cache = bench_cache()
    if cache is None:
        return tmp / name
    cache.mkdir(parents=True, exist_ok=True)
    return cache / name


def sketchy_pool(root: Path, work: Path, reference=None, *, sketch_indices=(1, 2, 3)) -> Pool:
    """Every Sketchy query (both halves of the classes) against every photo."""
    data = [ds.load_sketchy(root / "sketchy", sketch_index=k) for k in sketch_indices]
    index = sketchy_index(root, work)
    edges, cls, target = [], [], []
    for d in data:
        for path, c, t in zip(d.query_paths, d.query_class, d.query_photo, strict=True):
            edges.append(sketch_edges(load_image(path).pixels))
            cls.append(int(c))
            target.append(int(t))
    cls = np.array(cls)
    pc = data[0].photo_class
    rel = cls[:, None] == pc[None, :]
    return collect_pool(index, edges, data[0].photo_paths, relevant=rel, exclude=np.zeros_like(rel),
                        query_class=cls, photo_class=pc, target=np.array(target), reference=reference)


def sysu_pool(root: Path, work: Path, reference=None) -> Pool:
    """Every SYSU-Shapes outline query against every photo (the query's own photo excluded)."""
    data = ds.load_sysu(root / "sysu-shapes")
    queries = ds.sysu_queries(data)
    relevant, exclude = ds.sysu_ground_truth(data, queries)
    index = _sysu_index(data, work)
    edges = [sketch_edges(q.image) for q in queries]
    return collect_pool(index, edges, data.image_paths, relevant=relevant, exclude=exclude,
                        query_class=np.array([q.class_index for q in queries]), photo_class=data.image_class,
                        target=np.array([q.source_index for q in queries]), reference=reference)


def size_tables(runs: SizeRuns, params: FusionParams, *, label: str = "") -> dict[str, list[dict]]:
    """Tables of a ``size_runs`` scored with the calibrations of ``params``: reliability per size (ECE,
    precision per score bin), the best hit of collections without the query's class against the
    likely-match cut, the tracked photo's score as the collection grows, and ranking quality."""
    likely = params.likely

    def name(s):
        return "all" if s == 0 else str(s)

    summary, bins, absent, stable = [], [], [], []
    sizes = list(runs.z)
    for s in sizes:
        sc, rel = runs.calibrated(s, params), runs.relevant[s].astype(bool)
        cut = runs.likely(s, params)
        summary.append({"photos": name(s), "pairs": int(len(sc)), "relevant": round(float(rel.mean()), 4),
                        "ECE": round(expected_calibration_error(sc, rel), 4),
                        "mAP": round(float(np.mean(runs.ap[s])), 4), "P@20": round(float(np.mean(runs.p20[s])), 4),
                        "precision of likely": round(float(rel[cut].mean()), 4) if cut.any() else None,
                        "recall of likely": round(float(cut[rel].mean()), 4) if rel.any() else None,
                        "likely per query": round(float(cut.sum()) / max(len(runs.ap[s]), 1), 2),
                        "queries with likely": round(float(np.mean([
                            c.any() for c in np.split(cut, np.cumsum(runs.n[s].astype(np.int64))[:-1])])), 4)})
        for lo, hi, n, m, p in reliability(sc, rel):
            bins.append({"photos": name(s), "score bin": f"{lo:.2f}-{hi:.2f}", "pairs": n, "mean score": round(m, 4),
                         "precision": round(p, 4)})
        if len(runs.absent_best[s]):
            a = runs.calibrated(s, params, runs.absent_best[s])
            absent.append({"photos": name(s), "collections": int(len(a)), "median best": round(float(np.median(a)), 4),
                           "90th pct best": round(float(np.percentile(a, 90)), 4),
                           "max best": round(float(a.max()), 4),
                           f"share >= {likely:.2f}": round(float((a >= likely).mean()), 4),
                           "shown as likely": round(float(runs.absent_likely(s, params).mean()), 4)})
    t = np.stack([runs.calibrated(s, params, runs.tracked[s]) for s in sizes], axis=1) if sizes else np.zeros((0, 0))
    if t.size:
        for j, s in enumerate(sizes):
            stable.append({"photos": name(s), "mean score": round(float(t[:, j].mean()), 4),
                           "median score": round(float(np.median(t[:, j])), 4),
                           "mean |change| from previous": None if j == 0 else
                           round(float(np.abs(t[:, j] - t[:, j - 1]).mean()), 4)})
        stable.append({"photos": "max - min over sizes", "mean score": round(float((t.max(1) - t.min(1)).mean()), 4),
                       "median score": round(float(np.median(t.max(1) - t.min(1))), 4),
                       "mean |change| from previous": None})
    p = f"{label}: " if label else ""
    return {f"{p}calibration by collection size": summary, f"{p}precision per score bin": bins,
            f"{p}best hit without the query's class": absent,
            f"{p}score of one correct photo as the collection grows": stable}


def fit_sizes_calibration(runs: SizeRuns, sizes=None, knot: float = 5.0) -> tuple[float, float, float, float]:
    """The calibration fitted on the pairs of the collection ``sizes`` of ``runs`` (default all), each size
    weighing the same."""
    sizes = list(runs.z) if sizes is None else list(sizes)
    z = np.concatenate([runs.z[s] for s in sizes])
    y = np.concatenate([runs.relevant[s] for s in sizes])
    w = np.concatenate([np.full(len(runs.z[s]), 1.0 / max(len(runs.z[s]), 1)) for s in sizes])
    return _fit_calibration(z, y, knot, w)


def cached_pool(which: str, root: Path, work: Path, reference) -> Pool:
    """The Sketchy or SYSU pool with the reference sample scored (kept in the bench cache when one is set)."""
    import hashlib

    from ..reference import REFERENCE_FILE

    cache = bench_cache()
    key = hashlib.sha1(REFERENCE_FILE.read_bytes()).hexdigest()[:10] if reference is not None else "none"
    path = cache / f"pool-{which}-{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        return Pool.load(path)
    pool = (sketchy_pool if which == "sketchy" else sysu_pool)(root, work, reference)
    if path is not None:
        pool.save(path)
    return pool


def fit_sizes_on(pool: Pool, base: FusionParams, *, ks=(0.0, 100.0, 300.0, 1000.0), full: int = 1000,
                 reps: int = 2) -> tuple[FusionParams, dict]:
    """Fit what makes the score mean the same from a few dozen photos up, on ``pool`` (one half of the
    classes): the reference weight ``ref_k`` (tapering to none at ``full`` photos), the small-collection
    calibration (collections of 30, 100 and 300 photos pooled, each size weighing the same) and the
    likely-match cut.  ``ref_k`` is chosen by the mean ECE over random collections and collections a
    third of one subject, each of 30, 100 and 300 photos.  Returns the params and the measurements."""
    from ..fusion import calibrate

    plist = [dataclasses.replace(base, ref_k=float(k), ref_full=full if k else 0, qe_loo=True) for k in ks]
    small = [s for s in SIZES if s]
    rand = size_runs(pool, plist, reps=reps, absent=False)
    clus = size_runs(pool, plist, sizes=small, reps=1, absent=False, share=1 / 3)
    scores = []
    for p, r, c in zip(plist, rand, clus, strict=True):
        cal = fit_sizes_calibration(r, small)
        ece = [expected_calibration_error(calibrate(x.z[s], cal), x.relevant[s]) for x in (r, c) for s in small]
        scores.append((float(np.mean(ece)), cal))
        log.info("ref_k %.0f: mean ECE %.4f (%s)", p.ref_k, scores[-1][0], " ".join(f"{e:.4f}" for e in ece))
    j = int(np.argmin([s for s, _ in scores]))
    params = dataclasses.replace(plist[j], calibration_small=scores[j][1])
    # the likely-match cut: the lowest score above which half the results are correct, every size of the
    # random collections weighing the same
    r = rand[j]
    sc = {s: r.calibrated(s, params) for s in r.z}
    likely = 0.95
    for cut in np.round(np.arange(0.05, 0.951, 0.05), 2):
        prec = [float(r.relevant[s][sc[s] >= cut].mean()) for s in r.z if (sc[s] >= cut).any()]
        if prec and np.mean(prec) >= 0.5:
            likely = float(cut)
            break
    params = dataclasses.replace(params, likely=likely)
    params = dataclasses.replace(params, stand_out=fit_stand_out(pool, params, reps=reps))
    return params, {"ref_k_mean_ece": {float(p.ref_k): round(s, 4) for p, (s, _) in zip(plist, scores, strict=True)}}


STAND_OUT_SIZES = (30, 100, 300, 600, 900, 0)  # 0: every photo without the query's class (whitened vectors)
STAND_OUT_QUANTILE = 0.95  # each of the two tests (best z, count): about 9 in 10 collections without the shape
# show no likely match (measured on the held half: docs/calibration.md)


def fit_stand_out(pool: Pool, params: FusionParams, *, q: float = STAND_OUT_QUANTILE, sizes=STAND_OUT_SIZES,
                  reps: int = 2, confirmed: bool = False) -> dict:
    """``FusionParams.stand_out``: over collections of each size drawn without the query's class from ``pool``
    (one half of the classes), the ``q``-quantile of their best final z and of their hits that count
    (``FusionParams.counted``: at or above the likely-match cut, and with ``confirmed`` whose box is sure) plus
    one, per regime (plain L2 image vectors below ``imageindex.MIN_WHITENING_IMAGES`` photos, whitened from
    there).  ``confirmed`` is not what ships: it hid every likely match of loose sketches whose alignment finds
    no sure box, such as 16 penguins of 16 in a 300-photo collection (docs/calibration.md)."""
    bare = dataclasses.replace(params, stand_out={"confirmed": confirmed})
    runs = size_runs(pool, bare, sizes=sizes, reps=reps)
    table: dict = {"small": [], "whitened": [], "quantile": q, "confirmed": confirmed}
    for s in sizes:
        if not len(runs.absent_best[s]):
            continue
        n = int(np.median(runs.absent_n[s]))
        count = float(np.quantile(runs.absent_counts(s, bare), q)) + 1
        table["whitened" if runs.whitened[s] else "small"].append(
            [n, round(float(np.quantile(runs.absent_best[s], q)), 4), count])
    for k in ("small", "whitened"):  # the best of more photos reaches at least as far: non-decreasing in n
        table[k].sort()
        for j in (1, 2):
            for i in range(1, len(table[k])):
                table[k][i][j] = max(table[k][i][j], table[k][i - 1][j])
    log.info("stand-out table (q %.2f): %s", q, table)
    return table


def fit_sizes(data: str | Path | None = None, *, out: Path = FUSION_FILE, half: int = 0) -> FusionParams:
    """Fit the reference weight, the small-collection calibration and the likely-match cut on one half of the
    Sketchy classes (``half`` 0: even positions) and write them into ``out`` (the other weights kept)."""
    from ..reference import load_reference

    root = ds.data_root() if data is None else Path(data)
    base = load_params()
    with tempfile.TemporaryDirectory() as tmp:
        pool = cached_pool("sketchy", root, Path(tmp), load_reference())
    fit_pool = pool.take(np.flatnonzero(pool.query_class % 2 == half))
    params, info = fit_sizes_on(fit_pool, base)
    fit = dict(base.fit)
    fit["sizes"] = {"data": f"Sketchy, classes at {'even' if half == 0 else 'odd'} positions; collections of 30, 100, "
                            "300 photos drawn from all 1,250 (random, and a third of one subject)",
                    "queries": int(len(fit_pool.afm)), **info, "date": time.strftime("%Y-%m-%d")}
    params = dataclasses.replace(params, fit=fit)
    out.write_text(params.to_json() + "\n")
    load_params.cache_clear()
    log.info("wrote %s: ref_k %.0f, ref_full %d, calibration_small %s, likely %.2f", out, params.ref_k,
             params.ref_full, params.calibration_small, params.likely)
    return params


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "fit":
        fit(argv[1] if len(argv) > 1 else None)
        return 0
    if argv and argv[0] == "fit-sizes":
        fit_sizes(argv[1] if len(argv) > 1 else None)
        return 0
    from .report import table

    res = bench_fusion(data=argv[0] if argv else None, png=Path("bench-results") / "reliability.png")
    for title, rows in res["tables"].items():
        print(table(title, rows))
    return 0


def bench_sizes(data: str | Path | None = None, *, reps: int = 2, quick: bool = False) -> dict:
    """Calibration from a few dozen photos up (issue 17): before (the collection's own statistics, one
    calibration) and after (the reference blend and the small-collection calibration) on collections of 30,
    100, 300 and all photos; Sketchy fitted on one half of the classes and reported on the other, both
    directions (the shipped numbers are the even half's); SYSU-Shapes per class with the shipped numbers
    (nothing is fitted on SYSU)."""
    from ..reference import load_reference

    root = ds.data_root() if data is None else Path(data)
    shipped = load_params()
    before = dataclasses.replace(shipped, ref_k=0.0, ref_full=0, calibration_small=None, stand_out={})
    out: dict = {"tables": {}, "skipped": []}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            pool = cached_pool("sketchy", root, Path(tmp), load_reference())
        except ds.DatasetMissing as e:
            out["skipped"].append(str(e))
            pool = None
        if pool is not None:
            for h in (1, 0):
                with _direction(fitted_on=1 - h):  # the even half with what was fitted on the odd
                    ph = pool.take(np.flatnonzero(pool.query_class % 2 == h))
                    if quick:
                        ph = ph.take(np.arange(0, len(ph.afm), 5))
                    if h == 1:
                        after = shipped
                    else:  # the other direction: fitted on the odd half
                        other = pool.take(np.flatnonzero(pool.query_class % 2 == 1))
                        after, _ = fit_sizes_on(other, before)
                    half = "odd" if h == 1 else "even"
                    unexpanded = dataclasses.replace(after, qe_n=0)  # "Include similar photos" off, --expand 0
                    runs_b, runs_a, runs_u = size_runs(ph, [before, after, unexpanded], reps=reps)
                    clus_b, clus_a = size_runs(ph, [before, after], sizes=(30, 100, 300), reps=1, absent=False,
                                               share=1 / 3)
                    t = size_tables(runs_u, unexpanded, label=f"Sketchy {half} half, after, expansion off")
                    out["tables"].update({k: v for k, v in t.items() if "calibration by" in k})
                    for name, p, r, c in (("before", before, runs_b, clus_b), ("after", after, runs_a, clus_a)):
                        label = f"Sketchy {half} half, {name}"
                        out["tables"].update(size_tables(r, p, label=label))
                        t = size_tables(c, p, label=label + ", collections a third of one subject")
                        out["tables"].update({k: v for k, v in t.items() if "calibration by" in k or "per score" in k})
                    out[f"params_{half}"] = {"ref_k": after.ref_k, "likely": after.likely,
                                             "calibration_small": after.calibration_small}
        try:
            sysu = cached_pool("sysu", root, Path(tmp), load_reference())
        except ds.DatasetMissing as e:
            out["skipped"].append(str(e))
            sysu = None
        if sysu is not None:
            for c, cname in enumerate(ds.SYSU_CLASSES):
                ps = sysu.take(np.flatnonzero(sysu.query_class == c))
                if quick:
                    ps = ps.take(np.arange(0, len(ps.afm), 5))
                rb, ra = size_runs(ps, [before, shipped], sizes=(30, 100, 0), reps=reps)
                for name, p, r in (("before", before, rb), ("after", shipped, ra)):
                    out["tables"].update(size_tables(r, p, label=f"SYSU-Shapes {cname} queries, {name}"))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
