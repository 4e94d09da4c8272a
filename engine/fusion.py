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
* **Calibration.** The final score's own z over the background maps to a probability-like score in [0, 1]
  by a logistic with a hinge, ``sigmoid(a + b z - c max(z - knot, 0))``, fitted on the fit half of
  Sketchy (``engine/fusion_fit.py``), so that a cut-off selects results of similar precision whatever the
  sketch.

Every weight is in ``engine/data/fusion.json``, written by ``python -m engine.fusion_fit``.
"""
from __future__ import annotations

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
    "calibrate",
    "standardise",
    "drawing",
    "drawing_input",
    "drawing_settings",
    "fuse",
    "load_params",
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
    calibration, calibration_afm : tuple of float
        ``(a, b, c, knot)`` of ``sigmoid(a + b z - c max(z - knot, 0))``: of the fused score, and of the
        alignment alone (indexes without image descriptors, ``--no-fusion``).
    background : int
        Background sample size (photos) for the standardisation.
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
    background: int = 2000
    mirror: bool = True
    side: int = 224
    p: float = 5.0
    thickness: int = 2
    border: float = 0.1
    fit: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, indent=1)

    @classmethod
    def from_dict(cls, d: dict) -> FusionParams:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("calibration", "calibration_afm"):
            if k in d:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)


@functools.cache
def load_params(path: str | None = None) -> FusionParams:
    """The fitted parameters (``engine/data/fusion.json``; the class defaults if it is absent)."""
    p = Path(path) if path else FUSION_FILE
    if not p.is_file():
        return FusionParams()
    return FusionParams.from_dict(json.loads(p.read_text()))


def drawing_settings(backbone: str, params: FusionParams | None = None):
    """GemSettings of the global sketch descriptor (one scale at ``params.side`` px, GeM ``params.p``)."""
    from .cnn import GemSettings

    params = params or load_params()
    return GemSettings(backbone=backbone, p=params.p, scales=(1.0,), max_side=params.side)


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
    paper = np.repeat((1.0 - ink)[:, :, None], 3, axis=2)
    return network_input(paper, side)


def drawing_input(edges: EdgeMap, *, query: bool) -> np.ndarray:
    """The global descriptor's CNN input of a photo's edge map (``query=False``) or of a query sketch (with
    the white border), drawn with the fitted settings."""
    p = load_params()
    return drawing(edges, thickness=p.thickness, border=p.border if query else 0.0, side=p.side)


def standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Robust z-scores of ``x`` against the sample ``ref``: ``(x - median) / (1.4826 MAD)`` (the standard
    deviation where the MAD is 0).  Robust, so that the photos that do match -- a large share of a
    collection full of one subject -- do not inflate the scale and deflate every score."""
    ref = np.asarray(ref, np.float64)
    med = float(np.median(ref))
    scale = 1.4826 * float(np.median(np.abs(ref - med)))
    if scale <= 1e-12:
        scale = float(ref.std())
    return (np.asarray(x, np.float64) - med) / max(scale, 1e-12)


_z = standardise


def calibrate(z: np.ndarray, calibration: tuple[float, float, float, float]) -> np.ndarray:
    """Calibrated score in [0, 1] of final-score z-values (monotone non-decreasing in ``z`` for
    ``b >= c >= 0``)."""
    a, b, c, knot = calibration
    z = np.asarray(z, np.float64)
    t = a + b * z - c * np.maximum(z - knot, 0.0)
    return 1.0 / (1.0 + np.exp(-np.clip(t, -60.0, 60.0)))


@dataclass(frozen=True)
class Fused:
    """Fused scores of a set of rows (aligned with ``rows``)."""

    rows: np.ndarray
    final: np.ndarray  # fused score (higher is better)
    z: np.ndarray  # its z over the background
    score: np.ndarray  # calibrated, in [0, 1]


