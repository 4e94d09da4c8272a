"""A region of a photo as the query: its pixels as an image query, its edges as a sketch, or both fused.

- **image**: the region's image descriptor; photos whose whole-photo descriptor is nearest the region's (a small
  crop may not find its own photo first).
- **shape**: the region's photo edges (the collection's detector), drawn as thin strokes and read back as a
  sketch (``edges.sketch_edges``: binarised, cropped to the strokes, thinned); hits come with boxes.
- **both**: the two rankings merged by reciprocal rank fusion (Cormack et al., SIGIR 2009: ``1 / (K + rank)``
  summed, ``K = 60``; nothing fitted), the box from the shape ranking where it has the photo.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from .edges import EdgeMap, photo_edges, render_edges, sketch_edges
from .errors import QueryError
from .hits import Hit
from .imageio import ImageError, image_size, load_image

__all__ = ["MODES", "RRF_K", "Alone", "boxed_on_the_region", "fuse_rankings", "parse_region", "region_pixels",
           "region_sketch", "stretched"]

MODES = ("both", "shape", "image")
RRF_K = 60  # reciprocal rank fusion's constant (the paper's; not fitted)
INK = 0.5  # edge strength (0..1, after the detector's threshold) drawn as a stroke of the region's sketch


@dataclasses.dataclass(frozen=True)
class Alone:
    """A "both" region search that one of its two searches ranked alone: ``ranked_by`` ("image": the region
    has no edges; "shape": the collection has no image descriptors) and why the other could not run."""

    why: str
    ranked_by: str

    def __str__(self) -> str:
        return f"{self.why}; searched by the region's {self.ranked_by} alone"


def parse_region(text: str) -> tuple[float, float, float, float]:
    """``x0,y0,x1,y1`` -> a box of floats; QueryError naming the text for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        box = tuple(float(p) for p in parts)
        if not all(math.isfinite(v) for v in box):
            raise ValueError
    except ValueError:
        raise QueryError(f"region {text!r} is not four numbers x0,y0,x1,y1 (pixels of the photo)") from None
    return box  # type: ignore[return-value]


