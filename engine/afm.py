"""Asymmetric feature maps and the sketch / edge-map descriptor (METHOD.md sections 3-4).

A contour point ``p = (x, y, theta, w)`` is embedded as ``w * Psi'(x) (x) Psi'(y) (x) Psi'(2 theta)``
with the *unweighted* database-side feature maps ``Psi'(p) = [1, cos(w1 p), sin(w1 p), ...]``; the
image descriptor ``V'(P)`` is their sum.  One database descriptor serves every kernel: the query side
carries the kernel weights, ``V_i(Q) = D_i V'(Q)`` with ``D_i = diag(d_x,i (x) d_y,i (x) d_phi)``, so
``V_i(Q) . V'(P) = sum_q sum_p w_p k_i(qx - px) k_i(qy - py) k_phi(2 qtheta - 2 ptheta)``.
The norm of ``P`` under kernel ``i`` is ``sqrt(V'(P)^T D_i V'(P))``; storing it per image and kernel is
all cosine similarity needs.

Descriptor layout (canonical): a (Dx, Dy, Dphi) tensor flattened row-major; index
``(a, b, c) -> (a * Dy + b) * Dphi + c``.  Component 0 of each factor is the constant (frequency 0),
then (cos, sin) pairs per frequency.  The x projection ``V_x`` is the slice ``b = 0`` (the constant of y),
the y projection the slice ``a = 0``.

Stored descriptors use a *storage order* that puts both projections first (x projection, then the rest
of the y projection, then everything else), so the shortlist stage reads one contiguous column block.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .edges import EdgeMap
from .featuremaps import default_spatial_fit, feature_map, von_mises_coefficients
from .settings import SketchSettings

#: kinds of norm stored per image and kernel
NORM_KINDS = ("xy", "x", "y")


@dataclass(frozen=True)
class FeatureLayout:
    """Frequencies and kernel weights of one descriptor setting.

    Attributes
    ----------
    settings : SketchSettings
    freqs_xy : (Fx,) float64
        Spatial frequencies (rad / px), ``freqs_xy[0] == 0``.
    alphas_xy : (K, Fx) float64
        Spatial kernel weights, one row per query scale.
    freqs_phi : (Fphi,) float64
        Integer frequencies of the doubled orientation angle.
    alpha_phi : (Fphi,) float64
        Orientation kernel weights.
    """

    settings: SketchSettings
    freqs_xy: np.ndarray
    alphas_xy: np.ndarray
    freqs_phi: np.ndarray
    alpha_phi: np.ndarray

    @classmethod
    def from_settings(cls, settings: SketchSettings) -> FeatureLayout:
        fit = default_spatial_fit(settings.n_freq_xy, settings.sigmas)
        phi = np.arange(settings.n_freq_phi, dtype=np.float64)
        return cls(settings, np.asarray(fit.freqs, np.float64), np.asarray(fit.alphas, np.float64),
                   phi, np.asarray(von_mises_coefficients(settings.n_freq_phi, sigma=settings.sigma_phi)))

    @property
    def dims(self) -> tuple[int, int, int]:
        s = self.settings
        return s.dim_xy, s.dim_xy, s.dim_phi

    @property
    def n_kernels(self) -> int:
        return self.alphas_xy.shape[0]

    # -- per-component kernel weights -------------------------------------------------------------
    @staticmethod
    def _expand(alpha: np.ndarray) -> np.ndarray:
        """Weights per feature-map component: [a0, a1, a1, a2, a2, ...]."""
        return np.concatenate([alpha[:1], np.repeat(alpha[1:], 2)])

    def component_weights(self, kernel: int) -> tuple[np.ndarray, np.ndarray]:
        """(Dx,) spatial and (Dphi,) orientation component weights of a kernel."""
        return self._expand(self.alphas_xy[kernel]), self._expand(self.alpha_phi)

    def kernel_diag(self, kernel: int) -> np.ndarray:
        """(D,) diagonal ``D_i`` in canonical order."""
        wx, wp = self.component_weights(kernel)
        return np.einsum("a,b,c->abc", wx, wx, wp).ravel()

    def projection_diag(self, kernel: int) -> np.ndarray:
        """(Dx * Dphi,) diagonal of a 1-D projection's kernel (spatial (x) orientation)."""
        wx, wp = self.component_weights(kernel)
        return np.outer(wx, wp).ravel()

    # -- index sets -----------------------------------------------------------------------------------
    @cached_property
    def x_index(self) -> np.ndarray:
        """Canonical indices of the x projection (b = 0), ordered (a, c)."""
        dx, dy, dp = self.dims
        a, c = np.meshgrid(np.arange(dx), np.arange(dp), indexing="ij")
        return ((a * dy) * dp + c).ravel()

    @cached_property
    def y_index(self) -> np.ndarray:
        """Canonical indices of the y projection (a = 0), ordered (b, c)."""
        _, dy, dp = self.dims
        b, c = np.meshgrid(np.arange(dy), np.arange(dp), indexing="ij")
        return (b * dp + c).ravel()

    @cached_property
    def storage_order(self) -> np.ndarray:
        """(D,) canonical index of each stored column: x projection, rest of y projection, the rest."""
        dp = self.dims[2]
        first = np.concatenate([self.x_index, self.y_index[dp:]])
        rest = np.setdiff1d(np.arange(self.settings.dim), first)
        return np.concatenate([first, rest])

    @property
    def n_projection_columns(self) -> int:
        """Stored columns ``[:n]`` hold both 1-D projections."""
        dx, dy, dp = self.dims
        return (dx + dy - 1) * dp

    @cached_property
    def x_columns(self) -> np.ndarray:
        """Stored-column positions of the x projection, in (a, c) order."""
        return np.arange(self.dims[0] * self.dims[2])

    @cached_property
    def y_columns(self) -> np.ndarray:
        """Stored-column positions of the y projection, in (b, c) order."""
        dx, _, dp = self.dims
        return np.concatenate([np.arange(dp), dx * dp + np.arange(self.n_projection_columns - dx * dp)])