def fuse(rows: np.ndarray, afm: np.ndarray, glob: np.ndarray | None, bg: np.ndarray, params: FusionParams, *,
         image=None) -> Fused:
    """Fuse the alignment and global scores of ``rows`` (a set that contains the background rows).

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
        Query expansion: ``image(seed_rows) -> (rows2, cos2)``, the image cosines of the alpha-expanded
        query for ``rows`` plus any other rows it finds best (``rows2`` contains ``rows`` first).  Those
        extra rows get ``afm`` / ``glob`` through ``image`` too: it returns ``(rows2, cos2, afm2, glob2)``.

    Returns
    -------
    Fused
    """
    rows = np.asarray(rows, np.int64)
    za = _z(afm, afm[bg])
    if glob is None:
        final = za
    elif image is None or params.qe_n <= 0:
        final = za + params.w * _z(glob, glob[bg])
    else:
        base = za + params.qe_w * _z(glob, glob[bg])
        seeds = rows[np.argsort(-base, kind="stable")[: params.qe_n]]
        rows2, cos, afm2, glob2 = image(seeds)
        # the rows the expanded query brought in are standardised with the same background statistics
        za2 = _z(afm2, afm[bg])
        base2 = za2 + params.qe_w * _z(glob2, glob[bg])
        final = _z(base2, base[bg]) + params.qe_v * _z(cos, cos[bg]) + params.qe_afm * za2
        rows = rows2
    z = _z(final, final[bg])
    return Fused(rows, final, z, calibrate(z, params.calibration))


def reliability(scores: np.ndarray, relevant: np.ndarray, bins=(0, .02, .05, .1, .2, .3, .4, .5, .6, .7, .8, 1.0)):
    """Precision of results per calibrated-score bin: rows of (low, high, n, mean score, precision)."""
    s = np.asarray(scores, np.float64).ravel()
    r = np.asarray(relevant, bool).ravel()
    out = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        m = (s >= lo) & ((s < hi) if hi < 1.0 else (s <= hi))
        if m.any():
            out.append((lo, hi, int(m.sum()), float(s[m].mean()), float(r[m].mean())))
    return out


def expected_calibration_error(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean |precision - mean score| over the reliability bins, weighted by their sizes."""
    rows = reliability(scores, relevant)
    n = sum(r[2] for r in rows)
    return float(sum(r[2] * abs(r[3] - r[4]) for r in rows) / max(n, 1))


def plot_reliability(rows: list[tuple], path: str | Path, *, title: str = "") -> None:
    """Write the reliability curve (precision against mean calibrated score per bin) as a PNG (OpenCV)."""
    size, m = 480, 60
    img = np.full((size, size, 3), 255, np.uint8)
    x0, y0, x1, y1 = m, size - m, size - 20, 30

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x0 + x * (x1 - x0))), int(round(y0 - y * (y0 - y1)))

    for t in np.linspace(0, 1, 6):
        cv2.line(img, pt(t, 0), pt(t, 1), (235, 235, 235), 1)
        cv2.line(img, pt(0, t), pt(1, t), (235, 235, 235), 1)
        cv2.putText(img, f"{t:.1f}", (pt(t, 0)[0] - 10, y0 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{t:.1f}", (x0 - 32, pt(0, t)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.rectangle(img, pt(0, 0), pt(1, 1), (0, 0, 0), 1)
    cv2.line(img, pt(0, 0), pt(1, 1), (150, 150, 150), 1, cv2.LINE_AA)  # perfect calibration
    pts = [pt(r[3], r[4]) for r in rows]
    for a, b in zip(pts[:-1], pts[1:], strict=False):
        cv2.line(img, a, b, (200, 90, 30), 2, cv2.LINE_AA)
    for r, p in zip(rows, pts, strict=True):
        cv2.circle(img, p, max(3, int(round(2 * math.log10(max(r[2], 1))))), (200, 90, 30), -1, cv2.LINE_AA)
    cv2.putText(img, "calibrated score (bin mean)", (x0 + 90, size - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "precision", (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if title:
        cv2.putText(img, title, (x0 + 10, y1 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
