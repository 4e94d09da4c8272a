"""Rotation: the closed-form curve against brute force and the exact kernels; peaks at the true angle;
mirror; flat for a circle."""
import dataclasses

import cv2
import numpy as np
import pytest

from engine.edges import photo_edges
from engine.rotation import (
    PolarLayout,
    PolarSettings,
    best_rotation,
    curve_coefficients,
    encode_polar,
    evaluate_curve,
    polar_descriptor,
    polar_points,
    rotate_edges,
    rotation_curve,
)

BG = (0.85, 0.85, 0.85)


def scene(size: int = 300) -> np.ndarray:
    """An asymmetric arrangement of shapes on a plain background (so rotating it adds no frame edges)."""
    img = np.full((size, size, 3), BG, np.float32)
    cv2.rectangle(img, (90, 80), (200, 160), (0.1, 0.2, 0.3), -1)
    cv2.circle(img, (170, 200), 40, (0.7, 0.1, 0.1), -1)
    cv2.line(img, (60, 230), (140, 120), (0.2, 0.6, 0.2), 6)
    cv2.fillPoly(img, [np.array([[210, 60], [260, 70], [230, 120]])], (0.9, 0.8, 0.1))
    return img


def rotated(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=BG)


@pytest.fixture(scope="module")
def edges():
    return photo_edges(scene(), max_side=300)


@pytest.mark.parametrize("delta", [0.0, 17.0, 64.0, 95.0, 137.5, 181.0, 250.0, 333.0])
def test_a_rotated_photo_gives_a_curve_peaking_at_its_angle(edges, delta):
    hit = photo_edges(rotated(scene(), delta), max_side=300)
    curve = rotation_curve(edges, hit)
    err = (curve.best_angle - delta + 180.0) % 360.0 - 180.0
    assert abs(err) < 3.0, (delta, curve.best_angle)
    assert curve.best_similarity > 0.95
    assert curve.similarities.max() <= curve.best_similarity + 1e-9  # refined between grid points


def test_closed_form_equals_re_encoding_the_rotated_points(edges):
    x = polar_descriptor(edges)
    y = polar_descriptor(photo_edges(rotated(scene(), 40.0), max_side=300))
    angles = [0.0, 12.5, 40.0, 90.0, 211.0, 359.0]
    brute = [polar_descriptor(rotate_edges(edges, a)) @ y for a in angles]
    np.testing.assert_allclose(evaluate_curve(curve_coefficients(x, y), angles), brute, atol=1e-6)


def test_closed_form_matches_re_encoding_the_rotated_image_within_resampling(edges):
    x = polar_descriptor(edges)
    y = polar_descriptor(edges)
    for a in (30.0, 120.0, 275.0):
        xr = polar_descriptor(photo_edges(rotated(scene(), a), max_side=300))
        assert abs(evaluate_curve(curve_coefficients(x, y), [-a])[0] - xr @ y) < 0.05


def test_descriptor_products_approximate_the_kernel_sum():
    lay = PolarLayout()
    rng = np.random.default_rng(0)
    p = [rng.uniform(-np.pi, np.pi, 30), rng.uniform(0, 1, 30), rng.uniform(0, np.pi, 30), rng.uniform(0.2, 1, 30)]
    q = [rng.uniform(-np.pi, np.pi, 25), rng.uniform(0, 1, 25), rng.uniform(0, np.pi, 25), rng.uniform(0.2, 1, 25)]
    approx = encode_polar(*p, lay, normalise=False) @ encode_polar(*q, lay, normalise=False)
    k = lay.kernel(np.subtract.outer(p[0], q[0]), np.subtract.outer(p[1], q[1]), np.subtract.outer(p[2], q[2]))
    exact = p[3] @ k @ q[3]
    # each factor's truncated series is within ~1e-2 of its kernel; the product of three stays within 5 %
    assert abs(approx - exact) < 0.05 * p[3].sum() * q[3].sum() * k.max()
    assert abs(approx - exact) / exact < 0.05


def test_mirroring_is_a_sign_pattern_and_the_mirror_aware_curve_finds_mirror_images(edges):
    lay = PolarLayout()
    flipped = dataclasses.replace(edges, x=-edges.x, theta=np.mod(np.pi - edges.theta, np.pi).astype(np.float32))
    np.testing.assert_allclose(polar_descriptor(flipped), lay.mirror(polar_descriptor(edges)), atol=1e-6)
    hit = photo_edges(rotated(scene()[:, ::-1].copy(), 70.0), max_side=300)  # mirrored, then rotated
    plain = rotation_curve(edges, hit)
    aware = rotation_curve(edges, hit, mirror=True)
    assert aware.mirrored and aware.best_similarity > 0.95 > plain.best_similarity + 0.1


def test_the_curve_of_a_circle_is_flat():
    img = np.full((300, 300, 3), BG, np.float32)
    cv2.circle(img, (149, 149), 90, (0.1, 0.1, 0.1), 5, lineType=cv2.LINE_AA)
    e = photo_edges(img, max_side=300)
    curve = rotation_curve(e, e)
    assert curve.similarities.max() - curve.similarities.min() < 0.02


def test_many_curves_at_once_and_validation(edges):
    lay = PolarLayout(PolarSettings(n_phi=9))
    x = polar_descriptor(edges, lay)
    ys = np.stack([polar_descriptor(rotate_edges(edges, a), lay) for a in (10.0, 100.0, 300.0)])
    best, sims = best_rotation(curve_coefficients(x, ys, lay))
    np.testing.assert_allclose(best, [10.0, 100.0, 300.0], atol=1.0)  # x rotated by a is y
    assert np.all(sims > 0.99)
    with pytest.raises(ValueError):
        PolarSettings(n_phi=0)
    with pytest.raises(ValueError):
        polar_points(edges, radius=0)


def test_the_store_layout_knows_the_polar_dimension():
    from engine.rotation import POLAR_DIM

    assert PolarLayout().dim == POLAR_DIM
