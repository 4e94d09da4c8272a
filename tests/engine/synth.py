"""Synthetic photos and sketches for tests: shapes pasted at known places on cluttered backgrounds."""
from __future__ import annotations

import cv2
import numpy as np

SHAPES = {
    # closed polygons in a unit box (x right, y down)
    "arrow": [(0.0, 0.35), (0.6, 0.35), (0.6, 0.1), (1.0, 0.5), (0.6, 0.9), (0.6, 0.65), (0.0, 0.65)],
    "house": [(0.1, 1.0), (0.1, 0.45), (0.5, 0.0), (0.9, 0.45), (0.9, 1.0)],
    "ell": [(0, 0), (0.4, 0), (0.4, 0.6), (1.0, 0.6), (1.0, 1.0), (0, 1.0)],
    "star": [(0.5 + 0.5 * np.sin(a) * (1 if i % 2 == 0 else 0.42), 0.5 - 0.5 * np.cos(a) * (1 if i % 2 == 0 else 0.42))
             for i, a in enumerate(np.linspace(0, 2 * np.pi, 10, endpoint=False))],
}


def polygon(shape: str, box) -> np.ndarray:
    """Polygon vertices (N, 2) of a shape scaled into box = (x0, y0, x1, y1)."""
    p = np.asarray(SHAPES[shape], np.float64)
    x0, y0, x1, y1 = box
    return np.c_[x0 + p[:, 0] * (x1 - x0), y0 + p[:, 1] * (y1 - y0)]


def clutter(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A textured, cluttered RGB uint8 background: gradient, noise, blobs and a few lines."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = (90 + 60 * xx / width + 30 * yy / height)[..., None] * rng.uniform(0.7, 1.1, 3)
    img = base + rng.normal(0, 12, (height, width, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(8):
        c = tuple(int(v) for v in rng.integers(40, 220, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(img, centre, int(rng.integers(5, 25)), c, -1, cv2.LINE_AA)
    for _ in range(4):
        c = tuple(int(v) for v in rng.integers(40, 220, 3))
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p0, p1, c, 2, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def photo_with_shape(shape: str, box, *, size=(640, 480), seed: int = 0) -> np.ndarray:
    """Cluttered photo (H, W, 3) uint8 with a filled, shaded shape inside ``box``."""
    rng = np.random.default_rng(seed)
    img = clutter(rng, *size)
    pts = np.round(polygon(shape, box)).astype(np.int32)
    colour = tuple(int(v) for v in rng.integers(0, 60, 3)) if rng.random() < 0.5 else \
        tuple(int(v) for v in rng.integers(190, 255, 3))
    cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    return img


def on_white(img: np.ndarray, scale: float, degrees: float) -> np.ndarray:
    """A re-photographed print: the photo shrunk by ``scale``, turned by ``degrees`` (counter-clockwise) and
    pasted at the centre of a white canvas of its own size (corners that leave the canvas are cut)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D(((small.shape[1] - 1) / 2, (small.shape[0] - 1) / 2), degrees, 1.0)
    m[:, 2] += ((w - small.shape[1]) / 2, (h - small.shape[0]) / 2)
    return cv2.warpAffine(small, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))


def sketch_of(shape: str, *, size: int = 300, width: int = 3, seed: int = 0) -> np.ndarray:
    """A hand-drawn-looking outline of a shape: dark, slightly wobbly strokes on white, (H, W) uint8."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 255, np.uint8)
    p = polygon(shape, (20, 20, size - 20, size - 20))
    closed = np.vstack([p, p[:1]])
    dense = np.concatenate([np.linspace(a, b, 20, endpoint=False)
                            for a, b in zip(closed[:-1], closed[1:], strict=True)])
    dense += rng.normal(0, 0.8, dense.shape)
    cv2.polylines(img, [np.round(dense).astype(np.int32)], True, 0, width, cv2.LINE_AA)
    return img
