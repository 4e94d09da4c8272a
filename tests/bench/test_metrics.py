"""Metrics on hand-computed cases."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.bench import baselines as bl
from engine.bench import metrics as mt


def test_average_precision_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert mt.average_precision(scores, [True, False, True, False]) == pytest.approx((1 + 2 / 3) / 2)
    assert mt.average_precision(scores, [False, True, False, True]) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert mt.average_precision(scores, [True, True, False, False]) == pytest.approx(1.0)
    # order of the input does not matter, only the scores
    perm = np.array([3, 0, 2, 1])
    rel = np.array([True, False, True, False])
    assert mt.average_precision(scores[perm], rel[perm]) == pytest.approx((1 + 2 / 3) / 2)


def test_average_precision_ties_are_pessimistic_and_no_relevant_is_nan():
    assert mt.average_precision([1.0, 1.0], [True, False]) == pytest.approx(0.5)
    assert mt.average_precision([1.0, 1.0, 1.0], [False, True, False]) == pytest.approx(1 / 3)
    assert np.isnan(mt.average_precision([0.3, 0.2], [False, False]))


def test_mean_average_precision_perfect_random_and_nan_queries():
    rng = np.random.default_rng(1)
    rel = rng.random((30, 200)) < 0.2
    perfect = rel.astype(float) + 0.01 * rng.random(rel.shape)
    assert mt.mean_average_precision(perfect, rel) == pytest.approx(1.0)
    assert mt.mean_average_precision(-perfect, rel) < 0.2
    rand = mt.random_baseline_scores(30, 200, seed=3)
    assert rand.shape == (30, 200)
    assert mt.mean_average_precision(rand, rel) == pytest.approx(rel.mean(), abs=0.05)
    # a query with no relevant item is left out of the mean
    rel2 = rel.copy()
    rel2[0] = False
    per_q = mt.per_query_average_precision(perfect, rel2)
    assert np.isnan(per_q[0]) and np.allclose(per_q[1:], 1.0)
    assert mt.mean_average_precision(perfect, rel2) == pytest.approx(1.0)


def test_exclude_removes_pairs_from_ranking():
    scores = np.array([[0.99, 0.9, 0.8, 0.7, 0.6]])
    rel = np.array([[True, False, True, False, True]])
    ex = np.array([[True, False, False, False, False]])
    # item 0 is gone: ranking is [1:F, 2:T, 3:F, 4:T] -> (1/2 + 2/4) / 2
    assert mt.mean_average_precision(scores, rel, exclude=ex) == pytest.approx(0.5)
    assert mt.precision_at_k(scores, rel, 2, exclude=ex) == pytest.approx(0.5)
    assert mt.recall_at_k(scores, [0], 4, exclude=ex) == 0.0
    assert mt.top_k(scores, 5, exclude=ex).tolist() == [[1, 2, 3, 4, -1]]


def test_precision_at_k():
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    rel = np.array([[True, False, True, False], [True, True, False, False]])
    # query 0 top-2 = {0, 1}: 1/2 ; query 1 top-2 = {3, 2}: 0
    assert mt.precision_at_k(scores, rel, 2) == pytest.approx(0.25)
    assert mt.precision_at_k(scores, rel, 1) == pytest.approx(0.5)
    assert mt.precision_at_k(scores, rel, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mt.precision_at_k(scores, rel, 0)


def test_recall_at_k():
    scores = np.array([[0.9, 0.8, 0.7], [0.1, 0.5, 0.3], [0.2, 0.2, 0.2]])
    target = np.array([0, 2, 1])
    # ranks of targets: 1, 2, 3 (tie: pessimistic)
    assert mt.recall_at_k(scores, target, 1) == pytest.approx(1 / 3)
    assert mt.recall_at_k(scores, target, 2) == pytest.approx(2 / 3)
    assert mt.recall_at_k(scores, target, 3) == pytest.approx(1.0)


def test_top_k_order_and_ties():
    scores = np.array([[0.1, 0.5, 0.5, 0.9]])
    assert mt.top_k(scores, 3).tolist() == [[3, 1, 2]]
    assert mt.top_k(scores, 6).tolist() == [[3, 1, 2, 0, -1, -1]]


def test_box_iou_values_and_broadcasting():
    a = np.array([0.0, 0.0, 10.0, 10.0])
    assert mt.box_iou(a, a) == pytest.approx(1.0)
    assert mt.box_iou(a, [20.0, 20.0, 30.0, 30.0]) == 0.0
    assert mt.box_iou(a, [10.0, 0.0, 20.0, 10.0]) == 0.0  # touching edges
    assert mt.box_iou(a, [5.0, 0.0, 15.0, 10.0]) == pytest.approx(50 / 150)  # half overlap
    assert mt.box_iou(a, [0.0, 0.0, 5.0, 10.0]) == pytest.approx(0.5)  # contained half
    assert mt.box_iou(a, [np.nan] * 4) == 0.0
    assert mt.box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    many = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    m = mt.box_iou(many[:, None, :], many[None, :, :])
    assert m.shape == (3, 3)
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    assert m[0, 1] == pytest.approx(1 / 3) and m[0, 2] == 0.0
    assert mt.box_iou(np.zeros((2, 1, 4)) + a, np.zeros((5, 4)) + a).shape == (2, 5)


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
    assert mt.localization_counts(ranked_index, ranked_boxes, gt, relevant, k=4) == (2, 5)
    assert mt.localization_rate(ranked_index, ranked_boxes, gt, relevant, k=4) == pytest.approx(2 / 5)
    assert mt.localization_rate(ranked_index, ranked_boxes, gt, relevant, k=1) == pytest.approx(1 / 2)
    rate = mt.localization_rate(ranked_index, ranked_boxes, gt, relevant, k=4, iou=0.9)
    assert rate == pytest.approx(1 / 5)
    assert np.isnan(mt.localization_rate(ranked_index, ranked_boxes, gt, np.zeros((2, 4), bool)))
    # a hit on an image without gt boxes (a distractor of the query's class) left out instead of a miss
    assert mt.localization_counts(ranked_index, ranked_boxes, gt, relevant, k=4, skip_unannotated=True) == (2, 4)


def test_whole_image_box():
    assert bl.whole_image_box(640, 480).tolist() == [0.0, 0.0, 640.0, 480.0]


def test_reliability_and_ece():
    rng = np.random.default_rng(2)
    s = rng.random(20000)
    rel = rng.random(20000) < s  # perfectly calibrated by construction
    assert mt.expected_calibration_error(s, rel) < 0.02
    rows = mt.reliability(s, rel)
    assert all(abs(r[3] - r[4]) < 0.05 for r in rows if r[2] > 500)


def test_reliability_png(tmp_path):
    rows = [(0, 0.1, 100, 0.05, 0.06), (0.1, 0.5, 50, 0.3, 0.28), (0.5, 1.0, 10, 0.7, 0.6)]
    mt.plot_reliability(rows, tmp_path / "r.png", title="t")
    img = cv2.imread(str(tmp_path / "r.png"))
    assert img is not None and img.shape[0] > 100


