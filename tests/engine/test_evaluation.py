"""Tests of engine.evaluation: metrics on hand-computed cases, HOG baselines on synthetic edge images,
and (slow) the data-set loaders against ../shared/data."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine import evaluation as ev

# ---------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------


def test_average_precision_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert ev.average_precision(scores, [True, False, True, False]) == pytest.approx((1 + 2 / 3) / 2)
    assert ev.average_precision(scores, [False, True, False, True]) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert ev.average_precision(scores, [True, True, False, False]) == pytest.approx(1.0)
    # order of the input does not matter, only the scores
    perm = np.array([3, 0, 2, 1])
    rel = np.array([True, False, True, False])
    assert ev.average_precision(scores[perm], rel[perm]) == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_ties_are_pessimistic_and_no_relevant_is_nan():
    assert ev.average_precision([1.0, 1.0], [True, False]) == pytest.approx(0.5)
    assert ev.average_precision([1.0, 1.0, 1.0], [False, True, False]) == pytest.approx(1 / 3)
    assert np.isnan(ev.average_precision([0.3, 0.2], [False, False]))


def test_mean_average_precision_perfect_random_and_nan_queries():
    rng = np.random.default_rng(1)
    rel = rng.random((30, 200)) < 0.2
    perfect = rel.astype(float) + 0.01 * rng.random(rel.shape)
    assert ev.mean_average_precision(perfect, rel) == pytest.approx(1.0)
    assert ev.mean_average_precision(-perfect, rel) < 0.2
    rand = ev.random_baseline_scores(30, 200, seed=3)
    assert rand.shape == (30, 200)
    assert ev.mean_average_precision(rand, rel) == pytest.approx(rel.mean(), abs=0.05)
    # a query with no relevant item is left out of the mean
    rel2 = rel.copy()
    rel2[0] = False
    per_q = ev.per_query_average_precision(perfect, rel2)
    assert np.isnan(per_q[0]) and np.allclose(per_q[1:], 1.0)
    assert ev.mean_average_precision(perfect, rel2) == pytest.approx(1.0)


def test_exclude_removes_pairs_from_ranking():
    scores = np.array([[0.99, 0.9, 0.8, 0.7, 0.6]])
    rel = np.array([[True, False, True, False, True]])
    ex = np.array([[True, False, False, False, False]])
    # item 0 is gone: ranking is [1:F, 2:T, 3:F, 4:T] -> (1/2 + 2/4) / 2
    assert ev.mean_average_precision(scores, rel, exclude=ex) == pytest.approx(0.5)
    assert ev.precision_at_k(scores, rel, 2, exclude=ex) == pytest.approx(0.5)
    assert ev.recall_at_k(scores, [0], 4, exclude=ex) == 0.0
    assert ev.top_k(scores, 5, exclude=ex).tolist() == [[1, 2, 3, 4, -1]]


def test_precision_at_k():
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    rel = np.array([[True, False, True, False], [True, True, False, False]])
    # query 0 top-2 = {0, 1}: 1/2 ; query 1 top-2 = {3, 2}: 0
    assert ev.precision_at_k(scores, rel, 2) == pytest.approx(0.25)
    assert ev.precision_at_k(scores, rel, 1) == pytest.approx(0.5)
    assert ev.precision_at_k(scores, rel, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ev.precision_at_k(scores, rel, 0)


def test_recall_at_k():
    scores = np.array([[0.9, 0.8, 0.7], [0.1, 0.5, 0.3], [0.2, 0.2, 0.2]])
    target = np.array([0, 2, 1])
    # ranks of targets: 1, 2, 3 (tie: pessimistic)
    assert ev.recall_at_k(scores, target, 1) == pytest.approx(1 / 3)
    assert ev.recall_at_k(scores, target, 2) == pytest.approx(2 / 3)
    assert ev.recall_at_k(scores, target, 3) == pytest.approx(1.0)


def test_top_k_order_and_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.9]])
    assert ev.top_k(scores, 3).tolist() == [[3, 1, 2]]
    assert ev.top_k(scores, 6).tolist() == [[3, 1, 2, 0, -1, -1]]


def test_box_iou_values_and_broadcasting():
    a = np.array([0.0, 0.0, 10.0, 10.0])
    assert ev.box_iou(a, a) == pytest.approx(1.0)
    assert ev.box_iou(a, [20.0, 20.0, 30.0, 30.0]) == 0.0
    assert ev.box_iou(a, [10.0, 0.0, 20.0, 10.0]) == 0.0  # touching edges
    assert ev.box_iou(a, [5.0, 0.0, 15.0, 10.0]) == pytest.approx(50 / 150)  # half overlap
    assert ev.box_iou(a, [0.0, 0.0, 5.0, 10.0]) == pytest.approx(0.5)  # contained half
    assert ev.box_iou(a, [np.nan] * 4) == 0.0
    assert ev.box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    many = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    m = ev.box_iou(many[:, None, :], many[None, :, :])
    assert m.shape == (3, 3)
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    assert m[0, 1] == pytest.approx(1 / 3) and m[0, 2] == 0.0
    assert ev.box_iou(np.zeros((2, 1, 4)) + a, np.zeros((5, 4)) + a).shape == (2, 5)


def test_localization_rate_constructed_case():
    gt = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [50, 50, 70, 70]]), np.zeros((0, 4)),
          np.array([[0, 0, 4, 4]])]
    relevant = np.array([[True, True, False, True], [True, True, True, False]])
    ranked_index = np.array([[0, 1, 2, 3], [1, 2, -1, -1]])
    ranked_boxes = np.array([
        [[0, 0, 10, 10],      # relevant, IoU 1 -> localised
         [52, 52, 70, 70],    # relevant, matches the SECOND gt box (IoU 0.81) -> localised
         [0, 0, 10, 10],      # not relevant -> ignored
         [0, 0, 40, 40]],     # relevant, IoU 0.01 -> miss
        [[20, 20, 30, 30],    # relevant, no overlap -> miss
         [0, 0, 10, 10],      # relevant, image without gt boxes -> miss
         [np.nan] * 4, [np.nan] * 4],
    ], dtype=float)
    assert ev.localization_counts(ranked_index, ranked_boxes, gt, relevant, k=4) == (2, 5)
    assert ev.localization_rate(ranked_index, ranked_boxes, gt, relevant, k=4) == pytest.approx(2 / 5)
    assert ev.localization_rate(ranked_index, ranked_boxes, gt, relevant, k=1) == pytest.approx(1 / 2)
    rate = ev.localization_rate(ranked_index, ranked_boxes, gt, relevant, k=4, iou=0.9)
    assert rate == pytest.approx(1 / 5)
    assert np.isnan(ev.localization_rate(ranked_index, ranked_boxes, gt, np.zeros((2, 4), bool)))


def test_whole_image_box():
    assert ev.whole_image_box(640, 480).tolist() == [0.0, 0.0, 640.0, 480.0]


# ---------------------------------------------------------------------------------------------------
# HOG baselines (synthetic edge images)
# ---------------------------------------------------------------------------------------------------


def _square(size=128, x0=30, y0=30, side=60, shape=None):
    img = np.zeros(shape or (size, size), np.float32)
    cv2.rectangle(img, (x0, y0), (x0 + side, y0 + side), 1.0, 2)
    return img


def _circle(size=128, c=(64, 64), r=32):
    img = np.zeros((size, size), np.float32)
    cv2.circle(img, c, r, 1.0, 2)
    return img


def test_hog_descriptor_normalised_and_identical_images_score_one():
    d = ev.hog_descriptor(_square())
    assert d.ndim == 1 and np.linalg.norm(d) == pytest.approx(1.0, abs=1e-5)
    assert np.all(ev.hog_descriptor(np.zeros((50, 80))) == 0)
    s = ev.hog_scores([_square()], [_square(), _circle()])
    assert s.shape == (1, 2)
    assert s[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_hog_shifted_square_prefers_square_over_circle():
    s = ev.hog_scores([_square(x0=36, y0=34)], [_square(), _circle()])
    assert s[0, 0] > s[0, 1]
    # aspect-preserving canvas: a non-square image is accepted
    assert ev.hog_descriptor(np.zeros((40, 90)) + _square(shape=(40, 90), side=20, x0=5, y0=5)).shape == \
        ev.hog_descriptor(_square()).shape


def test_sketch_edge_image_inverts_and_handles_channels():
    sketch = np.full((20, 30, 3), 255, np.uint8)
    sketch[5, :] = 0
    e = ev.sketch_edge_image(sketch)
    assert e.shape == (20, 30) and e[5].min() == pytest.approx(1.0) and e[0].max() == pytest.approx(0.0)
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent -> white -> no ink
    assert ev.sketch_edge_image(rgba).max() == pytest.approx(0.0)


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
    score, box = ev.hog_sliding_window(ev.sketch_edge_image(sketch), photo,
                                       scales=(1.0, 0.8, 0.6, 0.5))
    truth = np.array([x0, y0, x0 + side, y0 + side], float)
    assert 0.0 < score <= 1.0 + 1e-6
    assert box.shape == (4,)
    assert ev.box_iou(box, truth) >= 0.5


def test_sliding_window_box_inside_photo_and_empty_query():
    photo = _circle(size=100)
    score, box = ev.hog_sliding_window(_square(), photo)
    assert 0 <= box[0] <= box[2] <= 100 and 0 <= box[1] <= box[3] <= 100
    score, box = ev.hog_sliding_window(np.zeros((50, 50)), photo)
    assert score == 0.0 and box.tolist() == [0, 0, 100, 100]


def test_render_outline_and_edge_map():
    poly = np.array([[10, 10], [110, 10], [110, 60], [10, 60]], float)
    img = ev.render_outline(poly, max_side=200, jitter=0.0)
    assert img.dtype == np.uint8 and max(img.shape) == 200 and img.shape == (112, 200)
    assert img.min() == 0 and img[0, 0] == 255 and img[img.shape[0] // 2, img.shape[1] // 2] == 255
    jit = ev.render_outline(poly, max_side=200, jitter=2.0, seed=5)
    assert np.array_equal(jit, ev.render_outline(poly, max_side=200, jitter=2.0, seed=5))
    assert not np.array_equal(jit, img)

    class _EM:  # duck-typed engine.edges.EdgeMap
        x = np.array([-1.5, 1.5, 10.0], np.float32)
        y = np.array([-0.5, 0.5, 0.0], np.float32)
        w = np.array([0.5, 1.0, 1.0], np.float32)
        width, height = 4, 2

    e = ev.render_edge_map(_EM())
    assert e.shape == (2, 4) and e[0, 0] == 0.5 and e[1, 3] == 1.0 and e.sum() == 1.5


# ---------------------------------------------------------------------------------------------------
# data sets (slow; skip when ../shared/data is missing)
# ---------------------------------------------------------------------------------------------------


def test_missing_dataset_raises(tmp_path, monkeypatch):
    with pytest.raises(ev.DatasetMissing, match=str(tmp_path)):
        ev.load_sketchy(tmp_path)
    with pytest.raises(ev.DatasetMissing, match="sysu-shapes"):
        ev.load_sysu(tmp_path)
    monkeypatch.setenv(ev.DATA_ENV_VAR, str(tmp_path))
    assert ev.data_root() == tmp_path
    with pytest.raises(ev.DatasetMissing):
        ev.load_sketchy()


def test_sysu_queries_on_synthetic_data():
    square = np.array([[0, 0], [59, 0], [59, 59], [0, 59]], float)
    data = ev.SysuData(
        image_paths=[None] * 4, image_class=np.array([0, 0, 1, 1]),
        image_sizes=np.array([[100, 100]] * 4),
        boxes=[np.array([[0, 0, 60, 60]], float), np.array([[0, 0, 10, 10], [0, 0, 60, 60]], float),
               np.array([[0, 0, 10, 10]], float), np.array([[0, 0, 60, 60]], float)],
        polygons=[[square], [square / 6, square], [square / 6], [square]],
        class_names=["a", "b"])
    qs = ev.sysu_queries(data, max_side=100)
    assert [(q.class_index, q.source_index, q.object_index) for q in qs] == [(0, 0, 0), (0, 1, 1), (1, 3, 0)]
    sketch, cls, src = qs[1]
    assert sketch.dtype == np.uint8 and sketch.shape == (100, 100) and cls == 0 and src == 1
    assert len(ev.sysu_queries(data, per_class=1, max_side=100)) == 2
    rel, ex = ev.sysu_ground_truth(data, qs)
    assert rel.tolist() == [[False, True, False, False], [True, False, False, False],
                            [False, False, True, False]]
    assert ex.sum() == 3 and ex[2, 3]


def _data_or_skip(loader):
    try:
        return loader()
    except ev.DatasetMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_load_sketchy_counts():
    d = _data_or_skip(ev.load_sketchy)
    assert len(d.class_names) == 50
    assert len(d.photo_paths) == len(d.photo_ids) == d.photo_class.shape[0] == 50 * 25
    assert np.all(np.bincount(d.photo_class) == 25)
    assert all(p.is_file() and p.suffix == ".jpg" for p in d.photo_paths)
    families = {(p.parent.name, p.stem.rpartition("-")[0])
                for p in (d.photo_paths[0].parents[2] / "sketch").glob("*/*.png")}
    assert len(d.query_paths) == len(families)
    assert all(p.stem.endswith("-1") for p in d.query_paths)
    assert np.all(d.photo_class[d.query_photo] == d.query_class)
    assert all(d.photo_ids[i] == p.stem[:-2] for i, p in zip(d.query_photo, d.query_paths, strict=True))
    assert d.relevance().shape == (len(d.query_paths), len(d.photo_paths))
    assert d.query_paths == sorted(d.query_paths, key=lambda p: (p.parent.name, p.name))
    assert len(ev.load_sketchy(sketch_index=2).query_paths) <= len(d.query_paths)


@pytest.mark.slow
def test_load_sysu_boxes_and_polygons_consistent():
    d = _data_or_skip(ev.load_sysu)
    assert d.class_names == ["bicycle", "boat"]
    assert len(d) == len(d.boxes) == len(d.polygons) == d.image_class.shape[0] > 0
    assert set(np.unique(d.image_class)) == {0, 1}
    n_obj = [len(b) for b in d.boxes]
    assert min(n_obj) >= 1 and max(n_obj) <= 3 and max(n_obj) >= 2
    for (w, h), boxes, polys in zip(d.image_sizes, d.boxes, d.polygons, strict=True):
        assert boxes.shape == (len(polys), 4)
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        for b, p in zip(boxes, polys, strict=True):
            assert p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3
            ext = p.max(0) - p.min(0)
            assert np.all(np.abs(ext - (b[2:] - b[:2])) <= 2.0)
            assert np.all(np.abs(p.min(0) - b[:2]) <= 2.0)


@pytest.mark.slow
def test_sysu_queries_real():
    d = _data_or_skip(ev.load_sysu)
    qs = ev.sysu_queries(d, per_class=5, seed=0)
    assert len(qs) == 10
    assert [q.class_index for q in qs] == [0] * 5 + [1] * 5
    for q in qs:
        assert q.image.dtype == np.uint8 and max(q.image.shape) == 400
        assert q.image.min() == 0 and np.median(q.image) == 255
        assert d.image_class[q.source_index] == q.class_index
    again = ev.sysu_queries(d, per_class=5, seed=0)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(qs, again, strict=True))
