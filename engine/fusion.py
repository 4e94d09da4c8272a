"""Sketch search quality: a global sketch descriptor fused with the shape alignment, query expansion and
calibrated scores (issue "sketch search quality"; METHOD.md sections 6 and 9).

* **Global sketch descriptor.** A photo's edge map (``edges.photo_edges``) and a query's thinned strokes
  (``edges.sketch_edges``) are drawn the same way -- binary black strokes 2 px wide on white, the sketch
  with a white border of 0.1 x its longer side -- and described by GeM (p = 5) of the image backbone's last
  feature maps at 224 px.  Photos' vectors are centred on the collection mean (learned with the image
  index); the similarity is the cosine of the centred vectors.
* **Fusion.** Each signal is standardised over a fixed background sample of the collection (all of it
  up to ``background`` photos; above, those first by content hash: ``SketchIndex.background_keys``) with
  robust statistics: ``z = (s - median_B) / (1.4826 MAD_B)``.
  Without expansion the score is ``z_afm + w * z_global``; with expansion (the default) the top
  ``qe_n`` hits of ``z_afm + qe_w * z_global`` seed an alpha-weighted query expansion over the photos'
  image descriptors, and the score is ``z(base) + qe_v * z(image cosine) + qe_afm * z_afm``.
  The box always comes from the alignment (AFM).
* **Confirmed first** (issue 20).  The photos that both the alignment and the fused score rank among their
  best ``confirm_n`` (at most ``confirm_share`` of the collection) come first, in the alignment's order:
  the two signals agree on them, and the alignment's box is the likeliest to be on the object there (the
  fused score alone lifted photos of the right subject whose shape the alignment did not find, and their
  boxes were wrong: ``confirmed_first``).  Next come the other hits scoring at or above the likely cut
  (``likely_by_drawing``), ordered by how closely each follows the drawing itself -- the expansion's base
  score, alignment z + global z -- rather than by the expanded score: the expansion ranks photos of the
  sketched *subject*, and among those the drawing's own evidence finds the photo that was drawn (issue 20,
  item 4).  A box is *sure* where the alignment's own z-score (``Fused.za``) is
  at least ``sure_z`` (the app draws the others dashed).
* **Small collections** (issue 17; ``docs/calibration.md``).  Below ``ref_full`` photos every background
  statistic also pools a reference sample of photos shipped with the app (``engine.reference``), with
  ``reference_weight`` photos' worth of weight (weighted median and MAD, ``Stats.of``), and the expansion
  seeds' image cosines are taken leave-one-out (``leave_one_out_cosines``).  From ``ref_full`` photos on the
  weight is 0 and the statistics are exactly the collection's own.
* **Calibration.** The final score's own z over the background maps to a probability-like score in [0, 1]
  by a logistic with a hinge, ``sigmoid(a + b z - c max(z - knot, 0))``, fitted on the fit half of
  Sketchy (``engine.bench.fusion``): one for collections with whitened image vectors, one for smaller ones
  (``FusionParams.calibration_for``), so that a cut-off selects results of similar precision whatever the
  sketch and the collection's size.  ``FusionParams.likely`` is the likely-match cut on that score.
* **Does the shape stand out at all** (issue 17).  However well calibrated each photo's score, the best of
  N photos without the sketched shape climbs with N (more look-alikes to be the best).  A query's hits are
  likely matches only where its best final z, or its number of hits at or above the cut
  (``FusionParams.counted``), reaches what a collection of that size *without* the shape reaches in 19
  collections out of 20 (``FusionParams.stands_out``, a table fitted on the fit half of Sketchy:
  ``engine.bench.fusion.fit_stand_out``); the ranking is unchanged.

Every weight is in ``engine/data/fusion.json``, written by ``python -m engine.bench.fusion fit`` and
``python -m engine.bench.fusion fit-sizes``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

from .edges import EdgeMap

__all__ = [
    "FUSION_FILE",
    "FusionParams",
    "ReferenceScores",
    "Stats",
    "calibrate",
    "confirmed_first",
    "standardise",
    "drawing",
    "drawing_input",
    "fuse",
    "leave_one_out_cosines",
    "load_params",
    "reference_weight",
    "weighted_median",
]

FUSION_FILE = Path(__file__).resolve().parent / "data" / "fusion.json"


@dataclass(frozen=True)
class FusionParams:
    """Weights of the fused sketch score (defaults: the fitted ones in ``engine/data/fusion.json``).

    Attributes
    ----------
    w : float
        Weight of the global z-score beside the alignment's, without expansion.
    qe_n, qe_w, qe_v, qe_alpha, qe_afm : int, float, float, float, float
        Expansion: seeds (top ``qe_n`` of ``z_afm + qe_w z_global``), weight of the image cosine's z-score,
        alpha of the alpha-weighted query expansion, weight of the alignment's z-score added back to the
        final score (it keeps well-aligned photos, whose boxes are right, near the top).  ``qe_n = 0``
        switches the expansion off.
    calibration, calibration_small, calibration_afm : tuple of float
        ``(a, b, c, knot)`` of ``sigmoid(a + b z - c max(z - knot, 0))``: of the fused score in a collection
        whose image vectors are whitened (``imageindex.MIN_WHITENING_IMAGES`` photos or more), of the fused
        score in a smaller one (plain L2 image vectors: a weaker expansion, fitted on collections of 30 to
        300 photos), and of the alignment alone (indexes without image descriptors, ``--no-fusion``).
    background : int
        Background sample size (photos) for the standardisation.
    ref_k, ref_full : float, int
        The reference sample (``engine.reference``) joins every background with ``ref_k`` photos' worth of
        weight, tapering linearly to none at a background of ``ref_full`` photos (``reference_weight``);
        ``ref_k = 0``: the collection's own statistics only.
    likely : float
        Likely-match cut on the calibrated score: results at or above it are "likely matches" (where the
        query's best hit stands out: ``stand_out_z``).
    stand_out : dict
        ``{"small": [[n, z, k], ...], "whitened": [[n, z, k], ...], "quantile": q, "confirmed": bool}``: over
        collections of ``n`` photos without the sketched shape, the ``q``-quantile of their best final z and of
        their hits that count (plus one): at or above ``likely`` and, with ``confirmed``, whose box is sure
        (``counted``), for collections with plain L2 and with whitened image vectors (``stands_out``); empty:
        no such test.
    qe_loo : bool
        Where the reference sample is in use (small collections), each expansion seed's image cosine is its
        cosine with the expansion built from the other seeds (``leave_one_out_cosines``): a seed is part of
        the expanded query, so its own cosine says little, and in a collection of 30 photos the 20 seeds
        would otherwise all stand out against the reference photos.
    confirm_n, confirm_share : int, float
        Confirmed first: the rows among both the alignment's and the fused score's best ``min(confirm_n,
        confirm_share * collection size)`` (at least 3) are ranked first, in the alignment's order
        (``confirmed_first``; ``confirm_n = 0`` switches it off).
    confirm_clear : bool
        The alignment's best row is confirmed too where its z is at least ``sure_z`` and leads the second's by
        at least ``sure_z``: a shape found clearly in one photo alone, which the global descriptor's
        disagreement buried (a drawn bicycle under four near-identical houses in the demo).  Nothing fitted
        (``sure_z`` twice); the class-disjoint benchmarks do not change (``docs/benchmarks.md``).
    likely_by_drawing : bool
        The rows scoring at or above ``likely`` that are not confirmed come next, ordered by the
        expansion's base score (alignment z + ``qe_w`` global z: how closely each follows the drawing itself)
        instead of the fused score (``confirmed_first``).
    sure_z : float
        A hit's box is sure where its alignment z-score (``Fused.za``) is at least this.
    mirror : bool
        Default of ``SearchOptions.mirror`` for sketch queries (benchmark choice).
    side, p, thickness, border : int, float, int, float
        Global descriptor: network input side, GeM exponent, stroke width (px, 400 px frame), white
        border around sketches (fraction of their longer side).
    fit : dict
        Where the numbers come from (data, split, measured figures).
    """

    w: float = 2.0
    qe_n: int = 10
    qe_w: float = 1.0
    qe_v: float = 4.0
    qe_alpha: float = 3.0
    qe_afm: float = 0.0
    calibration: tuple[float, float, float, float] = (-4.4, 0.9, 0.85, 5.0)
    calibration_afm: tuple[float, float, float, float] = (-4.4, 0.9, 0.85, 5.0)
    calibration_small: tuple[float, float, float, float] | None = None
    background: int = 2000
    ref_k: float = 0.0
    ref_full: int = 0
    likely: float = 0.5
    stand_out: dict = field(default_factory=dict)
    qe_loo: bool = False
    confirm_n: int = 0
    confirm_share: float = 0.05
    confirm_clear: bool = False
    likely_by_drawing: bool = False
    sure_z: float = 2.0
    mirror: bool = True
    side: int = 224
    p: float = 5.0
    thickness: int = 2
    border: float = 0.1
    fit: dict = field(default_factory=dict, compare=False)

    def calibration_for(self, *, fused: bool, whitened: bool) -> tuple[float, float, float, float]:
        """The calibration of a search: the alignment alone, or the fused score with whitened or plain image
        vectors."""
        if not fused:
            return self.calibration_afm
        if not whitened and self.calibration_small is not None:
            return self.calibration_small
        return self.calibration

    def stands_out(self, n: int, *, whitened: bool, best_z: float, count: int) -> bool:
        """Whether a fused query's hits in a collection of ``n`` photos may be likely matches: its best final z
        (``best_z``) or the number of its hits scoring at or above ``likely`` (``count``) reaches what
        collections of that size *without* the sketched shape reach (``stand_out_z``, ``stand_out_count``).
        The count is what a collection full of the subject shows (its photos' z are lower there, the
        background being full of them); True where nothing is fitted."""
        return best_z >= self.stand_out_z(n, whitened=whitened) or \
            count >= self.stand_out_count(n, whitened=whitened)

    def counted(self, score: np.ndarray, za: np.ndarray) -> np.ndarray:
        """Which hits count towards ``stand_out_count``: those scoring at or above ``likely`` and, where the
        table says ``confirmed``, whose box is sure too (alignment z >= ``sure_z``: the shape itself was found
        there; a collection full of look-alikes of another subject lifts many fused scores above the cut, the
        expansion drawing them together, but not their alignment).  The shipped table counts every hit at or
        above the cut: the sure-box rule also hid loose sketches' right matches (docs/calibration.md)."""
        hit = np.asarray(score) >= self.likely
        if self.stand_out.get("confirmed"):
            hit &= np.asarray(za) >= self.sure_z
        return hit

    def stand_out_z(self, n: int, *, whitened: bool) -> float:
        """The best final z of a collection of ``n`` photos without the shape, at the fitted quantile: the
        table of its regime (``stand_out``), linear in log n between the fitted sizes, the smallest size's
        value below them, and above the largest growing like the maximum of n Gaussian draws
        (``sqrt(log n)``: an assumption, the benchmark's collections stop at 1,250 photos); -inf where nothing
        is fitted."""
        return self._stand_out(n, whitened, 1, lambda v, x, x_last: v * math.sqrt(x / x_last), -math.inf)

    def stand_out_count(self, n: int, *, whitened: bool) -> float:
        """The hits at or above ``likely`` that a collection of ``n`` photos without the shape shows, at the
        fitted quantile, plus one (interpolated as ``stand_out_z``; above the largest size, in proportion to
        n); 0 where nothing is fitted."""
        return self._stand_out(n, whitened, 2, lambda v, x, x_last: v * math.exp(x - x_last), 0.0)

    def _stand_out(self, n: int, whitened: bool, column: int, beyond, nothing: float) -> float:
        table = self.stand_out.get("whitened" if whitened else "small") or []
        if not table:
            return nothing
        ns = np.log(np.array([t[0] for t in table], np.float64))
        vs = np.array([t[column] for t in table], np.float64)
        x = math.log(max(int(n), 2))
        if x <= ns[-1]:
            return float(np.interp(x, ns, vs))
        return float(beyond(vs[-1], x, ns[-1]))

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> FusionParams:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("calibration", "calibration_afm", "calibration_small"):
            if d.get(k) is not None:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)


