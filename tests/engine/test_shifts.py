"""Shifts as phase rotations: equal to re-encoding the shifted points; the polynomial equals the dot product."""
import numpy as np
import pytest

from engine.afm import encode_points
from engine.featuremaps import feature_map
from engine.settings import SketchSettings
from engine.shifts import (
    grid_terms,
    poly_matrix,
    poly_matrix_1d,
    rotation,
    shift_descriptor,
    shift_values,
    trig_terms,
)


@pytest.fixture(scope="module")
def layout(any_layout):
    return any_layout


def points(seed, n=60):
    rng = np.random.default_rng(seed)
    return rng.uniform(-150, 150, n), rng.uniform(-150, 150, n), rng.uniform(0, np.pi, n), rng.uniform(0.2, 1, n)


def test_rotation_moves_feature_vectors(layout):
    p = np.linspace(-200, 200, 17)
    for d in (-133.0, -20.0, 7.5, 80.0):
        moved = feature_map(p, layout.freqs_xy) @ rotation(layout.freqs_xy, d).T
        np.testing.assert_allclose(moved, feature_map(p + d, layout.freqs_xy), atol=1e-12)


@pytest.mark.parametrize("dx, dy", [(0, 0), (20, -40), (-96, 48), (133.3, 12.5)])
def test_shifted_descriptor_equals_reencoding(layout, dx, dy):
    x, y, t, w = points(1)
    v = encode_points(x, y, t, w, layout)
    np.testing.assert_allclose(shift_descriptor(v, dx, dy, layout), encode_points(x + dx, y + dy, t, w, layout),
                               rtol=0, atol=1e-12 * np.abs(v).max())


def test_polynomial_equals_dot_product_with_shifted_query(layout):
    x, y, t, w = points(2)
    p = encode_points(x, y, t, w, layout)
    q = encode_points(*points(3, 30)[:3], np.ones(30), layout)
    qw = layout.kernel_diag(1) * q
    coef = p @ poly_matrix(qw, layout)
    vals = shift_values(layout.settings, 0.8)
    grid = coef @ grid_terms(layout.freqs_xy, vals)
    for ix, iy in [(0, 0), (3, 7), (len(vals) - 1, 2)]:
        direct = p @ (layout.kernel_diag(1) * shift_descriptor(q, vals[ix], vals[iy], layout))
        assert grid[ix * len(vals) + iy] == pytest.approx(direct, rel=1e-10, abs=1e-9)


def test_projection_polynomial(layout):
    p = encode_points(*points(4), layout)
    q = encode_points(*points(5, 30)[:3], np.ones(30), layout)
    pd = layout.projection_diag(0)
    for idx in (layout.x_index, layout.y_index):
        coef = p[idx] @ poly_matrix_1d(pd * q[idx], layout)
        for d in (-60.0, 0.0, 40.0):
            moved = shift_descriptor(q, d, 0.0, layout) if idx is layout.x_index else \
                shift_descriptor(q, 0.0, d, layout)
            direct = p[idx] @ (pd * moved[idx])
            assert coef @ trig_terms(layout.freqs_xy, [d])[0] == pytest.approx(direct, rel=1e-10, abs=1e-9)


def test_shift_grids_follow_the_paper():
    s = SketchSettings()
    sizes = [len(shift_values(s, scale)) for scale in s.scales]
    assert sizes == [9, 13, 23]  # +-80 step 20, +-96 step 16, +-132 step 12
    np.testing.assert_allclose(shift_values(s, 1.0), np.arange(-80, 81, 20))
    assert shift_values(s, 0.6)[-1] == pytest.approx(132.0)
