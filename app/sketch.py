"""The sketch as data, without Qt: strokes and their rendering to a grey image (black ink on white).

The canvas widget (:mod:`app.canvas`) keeps a list of :class:`Stroke` and renders it with
:func:`render_strokes`; the same image is what gets searched.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["INK_THRESHOLD", "Stroke", "draw_stroke", "fit_centered", "render_strokes", "sketch_bbox"]

#: Pixels darker than this are ink.
INK_THRESHOLD = 128

_SHIFT = 4  # fractional bits for cv2's sub-pixel coordinates
_ONE = 1 << _SHIFT


@dataclass(frozen=True, eq=False)
class Stroke:
    """One pen or eraser stroke.

    Attributes
    ----------
    points : (N, 2) float64 ndarray
        x, y in canvas pixels, N >= 1 (a read-only copy of what was given).
    width : float
        Diameter of the pen in pixels (> 0).
    erase : bool
        True: an eraser stroke (drawn white).
    """

    points: np.ndarray
    width: float
    erase: bool = False

    def __post_init__(self) -> None:
        pts = np.array(self.points, dtype=np.float64)
        if pts.shape == (2,):
            pts = pts.reshape(1, 2)
        if pts.ndim != 2 or pts.shape[1] != 2 or not len(pts) or not np.all(np.isfinite(pts)):
            raise ValueError(f"a stroke needs (N, 2) finite x, y points with N >= 1, got shape {pts.shape}")
        pts.setflags(write=False)
        width = float(self.width)
        if not width > 0:
            raise ValueError(f"stroke width must be > 0, got {self.width!r}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "erase", bool(self.erase))


def _fixed(xy: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> int32 fixed point with ``_SHIFT`` fractional bits."""
    return np.round(np.asarray(xy, dtype=np.float64) * _ONE).astype(np.int32)


def draw_stroke(img: np.ndarray, stroke: Stroke) -> None:
    """Draw one stroke onto a (H, W) uint8 image in place: round caps and joins, anti-aliased.

    Parameters
    ----------
    img : (H, W) uint8 ndarray
        Modified in place.
    stroke : Stroke
        Drawn black (pen) or white (eraser).
    """
    colour = 255 if stroke.erase else 0
    pts = _fixed(stroke.points)
    radius = max(1, int(round(stroke.width / 2 * _ONE)))
    if len(pts) > 1:
        thickness = max(1, int(round(stroke.width)))
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, thickness, cv2.LINE_AA, _SHIFT)
    for end in {tuple(pts[0]), tuple(pts[-1])}:  # round caps (a lone point: a dot)
        cv2.circle(img, (int(end[0]), int(end[1])), radius, colour, -1, cv2.LINE_AA, _SHIFT)


def render_strokes(strokes: Iterable[Stroke], size: tuple[int, int], *,
                   background: np.ndarray | None = None) -> np.ndarray:
    """Render strokes, in order, as a grey image: black ink on white (or on ``background``).

    Parameters
    ----------
    strokes : iterable of Stroke
        Pen strokes are drawn black, eraser strokes white.
    size : tuple of int
        (width, height) of the image, each >= 1.
    background : (H, W) uint8 ndarray, optional
        Grey image to draw on (not modified).  One of another size is placed at the top-left corner,
        cropped or padded with white.

    Returns
    -------
    (H, W) uint8 ndarray
        A new image.
    """
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"image size must be at least 1x1, got {size!r}")
    img = np.full((height, width), 255, np.uint8)
    if background is not None:
        bg = np.asarray(background)
        if bg.ndim != 2:
            raise ValueError(f"background must be a (H, W) grey image, got shape {bg.shape}")
        h, w = min(height, bg.shape[0]), min(width, bg.shape[1])
        img[:h, :w] = bg[:h, :w]
    for stroke in strokes:
        draw_stroke(img, stroke)
    return img


def sketch_bbox(img: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of the ink (pixels < 128) of a grey image.

    Parameters
    ----------
    img : (H, W) ndarray
        Grey image, 0..255.

    Returns
    -------
    tuple of int or None
        (x0, y0, x1, y1), half-open: ``img[y0:y1, x0:x1]`` holds all the ink; None when there is none.
    """
    ink = np.asarray(img) < INK_THRESHOLD
    if ink.ndim == 3:
        ink = ink.any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def fit_centered(grey: np.ndarray, size: tuple[int, int], *, margin: float = 0.05) -> np.ndarray:
    """Scale a grey image (aspect kept) to fit, centred, on white paper.

    Parameters
    ----------
    grey : (h, w) uint8 ndarray
        The image.
    size : tuple of int
        (width, height) of the paper.
    margin : float
        Free border on each side, as a fraction of the paper's width and height.

    Returns
    -------
    (height, width) uint8 ndarray
    """
    width, height = int(size[0]), int(size[1])
    ih, iw = grey.shape
    scale = min(width * (1 - 2 * margin) / iw, height * (1 - 2 * margin) / ih)
    w, h = min(width, max(1, round(iw * scale))), min(height, max(1, round(ih * scale)))
    resized = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.full((height, width), 255, np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    out[y:y + h, x:x + w] = resized
    return out