@functools.cache
def load_params(path: str | None = None) -> FusionParams:
    """The fitted parameters (``engine/data/fusion.json``; the class defaults if it is absent)."""
    p = Path(path) if path else FUSION_FILE
    if not p.is_file():
        return FusionParams()
    return FusionParams.from_dict(json.loads(p.read_text()))


def drawing(edges: EdgeMap, *, thickness: int = 2, border: float = 0.0, side: int = 224) -> np.ndarray:
    """An edge map drawn as a drawing: black strokes (every point, whatever its strength) ``thickness`` px
    wide on white, with a white border of ``border`` x the longer side, as the network's uint8 RGB input
    (longer side ``side``)."""
    from .imageio import network_input

    h, w = edges.height, edges.width
    pad = int(round(border * max(h, w)))
    ink = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    cols = np.rint(edges.x + (w - 1) / 2.0).astype(np.intp) + pad
    rows = np.rint(edges.y + (h - 1) / 2.0).astype(np.intp) + pad
    ok = (cols >= 0) & (cols < ink.shape[1]) & (rows >= 0) & (rows < ink.shape[0])
    ink[rows[ok], cols[ok]] = 1.0
    if thickness > 1:
        ink = cv2.dilate(ink, np.ones((thickness, thickness), np.uint8))
    # grey: resized as one channel, then repeated (OpenCV resizes every channel alike: the bytes of resizing
    # three equal channels, in half the time; tests/engine/test_fusion.py)
    grey = network_input(1.0 - ink, side)
    return np.repeat(grey[:, :, None], 3, axis=2)


