"""The box of a sketch hit, fitted to the photo's own edges.

The alignment places the sketch's frame in the photo (scale, shift, mirror) at 60-100 % of the photo's longer
side and with the sketch's aspect, so that frame misses objects of another aspect or size (a long ferry for a
sailboat's outline, a small bicycle).  The box drawn is instead the extent of the photo's edges that lie along
the placed sketch: the photo's edge points within ``reach`` of a placed sketch point, their extent trimmed by
``trim`` per cent on each side (stray edges of the background that touch the outline).

The photo's edges are kept in the index as a coarse occupancy grid (:func:`edge_cells`: ``CELLS`` cells along
the working frame's longer side, ``CELL_BYTES`` bytes a photo), so a query reads no photo.  Where a photo has no
grid (indexed by an earlier version: the next index run describes it again, once) or too few edges lie along
the sketch, the box is the placed frame, as before.  ``reach`` and ``trim`` are fitted class-disjointly with
the placement's softness (``engine.bench.fusion.fit_box_rule``: on the SYSU-Shapes bicycles, shipped, and
reported on the boats; the reverse, reported on the bicycles).
"""
from __future__ import annotations

import math

import numpy as np

from .edges import EdgeMap

#: cells along the longer side of a photo's working frame
CELLS = 48
#: bytes of one photo's packed grid (CELLS x CELLS bits; the shorter side uses the top rows or left columns)
CELL_BYTES = CELLS * CELLS // 8
#: the photo's edges counted as along the placed sketch: within this share of the working frame's longer side
REACH = 0.12
#: per cent of those edges' extent trimmed on each side
TRIM = 5.0
#: fewer cells than this along the sketch: the placed frame is the box
MIN_CELLS = 3


def grid_shape(work_width: float, work_height: float) -> tuple[int, int]:
    """(rows, columns) of the grid of a working frame: CELLS along its longer side."""
    cell = max(work_width, work_height) / CELLS
    return (min(CELLS, max(1, math.ceil(work_height / cell - 1e-9))),
            min(CELLS, max(1, math.ceil(work_width / cell - 1e-9))))


def cell_of(x: np.ndarray, y: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """(columns, rows) of the grid cells holding points ``(x, y)`` of a ``width x height`` working frame
    (coordinates from the frame's centre, as ``EdgeMap``'s); outside the grid for points outside the frame."""
    cell = max(width, height) / CELLS
    return (np.floor((x + (width - 1) / 2.0) / cell).astype(np.int64),
            np.floor((y + (height - 1) / 2.0) / cell).astype(np.int64))


def edge_cells(edges: EdgeMap) -> bytes:
    """The cells of a photo's working frame that hold an edge point, packed (CELL_BYTES bytes)."""
    full = np.zeros((CELLS, CELLS), bool)
    if len(edges):
        gh, gw = grid_shape(edges.width, edges.height)
        col, row = cell_of(edges.x, edges.y, edges.width, edges.height)
        full[np.clip(row, 0, gh - 1), np.clip(col, 0, gw - 1)] = True
    return np.packbits(full).tobytes()


def unpack_cells(cells: bytes, work_width: float, work_height: float) -> np.ndarray | None:
    """(rows, columns) bool grid of packed cells (:func:`edge_cells`); None for anything else than a grid."""
    if not isinstance(cells, bytes | bytearray | memoryview) or len(cells) != CELL_BYTES:
        return None
    gh, gw = grid_shape(work_width, work_height)
    full = np.unpackbits(np.frombuffer(bytes(cells), np.uint8))[:CELLS * CELLS].reshape(CELLS, CELLS)
    return full[:gh, :gw].astype(bool)


def fitted_box(geometry, sketch: EdgeMap, scale: float, mirrored: bool, dx: float, dy: float,
               cells: bytes | None, *, reach: float = REACH,
               trim: float = TRIM) -> tuple[float, float, float, float] | None:
    """Box ``[x0, y0, x1, y1]`` in original pixels of a sketch placed at ``scale``, ``mirrored``, ``(dx, dy)``
    (working pixels from the frame's centre) in a photo of ``geometry`` (width, height, work_width,
    work_height, work_scale): the trimmed extent of the photo's edge cells within ``reach`` of a placed sketch
    point; None where there is none to fit (no grid, no sketch point in the photo, too few cells along the
    sketch): the placed frame is the box then (``hits.photo_box``)."""
    from scipy import ndimage

    full_w, full_h, ww, wh, ws = (float(v) for v in geometry)
    grid = unpack_cells(cells, ww, wh)
    if grid is None or not len(sketch) or ws <= 0:
        return None
    gh, gw = grid.shape
    cell = max(ww, wh) / CELLS
    col, row = cell_of((-sketch.x if mirrored else sketch.x) * scale + dx, sketch.y * scale + dy, ww, wh)
    inside = (col >= 0) & (col < gw) & (row >= 0) & (row < gh)
    if not inside.any():
        return None
    placed = np.zeros((gh, gw), bool)
    placed[row[inside], col[inside]] = True
    near = grid & (ndimage.distance_transform_edt(~placed) * cell <= reach * max(ww, wh))
    per_col = near.sum(axis=0)
    if per_col.sum() < MIN_CELLS:
        return None
    lo, hi = trim, 100.0 - trim
    c0, c1 = _percentiles(per_col, lo, hi)
    r0, r1 = _percentiles(near.sum(axis=1), lo, hi)
    x0, x1 = c0 * cell, (c1 + 1) * cell
    y0, y1 = r0 * cell, (r1 + 1) * cell
    x0, x1 = np.clip([x0 / ws, x1 / ws], 0, full_w)
    y0, y1 = np.clip([y0 / ws, y1 / ws], 0, full_h)
    return float(x0), float(y0), float(x1), float(y1)


def _percentiles(counts: np.ndarray, *q: float) -> list[float]:
    """``np.percentile`` (linear) at ``q`` of the indices ``i`` repeated ``counts[i]`` times, without the
    repeated array (a hit's box in a few microseconds instead of a quarter millisecond)."""
    cum = np.cumsum(counts)
    n = int(cum[-1])
    out = []
    for p in q:
        h = p / 100.0 * (n - 1)
        k = math.floor(h)
        t = h - k
        a, b = np.searchsorted(cum, [k, min(k + 1, n - 1)], side="right")
        a, b = float(a), float(b)
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's lerp
    return out
