"""HOG baselines on synthetic edge images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.bench import baselines as bl
from engine.bench import datasets as ds
from engine.bench import metrics as mt


def _square(size=128, x0=30, y0=30, side=60, shape=None):
    img = np.zeros(shape or (size, size), np.float32)
    cv2.rectangle(img, (x0, y0), (x0 + side, y0 + side), 1.0, 2)
    return img


def _circle(size=128, c=(64, 64), r=32):
    img = np.zeros((size, size), np.float32)
    cv2.circle(img, c, r, 1.0, 2)
    return img


def test_hog_descriptor_normalised_and_identical_images_score_one():
    d = bl.hog_descriptor(_square())
    assert d.ndim == 1 and np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5)
    assert np.all(bl.hog_descriptor(np.zeros((50, 80))) == 0)
    s = bl.hog_scores([_square()], [_square(), _circle()])
    assert s.shape == (1, 2)
    assert s[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_hog_shifted_square_prefers_square_over_circle():
    s = bl.hog_scores([_square(x0=36, y0=34)], [_square(), _circle()])
    assert s[0, 0] > s[0, 1]
    # aspect-preserving canvas: a non-square image is accepted
    assert bl.hog_descriptor(np.zeros((40, 90)) + _square(shape=(40, 90), side=20, x0=5, y0=5)).shape == \
        bl.hog_descriptor(_square()).shape


def test_sketch_edge_image_inverts_and_handles_channels():
    sketch = np.full((20, 30, 3), 255, np.uint8)
    sketch[5, :] = 0
    e = bl.sketch_edge_image(sketch)
    assert e.shape == (20, 30) and e[5].min() == pytest.approx(1.0) and e[0].max() == pytest.approx(0.0)
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent -> white -> no ink
    assert bl.sketch_edge_image(rgba).max() == pytest.approx(0.0)


@pytest.mark.parametrize("side,x0,y0", [(120, 150, 40), (140, 20, 50), (100, 170, 90)])
def test_sliding_window_finds_pasted_square(side, x0, y0):
    photo = np.zeros((200, 320), np.float32)
    cv2.rectangle(photo, (x0, y0), (x0 + side - 1, y0 + side - 1), 1.0, 2)
    cv2.circle(photo, (60 if x0 > 100 else 260, 150), 35, 1.0, 2)  # clutter: a circle elsewhere
    rng = np.random.default_rng(0)
    for _ in range(15):  # short random line segments
        p, q = rng.integers(0, 320, 2), rng.integers(0, 200, 2)
        cv2.line(photo, (int(p[0]), int(q[0])), (int(p[0]) + 10, int(q[0]) + 6), 1.0, 1)
    sketch = np.full((300, 300), 255, np.uint8)
    cv2.rectangle(sketch, (40, 40), (260, 260), 0, 3)
    score, box = bl.hog_sliding_window(bl.sketch_edge_image(sketch), photo,
                                       scales=(1.0, 0.8, 0.6, 0.5))
    truth = np.array([x0, y0, x0 + side, y0 + side], float)
    assert 0.0 < score <= 1.0 + 1e-6
    assert box.shape == (4,)
    assert mt.box_iou(box, truth) >= 0.5


def test_sliding_window_box_inside_photo_and_empty_query():
    photo = _circle(size=100)
    score, box = bl.hog_sliding_window(_square(), photo)
    assert 0 <= box[0] <= box[2] <= 100 and 0 <= box[1] <= box[3] <= 100
    score, box = bl.hog_sliding_window(np.zeros((50, 50)), photo)
    assert score == 0.0 and box.tolist() == [0, 0, 100, 100]


def test_render_outline_and_edge_map():
    poly = np.array([[10, 10], [110, 10], [110, 60], [10, 60]], float)
    img = ds.render_outline(poly, max_side=200, jitter=0.0)
    assert img.dtype == np.uint8 and max(img.shape) == 200 and img.shape == (112, 200)
    assert img.min() == 0 and img[0, 0] == 255 and img[img.shape[0] // 2, img.shape[1] // 2] == 255
    jit = ds.render_outline(poly, max_side=200, jitter=2.0, seed=5)
    assert np.array_equal(jit, ds.render_outline(poly, max_side=200, jitter=2.0, seed=5))
    assert not np.array_equal(jit, img)

    class _EM:  # duck-typed engine.edges.EdgeMap
        x = np.array([-1.5, 1.5, 10.0], np.float32)
        y = np.array([-0.5, 0.5, 0.0], np.float32)
        w = np.array([0.5, 1.0, 1.0], np.float32)
        width, height = 4, 2

    e = bl.render_edge_map(_EM())
    assert e.shape == (2, 4) and e[0, 0] == 0.5 and e[1, 3] == 1.0 and e.sum() == 1.5