def region_pixels(image, box, *, min_side: int) -> np.ndarray:
    """The region ``box`` = (x0, y0, x1, y1) in the photo's original pixels (after EXIF orientation) of a photo
    (path, or RGB array in [0, 1] whose pixels are the original ones), decoded at a size that keeps the
    region's longer side at least ``min_side`` px where the photo has that many -> (h, w, 3) float32 RGB.

    Raises QueryError for a region of zero area or outside the photo, and for an unreadable photo."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise QueryError(f"region {x0:g},{y0:g},{x1:g},{y1:g} has no area (x1 must exceed x0 and y1 exceed y0)")
    if isinstance(image, str | os.PathLike):
        try:
            # the photo's size first (header only), to decode it no larger than the region needs
            full_w, full_h = image_size(image)
            # the photo's longer side that gives the region (clipped to the photo) a longer side of min_side
            side = max(min(x1, full_w) - max(x0, 0.0), min(y1, full_h) - max(y0, 0.0), 1e-6)
            need = int(math.ceil(min_side * max(full_w, full_h) / side))
            loaded = load_image(image, max_side=need if need < max(full_w, full_h) else None)
            full_w, full_h = loaded.original_size
        except ImageError as e:
            raise QueryError(str(e)) from None
        pixels = loaded.pixels
    else:
        pixels = np.asarray(image, np.float32)
        full_w, full_h = pixels.shape[1], pixels.shape[0]
    if x0 >= full_w or y0 >= full_h or x1 <= 0 or y1 <= 0:
        raise QueryError(f"region {x0:g},{y0:g},{x1:g},{y1:g} is outside the photo ({full_w}x{full_h} pixels)")
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(full_w)), min(y1, float(full_h))
    sx, sy = pixels.shape[1] / full_w, pixels.shape[0] / full_h
    c0, r0 = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
    c1, r1 = max(int(math.ceil(x1 * sx)), c0 + 1), max(int(math.ceil(y1 * sy)), r0 + 1)
    crop = pixels[r0:r1, c0:c1]
    if min(crop.shape[:2]) < 2:
        raise QueryError(f"region {x0:g},{y0:g},{x1:g},{y1:g} is too small (under 2 pixels across)")
    return np.ascontiguousarray(crop, np.float32)


def region_sketch(pixels: np.ndarray, *, detector: str, max_side: int, min_strength: float) -> EdgeMap:
    """The region's shape as a sketch: its photo edges (the collection's detector and threshold) drawn as dark
    strokes on white, read as a sketch (cropped to the strokes, thinned, ``w = 1``).  A region whose contrast is
    too low for them (a white sail on a pale sky: the detector's strengths are absolute) is read again with its
    brightness stretched (``stretched``).  QueryError where the region has no edges even so."""
    try:
        return _edges_as_sketch(pixels, detector=detector, max_side=max_side, min_strength=min_strength)
    except QueryError as first:
        wide = stretched(pixels)
        if wide is None:
            raise
        try:
            return _edges_as_sketch(wide, detector=detector, max_side=max_side, min_strength=min_strength)
        except QueryError:
            raise first from None


#: the share of a region's pixels (per cent) left darker / brighter than the ends of ``stretched``'s range
STRETCH_TAIL = 1.0
#: the most ``stretched`` widens a region's brightness range: a pale shape on a pale ground gains its contrast
#: (a white sail on a light sky, a range of 0.3: 3.3), while the grain of a plain sky or wall stays below the
#: detector's threshold (a range of 0.1 would be widened 10 times)
STRETCH_GAIN = 4.0


def stretched(pixels: np.ndarray) -> np.ndarray | None:
    """The region with its brightness range (the ``STRETCH_TAIL`` and ``100 - STRETCH_TAIL`` percentiles of the
    channels' mean) stretched towards [0, 1] about its middle, at most ``STRETCH_GAIN`` times, the same for every
    channel; None where it would not widen (a range of 0.9 or more) or there is none."""
    grey = np.asarray(pixels, np.float32).mean(axis=2)
    lo, hi = (float(v) for v in np.percentile(grey, [STRETCH_TAIL, 100.0 - STRETCH_TAIL]))
    if hi - lo <= 0 or hi - lo >= 0.9:
        return None
    gain = min(1.0 / (hi - lo), STRETCH_GAIN)
    return np.clip((np.asarray(pixels, np.float32) - (lo + hi) / 2) * gain + 0.5, 0.0, 1.0).astype(np.float32)


def _edges_as_sketch(pixels: np.ndarray, *, detector: str, max_side: int, min_strength: float) -> EdgeMap:
    em = photo_edges(pixels, detector=detector, max_side=max_side, min_strength=min_strength)
    ink = render_edges(em) >= INK * min_strength if len(em) else None
    if ink is None or not ink.any():
        raise QueryError("the region has no edges to search with (a flat or blurred area): use it as an image "
                         "query instead")
    try:
        return sketch_edges(np.where(ink, 0.0, 1.0).astype(np.float32), max_side=max_side)
    except ValueError:  # a speck or a blob of edges (the sketch's own words ask for a drawing)
        raise QueryError("the region's edges do not make a shape (a speck or a blob): choose a larger region, or "
                         "search it as an image") from None


def boxed_on_the_region(hits: list[Hit], image, box) -> list[Hit]:
    """The query photo's own hit among a region's shape hits boxed on the region itself (``image``: the photo's
    path; anything else changes nothing): the shape is there by construction, and the alignment, whose
    placements keep the sketch at 60-100 % of a photo, put a smaller region's box elsewhere in its own photo."""
    if not isinstance(image, str | os.PathLike) or not hits:
        return hits
    own = os.path.realpath(image)
    mine = [i for i, h in enumerate(hits) if os.path.realpath(h.path) == own]
    if not mine:
        return hits
    try:
        full_w, full_h = image_size(image)
    except ImageError:
        return hits
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(full_w)), min(y1, float(full_h))
    scale = max(x1 - x0, y1 - y0) / max(full_w, full_h)
    out = list(hits)
    for i in mine:
        out[i] = dataclasses.replace(out[i], box=(x0, y0, x1, y1), scale=scale, mirrored=False, box_sure=True)
    return out


def fuse_rankings(shape: list[Hit], image: list[Hit], top_k: int, *, k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion of a shape and an image ranking of the same collection: ``score`` is the fused
    value scaled to [0, 1] (1: first in both), the box and alignment from the shape hit where there is one."""
    fused: dict[int, float] = {}
    first: dict[int, Hit] = {}
    for hits in (shape, image):
        for h in hits:
            fused[h.row] = fused.get(h.row, 0.0) + 1.0 / (k + h.rank)
            first.setdefault(h.row, h)
    best = 2.0 / (k + 1)
    order = sorted(fused, key=lambda r: (-fused[r], first[r].rank, r))[:top_k]
    out = []
    for rank, row in enumerate(order, 1):
        h = first[row]
        out.append(Hit(rank, h.path, fused[row] / best, h.box, h.scale, h.mirrored, row, h.raw_score, h.taken,
                       h.box_sure, frame=h.frame))
    return out
