"""Similarity as a function of rotation: a polar descriptor per side and a trigonometric polynomial of
the angle (METHOD.md section 8; papers/003 orientation-covariant aggregation, eq. 23-26).

Each edge point p is written in polar coordinates about a centre: position angle ``phi``, normalised
radius ``rho = r / R`` in [0, 1] and its orientation relative to the position angle ``theta - phi``.
The descriptor is

    X = sum_p w_p  psi_phi(phi_p)  (x)  psi_rho(pi rho_p)  (x)  psi_theta(2 (theta_p - phi_p)),

each ``psi`` the explicit map of a von Mises kernel (:func:`engine.featuremaps.von_mises_coefficients`),
L2-normalised.  Rotating the image about the centre by ``delta`` (counter-clockwise on screen, as
``cv2.getRotationMatrix2D``) turns ``phi`` into ``phi - delta`` and leaves ``rho`` and ``theta - phi``
alone, so it only rotates the (cos n phi, sin n phi) pairs of ``X``:

    <X_delta | Y> = a_0 + sum_n a_n cos(n delta) + b_n sin(n delta),
    a_0 = <X_0|Y_0>,  a_n = <X_nc|Y_nc> + <X_ns|Y_ns>,  b_n = <X_ns|Y_nc> - <X_nc|Y_ns>,

the similarity for every angle from 2N + 1 sub-vector products.  A photo is described about its content disc
(:func:`content_disc`: the frame's, or that of a print pasted on a plain border), which makes it invariant to that
rescaling as well.  A mirror image (x -> -x) maps
``phi -> pi - phi`` and ``theta - phi -> -(theta - phi)``: a fixed sign pattern on ``X``
(:meth:`PolarLayout.mirror`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .edges import EdgeMap
from .featuremaps import feature_map, von_mises_coefficients, von_mises_kappa, von_mises_kernel
from .npnet import blas_threads

__all__ = ["PolarLayout", "PolarSettings", "RotationCurve", "best_rotation", "content_disc", "curve_coefficients",
           "descriptor_curve", "evaluate_curve", "photo_polar_descriptor", "polar_descriptor", "rotation_curve"]


@dataclass(frozen=True)
class PolarSettings:
    """Kernel widths and harmonics of the polar descriptor.

    ``sigma_*`` are Gaussian widths (radians) matched by von Mises kernels, ``n_*`` the numbers of
    frequencies (0 included).  Defaults: position angle sigma 0.3 rad (17 deg: sharp enough to place a
    peak within a degree or two; 11 frequencies keep the series' truncation error at 0.002, 9 would
    give 0.012), radius sigma 0.8 on ``pi rho`` (about a quarter of the radius) and relative
    orientation 0.8 on the doubled angle (as the sketch descriptor), 3 frequencies each (truncation
    error 0.055, as the sketch descriptor's orientation map).  21 x 5 x 5 = 525-D, 1,050 bytes per
    photo as float16.
    """

    n_phi: int = 11
    sigma_phi: float = 0.3
    n_rho: int = 3
    sigma_rho: float = 0.8
    n_theta: int = 3
    sigma_theta: float = 0.8

    def __post_init__(self) -> None:
        for name in ("n_phi", "n_rho", "n_theta"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sigma_phi", "sigma_rho", "sigma_theta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def dim(self) -> int:
        """Length of the descriptor: (2 n_phi - 1)(2 n_rho - 1)(2 n_theta - 1)."""
        return (2 * self.n_phi - 1) * (2 * self.n_rho - 1) * (2 * self.n_theta - 1)


#: length of the rotation descriptor an index stores for each photo (the default settings; 525)
POLAR_DIM = PolarSettings().dim


class PolarLayout:
    """Coefficients and index layout of a :class:`PolarSettings` descriptor.

    The descriptor is a (2 n_phi - 1, 2 n_rho - 1, 2 n_theta - 1) array flattened in C order: row 0 of
    the first axis is ``X_0``, rows ``2n - 1`` / ``2n`` are ``X_nc`` / ``X_ns``.
    """

    def __init__(self, settings: PolarSettings | None = None) -> None:
        self.settings = s = settings or PolarSettings()
        self.gamma_phi = von_mises_coefficients(s.n_phi, sigma=s.sigma_phi)
        self.gamma_rho = von_mises_coefficients(s.n_rho, sigma=s.sigma_rho)
        self.gamma_theta = von_mises_coefficients(s.n_theta, sigma=s.sigma_theta)
        self.shape = (2 * s.n_phi - 1, 2 * s.n_rho - 1, 2 * s.n_theta - 1)
        self.dim = int(np.prod(self.shape))
        self.n_harmonics = s.n_phi - 1

    @cached_property
    def mirror_signs(self) -> np.ndarray:
        """(dim,) signs turning a descriptor into that of the mirror image (x -> -x)."""
        n = np.arange(1, self.settings.n_phi)
        phi = np.ones(self.shape[0])
        phi[1::2] = (-1.0) ** n  # cos n(pi - phi) = (-1)^n cos n phi
        phi[2::2] = (-1.0) ** (n + 1)  # sin n(pi - phi) = (-1)^(n+1) sin n phi
        theta = np.ones(self.shape[2])
        theta[2::2] = -1.0  # sin of the negated relative orientation
        return np.multiply.outer(np.multiply.outer(phi, np.ones(self.shape[1])), theta).ravel()

    def mirror(self, x: np.ndarray) -> np.ndarray:
        """Descriptor(s) (..., dim) of the mirror images."""
        return np.asarray(x) * self.mirror_signs

    def kernel(self, d_phi, d_rho, d_theta) -> np.ndarray:
        """The exact kernel that the descriptor's dot product approximates (for tests): von Mises on the
        position-angle difference, ``pi`` times the radius difference and the doubled relative
        orientation difference."""
        s = self.settings
        return (von_mises_kernel(d_phi, von_mises_kappa(s.sigma_phi))
                * von_mises_kernel(np.pi * np.asarray(d_rho), von_mises_kappa(s.sigma_rho))
                * von_mises_kernel(2 * np.asarray(d_theta), von_mises_kappa(s.sigma_theta)))


def _layout(layout: PolarLayout | None) -> PolarLayout:
    return layout if layout is not None else default_layout()


_DEFAULT: list[PolarLayout] = []


def default_layout() -> PolarLayout:
    if not _DEFAULT:
        _DEFAULT.append(PolarLayout())
    return _DEFAULT[0]


def polar_points(edges: EdgeMap, *, centre: tuple[float, float] = (0.0, 0.0), radius: float | None = None):
    """(phi, rho, relative orientation, w) of an edge map's points within ``radius`` of ``centre``
    (working-frame coordinates; default radius: half the shorter side, the largest circle that a
    rotation about the frame's centre keeps inside the frame)."""
    if radius is None:
        radius = min(edges.width, edges.height) / 2.0
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    dx = np.asarray(edges.x, np.float64) - centre[0]
    dy = np.asarray(edges.y, np.float64) - centre[1]
    r = np.hypot(dx, dy)
    keep = r <= radius
    phi = np.arctan2(dy[keep], dx[keep])
    return phi, r[keep] / radius, np.asarray(edges.theta, np.float64)[keep] - phi, \
        np.asarray(edges.w, np.float64)[keep]


#: share of a photo's disc that its descriptor covers: the ring just inside the disc's edge is left out, where
#: the outline of a print (its edge against the page) would add edges that the photo itself lacks
INNER = 0.95


def content_disc(image: np.ndarray, *, tolerance: float = 0.05, min_border: float = 0.6, min_fill: float = 0.9,
                 min_area: float = 0.1, min_plain: float = 0.9) -> tuple[tuple[float, float], float]:
    """(centre, radius) in working-frame coordinates of the disc that a photo's polar descriptor covers.

    A photo is described about the centre of its frame, out to half its shorter side.  A *print on a page*
    (the photo shrunk, turned and pasted on a plain border: a re-photographed or re-scanned print, a
    letterboxed frame) is described about the centre of the print, out to half the print's shorter side: the
    disc then holds the same content as the photo's own disc, at any size and angle, so the descriptor is
    invariant to that rescaling too.  The print is found on the pixels: the frame's outermost ring is mostly
    (``min_border``) of one colour (within ``tolerance``); the border is the region of that colour connected
    to the frame's edge; what is left is a print where the convex hull of its largest part fills at least
    ``min_fill`` of its smallest bounding rectangle, any angle, and ``min_area`` of the frame, and where the
    border covers at least ``min_plain`` of the frame outside that hull (a page is plain: a textured ground, such
    as wood grain whose outer ring happens to be mostly of one colour, leaves much of it uncovered; a photo of a
    cup on a wooden table turned by 90 deg and saved at another JPEG quality was taken for a print and described
    about another centre, 0.68 against its original instead of 1.0).

    ``image``: (h, w, 3) float RGB in [0, 1] at the edge map's working resolution (``edges.working_image``).
    """
    import cv2

    img = np.asarray(image, np.float32)
    h, w = img.shape[:2]
    frame = ((0.0, 0.0), min(w, h) / 2.0)
    if img.ndim != 3 or h < 3 or w < 3:
        return frame
    ring = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    colour = np.median(ring, axis=0)
    near = _near(img, colour, tolerance)
    if np.concatenate([near[0], near[-1], near[1:-1, 0], near[1:-1, -1]]).mean() < min_border:
        return frame
    n, labels = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    outer = np.zeros(n, bool)  # the labels that touch the frame's edge (0: the pixels not near)
    outer[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    outer[0] = False
    border = outer[labels] & near  # as np.isin(labels, those labels), a table look-up instead of a sort
    contours, _ = cv2.findContours((~border).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return frame
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    area = cv2.contourArea(hull)
    (cx, cy), (rw, rh), _ = cv2.minAreaRect(hull)
    if area < min_area * w * h or area < min_fill * rw * rh:
        return frame
    inside = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    outside = inside == 0
    if outside.any() and border[outside].mean() < min_plain:
        return frame
    radius = min(min(rw, rh) / 2.0, cx + 0.5, w - 0.5 - cx, cy + 0.5, h - 0.5 - cy)
    if not radius > 1.0:
        return frame
    return (float(cx - (w - 1) / 2.0), float(cy - (h - 1) / 2.0)), float(radius)


def _near(img: np.ndarray, colour: np.ndarray, tolerance: float) -> np.ndarray:
    """(h, w) bool: the pixels of ``img`` (h, w, c) float32 whose every channel is within ``tolerance`` of
    ``colour`` (c,) float32, as ``np.max(np.abs(img - colour), axis=2) <= tolerance`` (NaN: not near).

    numpy's reduction over a 3-long last axis took 4 ms on a 400 x 300 image; OpenCV's ``absdiff`` by a
    scalar (the same float32 |difference|) and ``np.maximum`` over the channels take 0.2 ms."""
    import cv2

    h, w, channels = img.shape
    if 1 <= channels <= 4 and h > 1 and w > 1:  # (OpenCV takes a single row or column for a scalar)
        diff = cv2.absdiff(np.ascontiguousarray(img), tuple(float(v) for v in colour))
        diff = diff.reshape(img.shape)  # OpenCV returns one channel as (h, w)
    else:
        diff = np.abs(img - colour)
    top = diff[:, :, 0].copy()
    for c in range(1, channels):
        np.maximum(top, diff[:, :, c], out=top)  # propagates NaN, as np.max
    return top <= tolerance


def photo_polar_descriptor(edges: EdgeMap, image: np.ndarray | None = None,
                           layout: PolarLayout | None = None) -> np.ndarray:
    """(dim,) polar descriptor of a photo as an index stores it: about the centre of :func:`content_disc`
    (the frame's, or a print's on a plain border) out to :data:`INNER` of its radius.  ``image``: the working
    image the edges were detected on (without it: the frame's disc)."""
    centre, radius = content_disc(image) if image is not None else ((0.0, 0.0), min(edges.width, edges.height) / 2.0)
    return polar_descriptor(edges, layout, centre=centre, radius=INNER * radius)


def encode_polar(phi, rho, rel, w, layout: PolarLayout | None = None, *, normalise: bool = True) -> np.ndarray:
    """(dim,) descriptor of points given in polar form (see :func:`polar_points`)."""
    lay = _layout(layout)
    s = lay.settings
    fp = feature_map(phi, np.arange(s.n_phi), np.sqrt(lay.gamma_phi))
    fr = feature_map(np.pi * np.asarray(rho), np.arange(s.n_rho), np.sqrt(lay.gamma_rho))
    ft = feature_map(2 * np.asarray(rel), np.arange(s.n_theta), np.sqrt(lay.gamma_theta))
    w = np.asarray(w, np.float64)
    # x[i, j, k] = sum_p w_p fp[p, i] fr[p, j] ft[p, k]: one matrix product with the (j, k) products of each
    # point (np.einsum's own loop took 5 ms for 3,000 points, the product 0.15 ms); on one BLAS thread, as
    # the other small products of the engine (npnet.blas_threads: where other work competes for the cores,
    # OpenBLAS's waiting threads made it 60 times slower)
    frt = (fr[:, :, None] * ft[:, None, :]).reshape(len(fr), fr.shape[1] * ft.shape[1])
    with blas_threads(1):
        x = ((fp * w[:, None]).T @ frt).ravel()
    if normalise:
        n = float(np.linalg.norm(x))
        x = x / n if n > 0 else x
    return x


def polar_descriptor(edges: EdgeMap, layout: PolarLayout | None = None, *,
                     centre: tuple[float, float] = (0.0, 0.0), radius: float | None = None) -> np.ndarray:
    """(dim,) L2-normalised polar descriptor of an edge map about ``centre`` (working-frame pixels)."""
    return encode_polar(*polar_points(edges, centre=centre, radius=radius), layout)


def curve_coefficients(x: np.ndarray, y: np.ndarray, layout: PolarLayout | None = None) -> np.ndarray:
    """(..., 2N + 1) coefficients ``[a_0, a_1, b_1, ..., a_N, b_N]`` of ``<X_delta | Y>``.

    ``x`` (..., dim) and ``y`` (..., dim) broadcast against each other (one query against many photos:
    ``x`` (dim,), ``y`` (M, dim)).
    """
    lay = _layout(layout)
    k = lay.shape[0]
    xs = np.asarray(x, np.float64).reshape(*np.shape(x)[:-1], k, -1)
    ys = np.asarray(y, np.float64).reshape(*np.shape(y)[:-1], k, -1)
    xc, xs_, yc, ys_ = xs[..., 1::2, :], xs[..., 2::2, :], ys[..., 1::2, :], ys[..., 2::2, :]
    a0 = np.sum(xs[..., 0, :] * ys[..., 0, :], axis=-1)
    a = np.sum(xc * yc + xs_ * ys_, axis=-1)
    b = np.sum(xs_ * yc - xc * ys_, axis=-1)
    out = np.empty((*np.broadcast_shapes(a0.shape), 2 * a.shape[-1] + 1))
    out[..., 0] = a0
    out[..., 1::2] = a
    out[..., 2::2] = b
    return out


def fourier_basis(angles_rad: np.ndarray, n: int) -> np.ndarray:
    """(len(angles), 2n + 1) [1, cos d, sin d, cos 2d, sin 2d, ...]."""
    m = np.multiply.outer(angles_rad, np.arange(1, n + 1))
    out = np.empty((len(angles_rad), 2 * n + 1))
    out[:, 0] = 1.0
    out[:, 1::2] = np.cos(m)
    out[:, 2::2] = np.sin(m)
    return out


def evaluate_curve(coeffs: np.ndarray, angles_deg) -> np.ndarray:
    """Similarities (..., len(angles)) of coefficient vectors (..., 2N + 1) at angles in degrees."""
    c = np.asarray(coeffs, np.float64)
    n = (c.shape[-1] - 1) // 2
    return c @ fourier_basis(np.radians(np.asarray(angles_deg, np.float64)), n).T


def best_rotation(coeffs: np.ndarray, *, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(angle in degrees, similarity) of each curve's maximum: a grid of ``step`` degrees, then Newton
    steps on the polynomial's derivative from the best grid point."""
    c = np.atleast_2d(np.asarray(coeffs, np.float64))
    n = (c.shape[-1] - 1) // 2
    grid = np.arange(0.0, 360.0, step)
    vals = evaluate_curve(c, grid)
    d = np.radians(grid[np.argmax(vals, axis=1)])
    k = np.arange(1, n + 1)
    a, b = c[:, 1::2], c[:, 2::2]
    for _ in range(4):
        kd = np.multiply.outer(d, k)
        d1 = np.sum(k * (b * np.cos(kd) - a * np.sin(kd)), axis=1)
        d2 = -np.sum(k * k * (a * np.cos(kd) + b * np.sin(kd)), axis=1)
        step_ok = d2 < 0
        d = np.where(step_ok, d - np.clip(d1 / np.where(step_ok, d2, -1.0), -np.radians(step), np.radians(step)),
                     d)
    best = np.degrees(d) % 360.0
    sims = np.array([evaluate_curve(ci, [bi])[0] for ci, bi in zip(c, best, strict=True)])
    shape = np.shape(coeffs)[:-1]
    return best.reshape(shape), sims.reshape(shape)


@dataclass(frozen=True)
class RotationCurve:
    """Similarity versus rotation of the query (degrees, counter-clockwise on screen)."""

    angles: np.ndarray  # (K,) degrees, 0 <= a < 360
    similarities: np.ndarray  # (K,)
    best_angle: float
    best_similarity: float
    mirrored: bool  # the curve is that of the mirrored query (it matched better)
    coefficients: np.ndarray  # (2N + 1,)


def rotation_curve(query: EdgeMap, hit: EdgeMap, *, query_centre=(0.0, 0.0), query_radius: float | None = None,
                   hit_centre=(0.0, 0.0), hit_radius: float | None = None, mirror: bool = False,
                   step: float = 1.0, layout: PolarLayout | None = None) -> RotationCurve:
    """The curve of ``query`` rotated by each angle against ``hit`` (and, with ``mirror``, that of the
    mirrored query where its maximum is higher).  Centres and radii in each map's working frame."""
    lay = _layout(layout)
    return descriptor_curve(polar_descriptor(query, lay, centre=query_centre, radius=query_radius),
                            polar_descriptor(hit, lay, centre=hit_centre, radius=hit_radius),
                            mirror=mirror, step=step, layout=lay)


def descriptor_curve(x: np.ndarray, y: np.ndarray, *, mirror: bool = False, step: float = 1.0,
                     layout: PolarLayout | None = None) -> RotationCurve:
    """:func:`rotation_curve` of two polar descriptors (``x``: the query)."""
    lay = _layout(layout)
    coeffs = curve_coefficients(x, y, lay)
    mirrored = False
    if mirror:
        cm = curve_coefficients(lay.mirror(x), y, lay)
        if best_rotation(cm, step=step)[1] > best_rotation(coeffs, step=step)[1]:
            coeffs, mirrored = cm, True
    angles = np.arange(0.0, 360.0, step)
    best, sim = best_rotation(coeffs, step=step)
    return RotationCurve(angles, evaluate_curve(coeffs, angles), float(best), float(sim), mirrored, coeffs)


def rotate_edges(edges: EdgeMap, degrees: float) -> EdgeMap:
    """The edge map's points rotated about the frame's centre by ``degrees`` counter-clockwise on screen
    (the exact point transform that the curve predicts; for tests and checks)."""
    import dataclasses

    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    x, y = np.asarray(edges.x, np.float64), np.asarray(edges.y, np.float64)
    # y grows downwards: a counter-clockwise turn on screen is x' = c x + s y, y' = -s x + c y
    return dataclasses.replace(edges, x=(c * x + s * y).astype(np.float32), y=(-s * x + c * y).astype(np.float32),
                               theta=np.mod(np.asarray(edges.theta, np.float64) - t, np.pi).astype(np.float32))
