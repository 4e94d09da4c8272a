"""A learned adaptation of the query sketch's global descriptor (issue 20): a linear map, fitted on half of
Sketchy's classes, that moves a sketch's descriptor towards the descriptor of its photo's edge drawing.

The global sketch descriptor compares a query sketch with each photo's edge map drawn as a drawing, both
described by the same frozen backbone (``engine.fusion``).  A sketch is not an edge map: it leaves out
texture, exaggerates some parts and simplifies others.  The map ``q -> (q - sketch_mean) W + drawing_mean``
with ``W = I + U V^T`` (rank ``len(V)``) is ridge regression towards the identity, fitted on pairs (sketch,
drawing of the photo it was drawn from): ``W = (X^T X + lam I)^-1 (X^T Y + lam I)`` on centred features,
then ``W - I`` truncated to its leading singular directions.  Only the query changes: photos are described as
before, an index needs nothing new.

The shipped map (``engine/data/sketch_adaptation.npz``) was fitted on the classes at even positions of the
sorted Sketchy class list, ``lam`` chosen by class-disjoint cross-validation inside those classes, and is
kept only because it beats the plain descriptor on the odd classes (``scripts/train_sketch_adaptation.py``
and its log ``engine/data/sketch_adaptation.json``).  It applies to the backbone and drawing it was fitted
for; any other descriptor is left as it is.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ADAPTATION_FILE", "SketchAdaptation", "adapt_sketch", "load_adaptation", "use_adaptation"]

log = logging.getLogger(__name__)

ADAPTATION_FILE = Path(__file__).resolve().parent / "data" / "sketch_adaptation.npz"


@dataclass(frozen=True)
class SketchAdaptation:
    """``q -> (q - sketch_mean) + ((q - sketch_mean) @ u) @ v.T + drawing_mean`` for raw descriptors ``q``."""

    sketch_mean: np.ndarray  # (d,)
    drawing_mean: np.ndarray  # (d,)
    u: np.ndarray  # (d, r): U scaled by the singular values
    v: np.ndarray  # (d, r)
    backbone: str  # the drawing descriptor's backbone it was fitted for

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """Adapted raw descriptor(s) ``q`` (d,) or (n, d), float32."""
        x = np.asarray(q, np.float64) - self.sketch_mean
        return (x + (x @ self.u) @ self.v.T + self.drawing_mean).astype(np.float32)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + "sketch_mean": self.sketch_mean.astype(np.float32),
                prefix + "drawing_mean": self.drawing_mean.astype(np.float32),
                prefix + "u": self.u.astype(np.float16), prefix + "v": self.v.astype(np.float16)}

    def save(self, path: Path, reverse: SketchAdaptation | None = None) -> None:
        """Write the map (and the one fitted on the other half of the classes, ``reverse``) to ``path``."""
        from .atomic import atomic_write

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, backbone=np.array(self.backbone), **self.arrays(),
                         **(reverse.arrays("reverse_") if reverse is not None else {}))

        atomic_write(path, write)

    @classmethod
    def fit(cls, sketches: np.ndarray, drawings: np.ndarray, *, lam: float, rank: int, backbone: str
            ) -> SketchAdaptation:
        """Fit on pairs: ``sketches`` (n, d) raw query descriptors, ``drawings`` (n, d) the raw descriptors of
        the drawings of their photos."""
        x = np.asarray(sketches, np.float64)
        y = np.asarray(drawings, np.float64)
        ms, my = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - ms, y - my
        d = x.shape[1]
        w = np.linalg.solve(xc.T @ xc + lam * np.eye(d), xc.T @ yc + lam * np.eye(d))
        u, s, vt = np.linalg.svd(w - np.eye(d))
        r = min(rank, d)
        return cls(ms, my, u[:, :r] * s[:r], vt[:r].T, backbone)


#: the map in use instead of the shipped one (``use_adaptation``: the benchmark's other direction)
_IN_USE: list = []


@contextlib.contextmanager
def use_adaptation(a: SketchAdaptation | None):
    """Queries described inside use ``a`` (None: none) instead of the shipped map: the benchmarks report the
    classes the shipped map was fitted on with the map fitted on the other half (``load_adaptation(reverse=True)``)."""
    _IN_USE.append(a)
    try:
        yield a
    finally:
        _IN_USE.pop()


@functools.cache
def load_adaptation(path: str | None = None, *, reverse: bool = False) -> SketchAdaptation | None:
    """The shipped adaptation (None where the file is absent or unreadable: the plain descriptor is used);
    ``reverse``: the one fitted on the other half of the classes, kept beside it for the benchmarks."""
    p = Path(path) if path else ADAPTATION_FILE
    pre = "reverse_" if reverse else ""
    try:
        with np.load(p) as z:
            a = SketchAdaptation(z[pre + "sketch_mean"].astype(np.float64), z[pre + "drawing_mean"].astype(np.float64),
                                 z[pre + "u"].astype(np.float64), z[pre + "v"].astype(np.float64), str(z["backbone"]))
    except FileNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001 -- a damaged file must not stop searching
        log.warning("sketch adaptation %s not used (%s)", p, e)
        return None
    if a.u.shape != a.v.shape or a.sketch_mean.shape != a.drawing_mean.shape or a.u.shape[0] != len(a.sketch_mean):
        log.warning("sketch adaptation %s not used (inconsistent shapes)", p)
        return None
    return a


def adapt_sketch(raw: np.ndarray, backbone: str) -> np.ndarray:
    """A query sketch's raw global descriptor(s), adapted where the shipped map fits ``backbone`` and the
    descriptor's length (else as they are)."""
    a = _IN_USE[-1] if _IN_USE else load_adaptation()
    raw = np.asarray(raw)
    if a is None or a.backbone != backbone or raw.shape[-1] != len(a.sketch_mean):
        return raw
    return a(raw)

