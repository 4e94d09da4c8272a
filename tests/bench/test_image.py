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




def test_the_bench_describes_photos_as_the_indexer_does():
    """The photo -> photo figures are those of the vectors the index stores: on the CPU the photos' network in the
    int8 graph where the indexer's workers use it (``cnn.photo_backend``), not the float one."""
    from pathlib import Path

    from engine.bench.image import describe_both
    from engine.describe import DEFAULT_BACKBONE, gem_settings
    from engine.indexer import run_jobs
    from engine.settings import SketchSettings

    photos = sorted((Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos").glob("*.jpg"))[:6]
    settings, gem = SketchSettings(), gem_settings(DEFAULT_BACKBONE)
    _, raw, _ = describe_both(photos, settings, device="cpu")
    stored = {r.path: r.record.gem.astype(np.float32)
              for r in run_jobs([(str(p), None) for p in photos], settings, 2, cnn_json=gem.to_json())}
    for p, v in zip(photos, raw, strict=True):
        s = stored[str(p)]
        assert float(v @ s / (np.linalg.norm(v) * np.linalg.norm(s))) > 0.9999
