"""The image-search benchmark's helpers (engine.bench.image)."""
import numpy as np
import pytest

from engine.bench.image import extraction_speed, neighbour_recall


def test_neighbour_recall():
    exact = np.array([[0, 1, 2], [3, 4, 5]])
    approx = np.array([[2, 1, 9], [-1, -1, -1]])
    assert neighbour_recall(approx, exact, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert neighbour_recall(exact, exact, 2) == 1.0


def test_extraction_speed_is_positive():
    assert extraction_speed(n=2, device="cpu", size=(120, 160)) > 0


