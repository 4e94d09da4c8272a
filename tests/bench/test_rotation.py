"""The rotation benchmark's helpers (engine.bench.rotation)."""
import numpy as np

from engine.bench.rotation import bench_curve_speed, make_copy


def test_make_copy_kinds_and_curve_speed():
    img = np.zeros((60, 80, 3), np.uint8)
    rng = np.random.default_rng(0)
    assert make_copy(img, "rotate90", rng)[0].shape == (80, 60, 3)
    assert make_copy(img, "jpeg", rng)[1]["quality"] < 60
    assert bench_curve_speed(10, repeats=2)["ms"] > 0


