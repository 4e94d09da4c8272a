"""Translation as a trigonometric polynomial of the shift (METHOD.md section 5).

Moving every point by ``d`` rotates each (cos, sin) pair of the spatial feature map:
``Psi'(p + d) = R(d) Psi'(p)`` with ``R(d) = sum_j t_j(d) B_j``, where
``t(d) = [1, cos(w1 d), sin(w1 d), ...]`` are the *trigonometric terms* of the shift and ``B_j`` fixed
matrices.  Hence the similarity of a database descriptor ``P`` with the query shifted by ``(dx, dy)`` is
``S(dx, dy) = sum_jl t_j(dx) t_l(dy) C_jl`` with coefficients ``C = P^T W`` and
``W[:, (j, l)] = (B_j (x) B_l (x) I) q``: one small matrix product gives every image's polynomial, and
a second one evaluates it at all candidate shifts.
"""
from __future__ import annotations

import numpy as np

from .afm import FeatureLayout
from .settings import SketchSettings


def trig_terms(freqs: np.ndarray, d) -> np.ndarray:
    """Trigonometric terms of shifts.

    Parameters
    ----------
    freqs : (F,) float, ``freqs[0] == 0``
    d : (S,) float, shifts in pixels

    Returns
    -------
    t : (S, 2F - 1) float64 ndarray, columns ``[1, cos(w1 d), sin(w1 d), cos(w2 d), ...]``.
    """
    d = np.atleast_1d(np.asarray(d, np.float64))
    arg = d[:, None] * np.asarray(freqs[1:], np.float64)[None, :]
    out = np.empty((d.size, 2 * len(freqs) - 1))
    out[:, 0] = 1.0
    out[:, 1::2] = np.cos(arg)
    out[:, 2::2] = np.sin(arg)
    return out


def rotation_basis(n_freq: int) -> np.ndarray:
    """Matrices ``B`` (2F-1, 2F-1, 2F-1) with ``R(d) = sum_j t_j(d) B[j]`` and ``R(d) Psi'(p) = Psi'(p + d)``."""
    dim = 2 * n_freq - 1
    basis = np.zeros((dim, dim, dim))
    basis[0, 0, 0] = 1.0
    for f in range(1, n_freq):
        c, s = 2 * f - 1, 2 * f
        basis[c, c, c] = basis[c, s, s] = 1.0  # cos(w d) * identity on the pair
        basis[s, c, s] = -1.0  # sin(w d) * [[0, -1], [1, 0]]
        basis[s, s, c] = 1.0
    return basis


def rotation(freqs: np.ndarray, d: float) -> np.ndarray:
    """(2F-1, 2F-1) matrix moving a feature vector by ``d`` pixels."""
    return np.einsum("j,jab->ab", trig_terms(freqs, [d])[0], rotation_basis(len(freqs)))


def shift_descriptor(v: np.ndarray, dx: float, dy: float, layout: FeatureLayout) -> np.ndarray:
    """Descriptor (canonical, (D,)) of the same points moved by ``(dx, dy)``, by rotating its phases."""
    t = v.reshape(layout.dims)
    rx, ry = rotation(layout.freqs_xy, dx), rotation(layout.freqs_xy, dy)
    return np.einsum("ab,cd,bde->ace", rx, ry, t, optimize=True).ravel()


def poly_matrix(q: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    """Coefficient matrix ``W`` (D, Dx * Dy) of a (weighted, canonical) query: ``C = P @ W``.

    ``P @ W @ kron(t(dx), t(dy))`` equals ``P . shift_descriptor(q, dx, dy)``.
    """
    b = rotation_basis(len(layout.freqs_xy))
    w = np.einsum("jab,lcd,bde->acejl", b, b, q.reshape(layout.dims), optimize=True)
    return w.reshape(q.size, -1)


def poly_matrix_1d(q: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    """Coefficient matrix (Dx * Dphi, Dx) of a 1-D projection (ordered (a, c)) of a weighted query."""
    b = rotation_basis(len(layout.freqs_xy))
    w = np.einsum("jab,bc->acj", b, q.reshape(layout.dims[0], layout.dims[2]), optimize=True)
    return w.reshape(q.size, -1)


def shift_values(settings: SketchSettings, scale: float) -> np.ndarray:
    """1-D candidate shifts (g,) at a query scale: range ``max_shift / s``, step ``shift_step * s``."""
    step = settings.shift_step * scale
    n = int(np.floor(settings.max_shift / scale / step + 1e-9))
    return step * np.arange(-n, n + 1, dtype=np.float64)


def coarse_shift_values(settings: SketchSettings, scale: float) -> np.ndarray:
    """Coarse 1-D shifts (g,) for a shortlist: the same range as ``shift_values``, a fixed step of
    ``2 * shift_step`` working pixels (5 x 5 shifts at scales 1 and 0.8, 7 x 7 at 0.6 by default)."""
    step = 2.0 * settings.shift_step
    n = int(np.floor(settings.max_shift / scale / step + 1e-9))
    return step * np.arange(-n, n + 1, dtype=np.float64)


def grid_terms(freqs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Terms (Dx * Dy, g * g) of the 2-D grid ``values x values``.

    Column ``ix * g + iy`` holds the terms of the shift (values[ix], values[iy]).
    """
    t = trig_terms(freqs, values)
    return np.einsum("xj,yl->jlxy", t, t).reshape(t.shape[1] ** 2, -1)