# -- encoding -------------------------------------------------------------------------------------------

def encode_points(x, y, theta, w, layout: FeatureLayout) -> np.ndarray:
    """Unweighted (database-side) descriptor ``V'(P)`` of a set of contour points.

    Parameters
    ----------
    x, y : (N,) array
        Coordinates in pixels (any origin; descriptors of the same points under a shift differ by a
        phase rotation, see ``shifts.shift_descriptor``).
    theta : (N,) array
        Orientation mod pi.
    w : (N,) array
        Point weights.
    layout : FeatureLayout

    Returns
    -------
    v : (D,) float64 ndarray, canonical order.
    """
    x, y, theta, w = (np.asarray(a, np.float64).ravel() for a in (x, y, theta, w))
    if not (x.shape == y.shape == theta.shape == w.shape):
        raise ValueError("x, y, theta and w must have the same length")
    fx = feature_map(x, layout.freqs_xy) * w[:, None]
    fy = feature_map(y, layout.freqs_xy)
    fp = feature_map(2.0 * theta, layout.freqs_phi)
    fyp = (fy[:, :, None] * fp[:, None, :]).reshape(len(x), fy.shape[1] * fp.shape[1])
    return (fx.T @ fyp).ravel()


def encode_edges(edges: EdgeMap, layout: FeatureLayout) -> np.ndarray:
    """Database descriptor ``V'(P)`` (D,) float64 of an edge map, coordinates from its centre."""
    return encode_points(edges.x, edges.y, edges.theta, edges.w, layout)


def quantize(v: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric 1-byte quantisation: ``v ~ codes * step``.

    Returns
    -------
    codes : (D,) int8 ndarray
    step : float (0 for an all-zero descriptor)
    """
    peak = float(np.max(np.abs(v))) if v.size else 0.0
    if peak == 0.0:
        return np.zeros(v.shape, np.int8), 0.0
    step = peak / 127.0
    return np.clip(np.rint(v / step), -127, 127).astype(np.int8), step


def norms(v: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    """Kernel norms of a (canonical) descriptor: (K, 3) for kinds ``NORM_KINDS`` (2-D, x, y)."""
    out = np.empty((layout.n_kernels, 3))
    vx, vy = v[layout.x_index], v[layout.y_index]
    for k in range(layout.n_kernels):
        pd = layout.projection_diag(k)
        out[k] = [v @ (layout.kernel_diag(k) * v), vx @ (pd * vx), vy @ (pd * vy)]
    return np.sqrt(np.maximum(out, 0.0))


@dataclass(frozen=True)
class StoredDescriptor:
    """What the index keeps of one image: 1-byte codes in storage order and 9 scalars.

    ``inv_norms[k, j] = step / norm_kj`` turns a dot product of the codes with a query vector into a
    cosine (0 for an image without edges).
    """

    codes: np.ndarray  # (D,) int8, storage order
    inv_norms: np.ndarray  # (K, 3) float32


def database_descriptor(edges: EdgeMap, layout: FeatureLayout) -> StoredDescriptor:
    """Encode, quantise and normalise one photo's edge map."""
    v = encode_edges(edges, layout)
    codes, step = quantize(v)
    deq = codes.astype(np.float64) * step  # norms of what is stored, so self-similarity is exactly 1
    n = norms(deq, layout)
    inv = np.divide(step, n, out=np.zeros_like(n), where=n > 0)
    return StoredDescriptor(codes[layout.storage_order], inv.astype(np.float32))


@dataclass(frozen=True)
class SketchQuery:
    """A sketch encoded at every query scale, plain and mirrored.

    Attributes
    ----------
    edges : EdgeMap
        The sketch at scale 1 (longer side ``max_side``).
    desc : (n_scales, 2, D) float64
        Unweighted descriptors ``V'`` of the sketch points scaled by each query scale; index 1 of
        axis 1 is the horizontally mirrored sketch.
    spread : (2,) float64
        Standard deviation of the sketch's x and y coordinates (which projection is more discriminative).
    """

    edges: EdgeMap
    desc: np.ndarray
    spread: np.ndarray


def encode_query(edges: EdgeMap, layout: FeatureLayout) -> SketchQuery:
    """Encode a sketch's edge map at all query scales, plain and mirrored (x -> -x, theta -> pi - theta)."""
    if len(edges) == 0:
        raise ValueError("sketch is empty: no strokes found")
    scales = layout.settings.scales
    desc = np.empty((len(scales), 2, layout.settings.dim))
    mirrored_theta = np.mod(np.pi - edges.theta.astype(np.float64), np.pi)
    for i, s in enumerate(scales):
        desc[i, 0] = encode_points(edges.x * s, edges.y * s, edges.theta, edges.w, layout)
        desc[i, 1] = encode_points(-edges.x * s, edges.y * s, mirrored_theta, edges.w, layout)
    spread = np.array([np.std(edges.x), np.std(edges.y)], np.float64)
    return SketchQuery(edges, desc, spread)
