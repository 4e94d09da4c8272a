"""The box of a sketch hit fitted to the photo's edge cells (engine.boxes), against a brute-force definition."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.boxes import CELL_BYTES, CELLS, edge_cells, fitted_box, grid_shape, unpack_cells
from engine.edges import EdgeMap
from engine.hits import photo_box


def _edge_map(cols, rows, width, height) -> EdgeMap:
    """An EdgeMap of points at working-frame pixels (col, row)."""
    cols, rows = np.asarray(cols, np.float32), np.asarray(rows, np.float32)
    return EdgeMap(x=cols - (width - 1) / 2, y=rows - (height - 1) / 2, theta=np.zeros(len(cols), np.float32),
                   w=np.ones(len(cols), np.float32), width=width, height=height)


def _rectangle(x0, y0, x1, y1, step=1.0):
    """Points along a rectangle's outline (pixels)."""
    xs, ys = np.arange(x0, x1 + 1e-9, step), np.arange(y0, y1 + 1e-9, step)
    cols = np.concatenate([xs, xs, np.full(len(ys), x0), np.full(len(ys), x1)])
    rows = np.concatenate([np.full(len(xs), y0), np.full(len(xs), y1), ys, ys])
    return cols, rows


def test_edge_cells_mark_the_cells_holding_edge_points_and_round_trip():
    width, height = 400, 300  # the grid: 48 columns, 36 rows of 8.33 px
    e = _edge_map([0, 399, 100, 100.4], [0, 299, 150, 150], width, height)
    cells = edge_cells(e)
    assert isinstance(cells, bytes) and len(cells) == CELL_BYTES
    grid = unpack_cells(cells, width, height)
    assert grid.shape == grid_shape(width, height) == (36, 48)
    cell = width / CELLS
    expected = {(0, 0), (35, 47), (int(150 / cell), int(100 / cell))}
    assert set(zip(*np.nonzero(grid), strict=True)) == expected
    tall = unpack_cells(edge_cells(_edge_map([0, 149], [0, 399], 150, 400)), 150, 400)
    assert tall.shape == (48, 18) and tall[0, 0] and tall[47, 17] and tall.sum() == 2
    assert unpack_cells(b"\x00" * 3, width, height) is None and unpack_cells(None, width, height) is None
    assert not unpack_cells(edge_cells(_edge_map([], [], 64, 64)), 64, 64).any()


def _brute_force_box(geometry, sketch, scale, mirrored, dx, dy, cells, reach, trim):
    """The definition, cell by cell: the edge cells whose distance (in working pixels, between cell indices)
    to a cell holding a placed sketch point is at most reach x the longer side; their trimmed extent."""
    full_w, full_h, ww, wh, ws = geometry
    grid = unpack_cells(cells, ww, wh)
    gh, gw = grid.shape
    cell = max(ww, wh) / CELLS
    placed = set()
    for x, y in zip(sketch.x.tolist(), sketch.y.tolist(), strict=True):
        c = math.floor(((-x if mirrored else x) * scale + dx + (ww - 1) / 2) / cell)
        r = math.floor((y * scale + dy + (wh - 1) / 2) / cell)
        if 0 <= c < gw and 0 <= r < gh:
            placed.add((r, c))
    near = [(r, c) for r in range(gh) for c in range(gw) if grid[r, c]
            and min(math.hypot(r - pr, c - pc) for pr, pc in placed) * cell <= reach * max(ww, wh)]
    if len(near) < 3:
        return None
    rr, cc = np.array(near).T
    box = [np.percentile(cc, trim) * cell, np.percentile(rr, trim) * cell,
           (np.percentile(cc, 100 - trim) + 1) * cell, (np.percentile(rr, 100 - trim) + 1) * cell]
    return (min(max(box[0] / ws, 0), full_w), min(max(box[1] / ws, 0), full_h),
            min(max(box[2] / ws, 0), full_w), min(max(box[3] / ws, 0), full_h))


@pytest.mark.parametrize("seed", range(12))
def test_fitted_box_equals_its_definition_computed_cell_by_cell(seed):
    rng = np.random.default_rng(seed)
    ww, wh = (400, int(rng.integers(200, 400))) if seed % 2 else (int(rng.integers(200, 400)), 400)
    ws = float(rng.uniform(0.1, 1.0))
    geometry = (ww / ws, wh / ws, ww, wh, ws)
    photo = _edge_map(rng.uniform(0, ww - 1, 300), rng.uniform(0, wh - 1, 300), ww, wh)
    sw, sh = 400, int(rng.integers(150, 400))
    sketch = _edge_map(*_rectangle(0, 0, sw - 1, sh - 1, step=4.0), sw, sh)
    cells = edge_cells(photo)
    for _ in range(5):
        scale, mirrored = float(rng.uniform(0.4, 1.0)), bool(rng.integers(2))
        dx, dy = (float(v) for v in rng.uniform(-80, 80, 2))
        reach, trim = float(rng.choice([0.04, 0.1, 0.16])), float(rng.choice([0.0, 1.0, 3.0, 5.0, 12.5]))
        got = fitted_box(geometry, sketch, scale, mirrored, dx, dy, cells, reach=reach, trim=trim)
        want = _brute_force_box(geometry, sketch, scale, mirrored, dx, dy, cells, reach, trim)
        assert (got is None) == (want is None)
        if got is not None:
            assert np.allclose(got, want, atol=1e-6)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_box_follows_an_object_of_another_aspect_than_the_sketch():
    """A square outline placed on a long flat object (a ferry for a sailboat's outline): the frame keeps the
    sketch's square; the fitted box is the object's."""
    ww = wh = 400
    geometry = (800.0, 800.0, ww, wh, 0.5)
    obj = (60, 170, 340, 250)  # working px: 280 x 80
    photo = _edge_map(*_rectangle(*obj), ww, wh)
    sketch = _edge_map(*_rectangle(0, 0, 399, 399, step=2.0), 400, 400)
    scale, dx, dy = 0.7, 0.0, 10.0
    frame = photo_box(geometry, 400 * scale, 400 * scale, dx, dy)
    fitted = fitted_box(geometry, sketch, scale, False, dx, dy, edge_cells(photo))
    truth = tuple(v / 0.5 for v in obj)
    assert _iou(frame, truth) < 0.5 < 0.8 < _iou(fitted, truth)


def test_no_grid_or_nothing_along_the_sketch_leaves_the_frame():
    geometry = (400.0, 300.0, 400, 300, 1.0)
    sketch = _edge_map(*_rectangle(0, 0, 399, 399, step=4.0), 400, 400)
    assert fitted_box(geometry, sketch, 0.7, False, 0, 0, None) is None  # described before the cells were kept
    assert fitted_box(geometry, sketch, 0.7, False, 0, 0, b"\x01\x02") is None  # not a grid
    empty = edge_cells(_edge_map([], [], 400, 300))
    assert fitted_box(geometry, sketch, 0.7, False, 0, 0, empty) is None  # no edge along the sketch
    far = edge_cells(_edge_map([2, 3, 4], [2, 2, 2], 400, 300))  # a speck in a corner, out of reach
    assert fitted_box(geometry, sketch, 0.3, False, 0, 0, far) is None
    assert fitted_box(geometry, sketch, 0.7, False, 5000, 0, edge_cells(_edge_map(*_rectangle(50, 50, 350, 250),
                                                                                   400, 300))) is None  # off the photo
