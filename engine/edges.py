"""Edge maps of photos and sketches: the shared ground of both (METHOD.md section 1).

A photo goes through a pluggable edge detector (registry :data:`DETECTORS`; the default
``"classical"`` is a colour-gradient detector with texture suppression, see
:class:`ClassicalDetector`), a sketch is binarised, cropped, resized and thinned.  Both end up as an
:class:`EdgeMap`: contour points with position, orientation (mod pi) and strength.
"""
from __future__ import annotations

import functools
import importlib
import logging
import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from .imageio import to_rgb

__all__ = [
    "DETECTORS",
    "CannyDetector",
    "ClassicalDetector",
    "EdgeDetector",
    "EdgeMap",
    "edges_from_maps",
    "get_detector",
    "hysteresis",
    "non_max_suppression",
    "photo_edges",
    "register_detector",
    "render_edges",
    "sketch_edges",
    "structure_orientation",
    "working_image",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeMap:
    """Contour points of one image in its working frame.

    The working frame is the image resized so that its longer side is ``max_side`` px (photos) or the
    sketch cropped to its strokes' bounding box and resized the same way.  Coordinates are in working-frame
    pixels with the origin at the frame's centre: ``x = col - (width - 1) / 2``,
    ``y = row - (height - 1) / 2`` (y grows downwards).

    Attributes
    ----------
    x, y : (N,) float32 ndarray
        Point coordinates, origin at the frame centre.
    theta : (N,) float32 ndarray
        Edge (tangent line) orientation in [0, pi), image axes (x right, y down), ``atan2(dy, dx) mod pi``.
    w : (N,) float32 ndarray
        Strength in (0, 1]; photos drop points below ``min_strength``; sketches have 1.
    width, height : int
        Working frame size in pixels.
    scale : float
        Working-frame pixels per original pixel (original = the image as loaded, after EXIF orientation;
        for sketches, the cropped region).
    origin : tuple of float
        (x0, y0) in original pixels of the working frame's top-left corner (0, 0 for photos; the crop's
        corner for sketches).  Original = origin + (col + 0.5) / scale - 0.5 for a working pixel ``col``.
    """

    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    w: np.ndarray
    width: int
    height: int
    scale: float = 1.0
    origin: tuple[float, float] = (0.0, 0.0)

    def __len__(self) -> int:
        return int(self.x.shape[0])


# --------------------------------------------------------------------------------------------------
# Detector interface and registry


@runtime_checkable
class EdgeDetector(Protocol):
    """What ``photo_edges`` needs from an edge detector.

    Attributes
    ----------
    name : str
        Registry name.

    Notes
    -----
    ``detector(rgb)`` takes (H, W, 3) float32 RGB in [0, 1] and returns ``(strength, orientation)``:

    strength : (H, W) float32 in [0, 1]
        Edge strength, already thin (one pixel across, e.g. after :func:`non_max_suppression`); 0 off
        edges.  ``photo_edges`` keeps pixels with ``strength >= min_strength`` (0.2 by default), so the
        scale should be meaningful across images, not normalised per image to its own maximum.
    orientation : (H, W) float32 in [0, pi)
        Edge tangent direction ``atan2(dy, dx) mod pi`` in image axes (x right, y down): 0 for a
        horizontal edge, pi/2 for a vertical one.  Only read where strength > 0.
    """

    name: str

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


#: Registered detector classes by name; ``get_detector`` builds (and caches) a default instance.
DETECTORS: dict[str, type] = {}
#: Detectors that live in their own module (heavy imports, optional extras), registered on first use.
PLUGINS: dict[str, str] = {"hed": "engine.hed"}


def register_detector(name: str):
    """Class decorator: register an edge detector class under ``name`` (and set its ``name``).

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"classical"``.
    """

    def decorate(cls: type) -> type:
        if name in DETECTORS and DETECTORS[name] is not cls:
            log.warning("edge detector %r re-registered: %s replaces %s", name, cls, DETECTORS[name])
        cls.name = name
        DETECTORS[name] = cls
        _default_instance.cache_clear()
        return cls

    return decorate


@functools.cache
def _default_instance(name: str):
    return DETECTORS[name]()


def get_detector(name: str) -> EdgeDetector:
    """The shared default-configured instance of a registered detector.

    Parameters
    ----------
    name : str
        A key of :data:`DETECTORS`.

    Raises
    ------
    ValueError
        If no detector of that name is registered (the message lists the known names).
    """
    if name not in DETECTORS and name in PLUGINS:
        importlib.import_module(PLUGINS[name])
    if name not in DETECTORS:
        known = ", ".join(sorted(set(DETECTORS) | set(PLUGINS))) or "(none)"
        raise ValueError(f"unknown edge detector {name!r}; known detectors: {known}")
    return _default_instance(name)


# --------------------------------------------------------------------------------------------------
# Building blocks (public: a learned detector can reuse them)


_PI32 = np.float32(np.pi)  # float32's pi, a little above pi: what ``np.mod`` of a float32 array by ``np.pi`` uses


def wrap_pi(angle: np.ndarray) -> np.ndarray:
    """Angles -> float32 in [0, pi) (float32 rounding can otherwise land exactly on pi); a new array."""
    a = np.asarray(angle)
    if a.dtype == np.float32 and a.size and a.min() >= 0.0 and a.max() < _PI32:
        # Already wrapped (a detector's orientation, wrapped again by edges_from_maps): np.mod (float32, by
        # float32's pi) would return every value as it is but -0.0, which it makes +0.0, as adding +0.0 does
        # -- at a tenth of its cost (NaN fails the test).
        return a + np.float32(0.0)
    a = np.mod(a, np.pi).astype(np.float32)
    a[a >= _PI32] = 0.0
    return a


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _derivatives(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences d/dx, d/dy (per channel), reflecting at the border."""
    k = np.array([[-0.5, 0.0, 0.5]], np.float32)
    gx = cv2.filter2D(img, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
    gy = cv2.filter2D(img, cv2.CV_32F, k.T, borderType=cv2.BORDER_REFLECT)
    return gx, gy


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W) sum over channels (cv2.transform is ~10x faster than ndarray.sum here)."""
    return cv2.transform(a, np.ones((1, a.shape[2]), np.float32))


def structure_orientation(image: np.ndarray, *, sigma: float = 2.0, rho: float = 2.0) -> np.ndarray:
    """Tangent orientation of line-like structure from the structure tensor.

    Works on thin lines (sketch skeletons, a learned detector's ridge map) where the plain gradient is
    about zero at the centre line: the tensor collects the gradients of both flanks.

    Parameters
    ----------
    image : (H, W) float ndarray
        Ink / ridge strength (any scale).
    sigma : float
        Gaussian smoothing (px) before differentiation.
    rho : float
        Gaussian integration scale (px) of the tensor.

    Returns
    -------
    (H, W) float32 ndarray
        Tangent orientation ``atan2(dy, dx) mod pi`` in [0, pi), image axes (y down).
    """
    g = _gaussian(np.asarray(image, np.float32), sigma)
    gx, gy = _derivatives(g)
    jxx = _gaussian(gx * gx, rho)
    jxy = _gaussian(gx * gy, rho)
    jyy = _gaussian(gy * gy, rho)
    normal = 0.5 * np.arctan2(2.0 * jxy, jxx - jyy)  # dominant gradient direction
    return wrap_pi(normal + np.pi / 2)


def non_max_suppression(magnitude: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Thin a strength map to one-pixel ridges across the edge direction.

    Parameters
    ----------
    magnitude : (H, W) float ndarray
        Edge strength (>= 0).
    orientation : (H, W) float ndarray
        Edge tangent orientation (rad, mod pi); the comparison runs along the normal.

    Returns
    -------
    (H, W) float32 ndarray
        ``magnitude`` where it is a local maximum along the normal (bilinear samples at +-1 px;
        ties broken to one side so a symmetric two-pixel ridge keeps one pixel), else 0.
    """
    m = np.ascontiguousarray(magnitude, np.float32)
    h, w = m.shape
    nx = -np.sin(orientation).astype(np.float32)  # unit normal = tangent turned by 90 degrees
    ny = np.cos(orientation).astype(np.float32)
    cols = np.arange(w, dtype=np.float32)[None, :]
    rows = np.arange(h, dtype=np.float32)[:, None]
    fwd = cv2.remap(m, cols + nx, rows + ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    bwd = cv2.remap(m, cols - nx, rows - ny, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    keep = (m > fwd) & (m >= bwd) & (m > 0)
    return np.where(keep, m, np.float32(0))


def hysteresis(strength: np.ndarray, low: float, high: float, *, min_length: int = 0) -> np.ndarray:
    """Keep the connected chains of ``strength >= low`` that reach ``high`` somewhere.

    Parameters
    ----------
    strength : (H, W) float ndarray
        Thin edge strength.
    low, high : float
        Hysteresis thresholds.
    min_length : int
        Also drop chains (8-connected) with fewer pixels than this.

    Returns
    -------
    (H, W) bool ndarray
        The kept pixels.
    """
    weak = (strength >= low).astype(np.uint8)
    # the chains' pixel counts by np.bincount: connectedComponentsWithStats's boxes and centroids cost 6 times
    # the labelling
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[strength >= high]] = True  # repeated labels just set True again (np.unique would sort them)
    keep[0] = False
    if min_length > 1:
        keep &= np.bincount(labels.ravel(), minlength=n) >= min_length
    return np.take(keep, labels)


# --------------------------------------------------------------------------------------------------
# Detectors


@register_detector("classical")
class ClassicalDetector:
    """Colour-gradient edge detector with surround (texture) suppression.

    Steps, at the working resolution (longer side ~400 px):

    1. CIE Lab (perceptual units), Gaussian smoothing ``sigma``.
    2. Colour gradient: the largest eigenvalue of the Di Zenzo tensor summed over L, a, b
       (polarity-free, sees iso-luminant colour edges), scaled so a step of contrast ``c`` Lab units
       gives ``c`` at its centre.
    3. Surround suppression (Grigorescu et al. 2003): subtract ``alpha`` times the mean contrast in
       a ring around each pixel (a Gaussian of ``surround * sigma`` minus the centre); dense texture
       inhibits itself, an isolated contour hardly at all.
    4. Non-maximum suppression along the gradient, hysteresis on the strength and removal of chains
       shorter than ``min_length`` px.
    5. Strength ``w = 1 - exp(-c / contrast)``: an absolute scale (not per-image), so weak texture
       stays low; with the defaults ``w = 0.2`` is a step of about 6.7 Lab units after suppression
       (``L`` runs 0-100), ``w = 0.8`` one of about 48.

    Parameters
    ----------
    sigma : float
        Smoothing scale (px).
    alpha : float
        Surround suppression weight (0 disables it).
    surround : float
        Surround scale as a multiple of ``sigma``.
    contrast : float
        Lab contrast giving ``w = 1 - 1/e``.
    low, high : float
        Hysteresis thresholds on ``w``.
    min_length : int
        Shortest kept edge chain (px).

    Notes
    -----
    Defaults chosen on SYSU-Shapes outlines (``engine.bench.edges``; tuned on a third of the images):
    boundary F 0.441 at ``w >= 0.2`` against 0.398 for plain Canny (420 photos, 3 px tolerance at
    400 px), about 8 ms per 400-px photo on 2 cores.  With ``high = 0.4`` an isolated straight step
    needs about 21 Lab units to start a chain (``high = 0.3``: about 15 units, F 0.438, and more
    clutter on synthetic scenes); weaker pixels down to ``w = 0.2`` (about 7 units) are kept where
    they continue such a chain.
    """

    name = "classical"

    def __init__(self, *, sigma: float = 2.0, alpha: float = 1.0, surround: float = 4.0,
                 contrast: float = 30.0, low: float = 0.05, high: float = 0.4, min_length: int = 16):
        self.sigma = float(sigma)
        self.alpha = float(alpha)
        self.surround = float(surround)
        self.contrast = float(contrast)
        self.low = float(low)
        self.high = float(high)
        self.min_length = int(min_length)

    def __repr__(self) -> str:
        return (f"ClassicalDetector(sigma={self.sigma}, alpha={self.alpha}, surround={self.surround}, "
                f"contrast={self.contrast}, low={self.low}, high={self.high}, min_length={self.min_length})")

    def contrast_map(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colour contrast and orientation before thinning.

        Parameters
        ----------
        rgb : (H, W, 3) float32 ndarray
            RGB in [0, 1].

        Returns
        -------
        contrast : (H, W) float32 ndarray
            Step contrast in Lab units after surround suppression.
        orientation : (H, W) float32 ndarray
            Edge tangent orientation in [0, pi).
        """
        lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2Lab)
        lab = _gaussian(lab, self.sigma)
        gx, gy = _derivatives(lab)
        jxx, jxy, jyy = (_channel_sum(a * b) for a, b in ((gx, gx), (gx, gy), (gy, gy)))
        half_trace = 0.5 * (jxx + jyy)
        lam = half_trace + np.sqrt(np.maximum(half_trace * half_trace - (jxx * jyy - jxy * jxy), 0.0))
        step = math.sqrt(2.0 * math.pi) * max(self.sigma, 0.5)  # a step of height c peaks at c
        c = (np.sqrt(lam) * step).astype(np.float32)
        theta = wrap_pi(0.5 * np.arctan2(2.0 * jxy, jxx - jyy) + np.pi / 2)
        if self.alpha > 0:
            s = self.surround * self.sigma
            centre = (self.sigma / s) ** 2  # the share of G_s's mass that the centre G_sigma blob has
            ring = (_gaussian(c, s) - centre * _gaussian(c, self.sigma)) / (1.0 - centre)
            c = np.maximum(c - self.alpha * ring, 0.0)
        return c, theta

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, theta = self.contrast_map(rgb)
        c = non_max_suppression(c, theta)
        w = (1.0 - np.exp(-c / self.contrast)).astype(np.float32)
        kept = hysteresis(w, self.low, self.high, min_length=self.min_length)
        return np.where(kept, w, np.float32(0)), theta


@register_detector("canny")
class CannyDetector:
    """Plain OpenCV Canny on grey levels (a baseline): strength 1 on edges, Sobel orientation.

    Parameters
    ----------
    sigma : float
        Gaussian pre-smoothing (px).
    low, high : float or None
        Canny thresholds on the 8-bit Sobel magnitude; None: the usual automatic choice
        0.66 / 1.33 times the median grey level.
    """

    name = "canny"

    def __init__(self, *, sigma: float = 1.0, low: float | None = None, high: float | None = None):
        self.sigma = float(sigma)
        self.low = low
        self.high = high

    def __repr__(self) -> str:
        return f"CannyDetector(sigma={self.sigma}, low={self.low}, high={self.high})"

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2GRAY)
        grey8 = np.clip(_gaussian(grey, self.sigma) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if self.low is None or self.high is None:
            med = float(np.median(grey8))
            low, high = max(0.0, 0.66 * med), min(255.0, 1.33 * med)
        else:
            low, high = self.low, self.high
        edges = cv2.Canny(grey8, low, high, L2gradient=True) > 0
        gx = cv2.Sobel(grey8, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(grey8, cv2.CV_32F, 0, 1, ksize=3)
        theta = wrap_pi(np.arctan2(gy, gx) + np.pi / 2)
        return edges.astype(np.float32), theta


# --------------------------------------------------------------------------------------------------
# Photos


def _resize_factor(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` with the exact pixel-centre map ``dst = (src + 0.5) * factor - 0.5``."""
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size == (w, h) and factor == 1.0:
        return image
    interp = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR
    if round(w * factor) >= 1 and round(h * factor) >= 1:
        return cv2.resize(image, None, fx=factor, fy=factor, interpolation=interp)
    return cv2.resize(image, size, interpolation=interp)  # degenerate sliver: size wins


def photo_edges(image, *, detector="classical", max_side: int = 400,
                min_strength: float = 0.2) -> EdgeMap:
    """Edge map of a photo at the working resolution.

    Parameters
    ----------
    image : (H, W, 3) float32 ndarray or LoadedImage
        RGB in [0, 1] (any layout ``imageio.to_rgb`` accepts).  For a ``LoadedImage`` (possibly a
        reduced decode) ``scale`` refers to its ``original_size``.
    detector : str or EdgeDetector
        A registered detector name or a detector instance.
    max_side : int
        The image is resized so its longer side is this many px (area averaging when shrinking,
        bilinear when enlarging).
    min_strength : float
        Points with strength below this are dropped.

    Returns
    -------
    EdgeMap
        Points in row-major order, ``origin`` (0, 0), ``scale`` = working / original pixels.
    """
    work, scale = working_image(image, max_side)
    det = get_detector(detector) if isinstance(detector, str) else detector
    strength, theta = det(work)
    if strength.shape != work.shape[:2] or theta.shape != work.shape[:2]:
        raise ValueError(f"detector {getattr(det, 'name', det)!r} returned shapes {strength.shape}, "
                         f"{theta.shape} for a {work.shape[:2]} image")
    return edges_from_maps(strength, theta, scale=scale, min_strength=min_strength, name=getattr(det, "name", det))


def working_image(image, max_side: int = 400) -> tuple[np.ndarray, float]:
    """A photo resized for edge detection (the first step of :func:`photo_edges`).

    Returns
    -------
    work : (h, w, 3) float32 ndarray
        RGB in [0, 1], longer side ``max_side``.
    scale : float
        Working pixels per original pixel (for a ``LoadedImage``: of its ``original_size``).
    """
    original_size = getattr(image, "original_size", None)
    rgb = to_rgb(getattr(image, "pixels", image))
    h, w = rgb.shape[:2]
    factor = max_side / max(h, w)
    work = _resize_factor(rgb, factor)
    scale = factor
    if original_size is not None:
        scale = max(work.shape[:2]) / max(original_size)
    return work, scale


def edges_from_maps(strength: np.ndarray, theta: np.ndarray, *, scale: float, min_strength: float = 0.2,
                    name: str = "detector") -> EdgeMap:
    """The edge map of a detector's output on a working image (the last step of :func:`photo_edges`)."""
    if strength.shape != theta.shape or strength.ndim != 2:
        raise ValueError(f"detector {name!r} returned shapes {strength.shape}, {theta.shape}")
    mask = (strength >= min_strength) & (strength > 0)
    h, w = mask.shape
    rows, cols = np.nonzero(mask)  # row-major order
    # clipped and wrapped at the points only (elementwise: the same values as over the whole maps)
    return EdgeMap(
        x=(cols - (w - 1) / 2.0).astype(np.float32),
        y=(rows - (h - 1) / 2.0).astype(np.float32),
        theta=wrap_pi(theta[rows, cols]),
        w=np.ascontiguousarray(np.minimum(strength[rows, cols], 1.0), np.float32),
        width=int(w), height=int(h), scale=float(scale),
    )


def render_edges(edge_map: EdgeMap) -> np.ndarray:
    """Paint an edge map's strengths into its working frame.

    Parameters
    ----------
    edge_map : EdgeMap

    Returns
    -------
    (height, width) float32 ndarray
        ``w`` at each point's pixel (max where two points share one), 0 elsewhere.
    """
    out = np.zeros((edge_map.height, edge_map.width), np.float32)
    cols = np.rint(edge_map.x + (edge_map.width - 1) / 2.0).astype(np.intp)
    rows = np.rint(edge_map.y + (edge_map.height - 1) / 2.0).astype(np.intp)
    ok = (cols >= 0) & (cols < edge_map.width) & (rows >= 0) & (rows < edge_map.height)
    np.maximum.at(out, (rows[ok], cols[ok]), edge_map.w[ok].astype(np.float32))
    return out


# --------------------------------------------------------------------------------------------------
# Sketches


def _ink(image) -> np.ndarray:
    """Sketch image -> ink darkness (H, W) float32 in [0, 1] (transparent background = no ink)."""
    a = np.asarray(image)
    rgb = to_rgb(a)  # alpha composited on white
    ink = 1.0 - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if a.ndim == 3 and a.shape[2] in (2, 4) and float(ink.max()) - float(ink.min()) < 0.1:
        # light strokes on a transparent background: the alpha channel is the ink
        ink = to_rgb(a[:, :, -1])[:, :, 0]
    return ink


def _binarise(ink: np.ndarray) -> np.ndarray | None:
    """Stroke mask by a threshold half-way between paper and ink; None when there is no contrast."""
    paper = float(np.percentile(ink, 5))
    dark = float(np.percentile(ink, 99.9)) if ink.size >= 1000 else float(ink.max())
    dark = max(dark, float(ink.max()) * 0.9)
    if dark - paper < 0.15:
        return None
    return ink > paper + 0.5 * (dark - paper)


def _remove_specks(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


@functools.cache
def zhang_suen():
    """scikit-image's Zhang-Suen thinning (``skimage.morphology.skeletonize`` of a 2-D image).

    ``skimage.morphology`` imports ``scipy.ndimage``: 0.4 s of a query's first second (issue 17: launch ->
    first results).  Its compiled thinning needs numpy only, so it is loaded from scikit-image's folder without
    the package (the same function ``skeletonize`` calls, so the same skeleton:
    ``tests/engine/test_edges.py``); where that module is not found under the names it has had, the public
    function."""
    import importlib.machinery
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.find_spec("skimage")  # finds the package without importing it
    folder = Path(spec.origin).parent / "morphology" if spec and spec.origin else None
    for name in ("_skeletonize_various_cy", "_skeletonize_cy"):  # scikit-image >= 0.23, before
        full = f"skimage.morphology.{name}"
        try:
            if full in sys.modules:
                return sys.modules[full]._fast_skeletonize
            files = [folder / (name + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES
                     if folder is not None and (folder / (name + suffix)).is_file()]
            if not files:
                continue
            loader = importlib.machinery.ExtensionFileLoader(full, str(files[0]))
            module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(full, files[0],
                                                                                           loader=loader))
            loader.exec_module(module)
            fast = module._fast_skeletonize
            sys.modules[full] = module
            return fast
        except Exception:  # noqa: BLE001 - any trouble: the public function below
            log.debug("scikit-image's %s could not be loaded on its own", full, exc_info=True)
    from skimage.morphology import skeletonize

    return skeletonize


#: a sketch whose thickest stroke is at least this fraction of its ink's longer side is a dot or a filled blob,
#: not an outline (a dot: 1; a filled disc: 1; a ring six stroke widths across: 0.17; a dash twice as long as
#: it is wide: 0.5)
BLOB_THICKNESS = 0.5


def _thickest(mask: np.ndarray) -> float:
    """Largest stroke width of a binary ink mask, in px: twice the largest distance of an ink pixel to paper."""
    padded = np.pad(mask.astype(np.uint8), 1)  # the crop's border is paper
    return float(cv2.distanceTransform(padded, cv2.DIST_L2, 3).max())


def sketch_edges(image, *, max_side: int = 400) -> EdgeMap:
    """Edge map of a sketch: strokes binarised, cropped, resized, thinned; ``w = 1``.

    Parameters
    ----------
    image : array_like
        Dark strokes on a light background, or strokes on a transparent background (RGBA / grey +
        alpha); any layout ``imageio.to_rgb`` accepts.  Anti-aliased grey strokes are fine.
    max_side : int
        The strokes' tight bounding box is resized so that its longer side is this many px.

    Returns
    -------
    EdgeMap
        One-pixel-wide stroke centre lines in row-major order, ``w = 1``, orientation from the
        structure tensor of the thinned strokes.  ``origin`` is the crop's top-left corner and
        ``scale`` the working px per original px.

    Raises
    ------
    ValueError
        ``"sketch is empty: no strokes found"`` when nothing but paper (and specks) is found; ``"the sketch
        is only a dot ..."`` for a dot or a filled blob (:data:`BLOB_THICKNESS`).
    """
    ink = _ink(image)
    mask = _binarise(ink)
    if mask is not None:
        longer = max(mask.shape)
        mask = _remove_specks(mask, max(3, math.ceil(4 * (longer / 400.0) ** 2)))
    if mask is None or not mask.any():
        raise ValueError("sketch is empty: no strokes found")
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = mask[y0:y1, x0:x1].astype(np.float32)
    if 2.0 * _thickest(mask[y0:y1, x0:x1]) >= BLOB_THICKNESS * max(y1 - y0, x1 - x0):
        # a dot, or a filled blob: no outline to look for (it thins to its medial axis, a point or a few lines
        # that some edges of every photo fit: a click was a 72 % match in the app)
        raise ValueError("the sketch is only a dot or a filled blob: draw the outline of a shape")
    factor = max_side / max(y1 - y0, x1 - x0)
    cover = _resize_factor(crop, factor)
    # a one-pixel stroke covers about `factor` of a working pixel when shrinking
    strokes = cover >= (0.5 if factor >= 1.0 else 0.4 * factor)
    pad = 3
    skeleton = zhang_suen()(np.pad(strokes, pad))  # Zhang-Suen thinning: one-pixel centre lines
    theta = structure_orientation(skeleton.astype(np.float32), sigma=2.0, rho=2.0)
    rows, cols = np.nonzero(skeleton)  # row-major
    theta = theta[rows, cols]
    rows, cols = rows - pad, cols - pad
    # The ink's bounding box grows with the stroke width; the frame is the centre lines' bounding box,
    # the points rescaled (by a few per cent) so that its longer side is again max_side.  The stretch is
    # capped: what is left of a small blob must not be blown up to the whole frame.
    r0, c0 = int(rows.min()), int(cols.min())
    extent_c, extent_r = int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1
    g = min(max_side / max(extent_c, extent_r), 1.25)
    width, height = max(1, round(extent_c * g)), max(1, round(extent_r * g))
    col = np.clip((cols - c0 + 0.5) * g - 0.5, 0, width - 1)  # clip: the shorter side was rounded
    row = np.clip((rows - r0 + 0.5) * g - 0.5, 0, height - 1)
    return EdgeMap(
        x=(col - (width - 1) / 2.0).astype(np.float32),
        y=(row - (height - 1) / 2.0).astype(np.float32),
        theta=np.ascontiguousarray(theta, np.float32),
        w=np.ones(rows.shape, np.float32),
        width=int(width), height=int(height), scale=float(factor * g),
        origin=(float(x0 + c0 / factor), float(y0 + r0 / factor)),
    )