def drawing_input(edges: EdgeMap, *, query: bool) -> np.ndarray:
    """The global descriptor's CNN input of a photo's edge map (``query=False``) or of a query sketch (with
    the white border), drawn with the fitted settings."""
    p = load_params()
    return drawing(edges, thickness=p.thickness, border=p.border if query else 0.0, side=p.side)


def weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    """Median of ``x`` (n,) with non-negative weights ``w`` (n,): the value where the cumulative weight
    reaches half the total, the mean of the two neighbours when it lands exactly between them (so equal
    weights give ``np.median``)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    keep = w > 0
    x, w = x[keep], w[keep]
    c = np.cumsum(w)
    half = 0.5 * c[-1]
    i = int(np.searchsorted(c, half * (1 - 1e-12)))
    if abs(c[i] - half) <= 1e-9 * c[-1] and i + 1 < len(x):
        return float(0.5 * (x[i] + x[i + 1]))
    return float(x[i])


@dataclass(frozen=True)
class Stats:
    """Robust location and scale of a signal over the background: ``z = (x - median) / scale``."""

    median: float
    scale: float

    @classmethod
    def of(cls, ref: np.ndarray, extra: np.ndarray | None = None, extra_weight: float = 0.0) -> Stats:
        """Median and 1.4826 MAD of the sample ``ref`` (each value weight 1), pooled with ``extra`` (the
        reference sample's values) carrying ``extra_weight`` in all (0: ``ref`` alone, exactly).  The
        standard deviation stands in where the MAD is 0."""
        ref = np.asarray(ref, np.float64)
        if extra is None or extra_weight <= 0 or len(extra) == 0:
            med = float(np.median(ref))
            scale = 1.4826 * float(np.median(np.abs(ref - med)))
            if scale <= 1e-12:
                scale = float(ref.std())
            return cls(med, max(scale, 1e-12))
        extra = np.asarray(extra, np.float64)
        x = np.concatenate([ref, extra])
        w = np.concatenate([np.ones(len(ref)), np.full(len(extra), extra_weight / len(extra))])
        med = weighted_median(x, w)
        scale = 1.4826 * weighted_median(np.abs(x - med), w)
        if scale <= 1e-12:
            mean = float(np.average(x, weights=w))
            scale = math.sqrt(float(np.average((x - mean) ** 2, weights=w)))
        return cls(med, max(scale, 1e-12))

    def z(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.median) / self.scale


def standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Robust z-scores of ``x`` against the sample ``ref``: ``(x - median) / (1.4826 MAD)`` (the standard
    deviation where the MAD is 0).  Robust, so that the photos that do match -- a large share of a
    collection full of one subject -- do not inflate the scale and deflate every score."""
    return Stats.of(ref).z(x)


def calibrate(z: np.ndarray, calibration: tuple[float, float, float, float]) -> np.ndarray:
    """Calibrated score in [0, 1] of final-score z-values (monotone non-decreasing in ``z`` for
    ``b >= c >= 0``)."""
    a, b, c, knot = calibration
    z = np.asarray(z, np.float64)
    # = a + b z - c max(z - knot, 0), written so that a flat tail (b == c) stays exactly flat
    t = a + b * np.minimum(z, knot) + (b - c) * np.maximum(z - knot, 0.0)
    return 1.0 / (1.0 + np.exp(-np.clip(t, -60.0, 60.0)))


@dataclass(frozen=True)
class Fused:
    """Fused scores of a set of rows (aligned with ``rows``)."""

    rows: np.ndarray
    final: np.ndarray  # fused score (higher is better)
    z: np.ndarray  # its z over the background
    score: np.ndarray  # calibrated, in [0, 1]
    za: np.ndarray  # the alignment's z over the background (a box is sure where it is >= ``FusionParams.sure_z``)
    rank: np.ndarray | None = None  # the ranking key where it differs from ``final`` (``confirmed_first``)
    base: np.ndarray | None = None  # how closely each row follows the drawing: alignment z + ``qe_w`` global z

    @property
    def key(self) -> np.ndarray:
        """What the results are ordered by (higher first): ``rank`` where set, else ``final``."""
        return self.final if self.rank is None else self.rank


@dataclass(frozen=True)
class ReferenceScores:
    """One query's scores of the reference sample's photos (``engine.reference``), pooled into the
    background of every standardisation with ``weight`` photos' worth of weight in all.

    Attributes
    ----------
    afm : (r,) float
        Alignment scores of the reference photos.
    glob : (r,) float or None
        Their global sketch cosines (None: the collection has no image descriptors).
    weight : float
        Total weight of the reference photos beside the collection's background photos (weight 1 each);
        0 leaves the collection's own statistics exactly.
    """

    afm: np.ndarray
    glob: np.ndarray | None
    weight: float


def leave_one_out_cosines(query: np.ndarray, seeds: np.ndarray, alpha: float) -> np.ndarray:
    """Each seed's cosine with the alpha-expanded query built without it (``imagesearch.alpha_qe`` of
    ``query`` over ``seeds``; ``query`` is the first seed's own vector, so the first seed leaves both).

    Parameters
    ----------
    query : (d,) float, L2-normalised
    seeds : (n, d) float, L2-normalised
    alpha : float

    Returns
    -------
    (n,) float64
    """
    q = np.asarray(query, np.float64)
    d = np.asarray(seeds, np.float64)
    w = np.maximum(d @ q, 0.0) ** alpha
    u = q + w @ d
    parts = u[None, :] - w[:, None] * d
    parts[0] -= q
    norms = np.maximum(np.linalg.norm(parts, axis=1), 1e-12)
    return np.einsum("nd,nd->n", parts, d) / norms


def reference_weight(n_background: int, params: FusionParams) -> float:
    """Weight of the reference sample beside a background of ``n_background`` collection photos:
    ``ref_k * max(0, 1 - n_background / ref_full)`` (0 from ``ref_full`` photos on)."""
    if params.ref_k <= 0 or params.ref_full <= 0:
        return 0.0
    return float(params.ref_k * max(0.0, 1.0 - n_background / params.ref_full))


@dataclass(frozen=True)
class Stage:
    """One query's fused score before the query expansion: what :func:`begin` computes from the first round of
    scores, and :func:`seed_rows` / :func:`finish` / :func:`finish_expanded` use (pure steps: the client runs the
    round trips to the shards between them)."""

    rows: np.ndarray  # (m,) collection rows scored (background and candidates)
    bg: np.ndarray  # (b,) positions in ``rows`` of the background sample
    params: FusionParams
    ref: ReferenceScores | None  # the reference sample where it takes part
    s_afm: Stats
    za: np.ndarray  # alignment z of ``rows``
    za_ref: np.ndarray | None
    s_glob: Stats | None  # None: the alignment alone
    glob: np.ndarray | None
    zg_ref: np.ndarray | None
    base: np.ndarray | None  # the expansion's base score of ``rows``: alignment z + ``qe_w`` global z (with glob)

    def stats(self, col_bg: np.ndarray, ref_values: np.ndarray | None) -> Stats:
        return _stats(self.ref, col_bg, ref_values)

    @property
    def expands(self) -> bool:
        return self.s_glob is not None and self.params.qe_n > 0


def _stats(ref: ReferenceScores | None, col_bg: np.ndarray, ref_values: np.ndarray | None) -> Stats:
    """Background statistics of the collection's values, pooled with the reference's where it takes part."""
    wr = ref.weight if ref is not None else 0.0
    return Stats.of(col_bg, ref_values, wr if ref_values is not None else 0.0)


def begin(rows: np.ndarray, afm: np.ndarray, glob: np.ndarray | None, bg: np.ndarray, params: FusionParams, *,
          reference: ReferenceScores | None = None) -> Stage:
    """The first step of :func:`fuse`: the background statistics of the alignment and global scores."""
    rows = np.asarray(rows, np.int64)
    ref = reference if reference is not None and reference.weight > 0 else None
    if ref is not None and glob is not None and ref.glob is None:
        ref = None  # a reference without global descriptors cannot stand beside a fused score
    s_afm = _stats(ref, afm[bg], ref.afm if ref is not None else None)
    za_ref = s_afm.z(ref.afm) if ref is not None else None
    s_glob = zg_ref = None
    if glob is not None:
        s_glob = _stats(ref, glob[bg], ref.glob if ref is not None else None)
        zg_ref = s_glob.z(ref.glob) if ref is not None else None
    za = s_afm.z(afm)
    base = za + params.qe_w * s_glob.z(glob) if s_glob is not None else None
    return Stage(rows, bg, params, ref, s_afm, za, za_ref, s_glob, glob, zg_ref, base)


def seed_rows(stage: Stage) -> np.ndarray:
    """The rows whose image vectors expand the query: the ``qe_n`` best by the base score (of every row, also
    those a filter does not let through: a filter only narrows what is shown, ``engine.collection``)."""
    base = stage.base
    order = np.argsort(-base, kind="stable")[: stage.params.qe_n]
    return stage.rows[order[base[order] > -np.inf]]


def finish(stage: Stage) -> Fused:
    """The fused score without expansion: alignment z + ``w`` global z (the alignment alone without global
    scores), standardised and calibrated."""
    params, ref_final = stage.params, None
    if stage.s_glob is None:
        final = stage.za
        ref_final = stage.za_ref
    else:
        final = stage.za + params.w * stage.s_glob.z(stage.glob)
        if stage.zg_ref is not None:
            ref_final = stage.za_ref + params.w * stage.zg_ref
    return _calibrated(stage, stage.rows, final, ref_final, stage.za, stage.za if stage.base is None else stage.base)


def finish_expanded(stage: Stage, rows2: np.ndarray, cos: np.ndarray, afm2: np.ndarray, glob2: np.ndarray,
                    ref_cos: np.ndarray | None) -> Fused:
    """The fused score with the query expansion.

    ``rows2`` holds ``stage.rows`` first and any rows the expanded query found best; ``cos`` the image cosines
    of the expanded query for them, ``afm2`` / ``glob2`` their alignment and global scores, ``ref_cos`` the
    reference photos' image cosines (None without the reference).
    """
    params, bg = stage.params, stage.bg
    base = stage.base
    base_ref = stage.za_ref + params.qe_w * stage.zg_ref if stage.zg_ref is not None else None
    # the rows the expanded query brought in are standardised with the same background statistics
    za2 = stage.s_afm.z(afm2)
    base2 = za2 + params.qe_w * stage.s_glob.z(glob2)
    s_base = stage.stats(base[bg], base_ref)
    use_ref_cos = base_ref is not None and ref_cos is not None
    s_cos = stage.stats(cos[bg], ref_cos if use_ref_cos else None)
    final = s_base.z(base2) + params.qe_v * s_cos.z(cos) + params.qe_afm * za2
    ref_final = None
    if use_ref_cos:
        ref_final = s_base.z(base_ref) + params.qe_v * s_cos.z(ref_cos) + params.qe_afm * stage.za_ref
    return _calibrated(stage, np.asarray(rows2, np.int64), final, ref_final, za2, base2)


def _calibrated(stage: Stage, rows: np.ndarray, final: np.ndarray, ref_final: np.ndarray | None,
                za: np.ndarray, base: np.ndarray) -> Fused:
    z = stage.stats(final[stage.bg], ref_final).z(final)
    return Fused(rows, final, z, calibrate(z, stage.params.calibration), za, base=base)


def confirmed_first(fused: Fused, params: FusionParams, n_collection: int,
                    eligible: np.ndarray | None = None) -> np.ndarray:
    """The ranking key of a fused search (higher first; ineligible rows get -inf):

    1. the rows both the alignment z and the fused score rank among their best ``m = max(3, min(confirm_n,
       confirm_share * n_collection))`` (of the ``eligible`` rows), in the alignment's order;
    2. with ``likely_by_drawing``, the other rows scoring at or above the likely cut (``likely``; whether or not
       the query's hits stand out), ordered by ``Fused.base``;
    3. the rest, by the fused score.

    The first: both signals agree on those photos, and the alignment found the shape there, so their boxes are
    the likeliest to be right; on outline queries the fused score alone put photos of the right subject whose
    shape the alignment did not find near the top, with wrong boxes (issue 20; ``engine.bench.fusion``).  The
    second: the expansion's score ranks photos of the sketched subject, and among those that are likely
    matches, the drawing's own evidence (alignment and global descriptor, before the expansion) finds the photo
    that was drawn: a sketch of one photo brings that photo up (``docs/benchmarks.md``, instance retrieval).
    """
    final = np.asarray(fused.final, np.float64)
    ok = np.isfinite(final) if eligible is None else np.asarray(eligible, bool) & np.isfinite(final)
    key = np.where(ok, final, -np.inf)
    if not ok.any():
        return key
    if params.likely_by_drawing and fused.base is not None:
        likely = ok & (np.asarray(fused.score) >= params.likely)
        if likely.any():
            base = np.asarray(fused.base, np.float64)[likely]
            key[likely] = key[ok].max() + 1.0 + (base - base.min())
    if params.confirm_n <= 0:
        return key
    m = int(max(3, min(params.confirm_n, round(params.confirm_share * n_collection))))
    za = np.where(ok, fused.za, -np.inf)
    both = np.zeros(len(key), bool)
    by_afm = np.argsort(-za, kind="stable")[:m]
    by_final = np.argsort(-np.where(ok, final, -np.inf), kind="stable")[:m]
    both[np.intersect1d(by_afm, by_final)] = True
    if params.confirm_clear and ok.sum() >= 2:  # the alignment's best, far ahead of its second: confirmed too
        first, second = np.argsort(-za, kind="stable")[:2]
        if za[first] >= params.sure_z and za[first] - za[second] >= params.sure_z:
            both[first] = True
    both &= ok
    if both.any():
        key[both] = key[ok].max() + 1.0 + (za[both] - za[both].min())
    return key


def fuse(rows: np.ndarray, afm: np.ndarray, glob: np.ndarray | None, bg: np.ndarray, params: FusionParams, *,
         image=None, reference: ReferenceScores | None = None) -> Fused:
    """Fuse the alignment and global scores of ``rows`` (a set that contains the background rows): the steps
    :func:`begin`, :func:`seed_rows`, :func:`finish_expanded` (or :func:`finish`) in one call, for scores that
    are all at hand (the benchmarks; a search runs the steps itself, between its round trips to the shards).

    Parameters
    ----------
    rows : (m,) int
        Collection rows scored (background and candidates).
    afm, glob : (m,) float
        Alignment score (max over shifts, scales, mirrors) and global cosine of each row; ``glob`` None:
        the alignment alone (an index without image descriptors).
    bg : (b,) int
        Positions in ``rows`` of the background sample.
    image : callable, optional
        Query expansion: ``image(seed_rows) -> (rows2, cos2, afm2, glob2, ref_cos)`` (as
        :func:`finish_expanded` takes them).
    reference : ReferenceScores, optional
        The reference sample, pooled into every background statistic with its weight.

    Returns
    -------
    Fused
        With ``rank`` set (``confirmed_first``, the collection being ``rows``) where ``confirm_n`` > 0 or
        ``likely_by_drawing``.
    """
    stage = begin(rows, afm, glob, bg, params, reference=reference)
    if image is None or not stage.expands:
        fused = finish(stage)
    else:
        fused = finish_expanded(stage, *image(seed_rows(stage)))
    if params.confirm_n <= 0 and not params.likely_by_drawing:
        return fused
    return dataclasses.replace(fused, rank=confirmed_first(fused, params, len(rows)))
