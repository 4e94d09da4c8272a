"""The compact-descriptor benchmark's helpers (engine.bench.compact): the photos described as the indexer's
workers describe them, with the network's int8 graph or the float one."""
from pathlib import Path

import numpy as np

from engine.bench.compact import describe_photos, kept_photo_map, photo_map
from engine.cnn import int8_agrees

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos"


def test_int8_photos_float_drawings():
    """The int8 graph describes the photos (close to the float graph's vectors, not equal to them); the edge
    drawings are described in float either way, so their vectors are the same bytes."""
    paths = sorted(DEMO.glob("*.jpg"))[:4]
    gem8, sketch8 = describe_photos(paths)
    gemf, sketchf = describe_photos(paths, int8=False)
    assert np.array_equal(sketch8, sketchf)
    cos = np.sum(gem8 * gemf, axis=1) / (np.linalg.norm(gem8, axis=1) * np.linalg.norm(gemf, axis=1))
    assert cos.min() > 0.95
    assert not np.allclose(gem8, gemf, atol=1e-3) or not int8_agrees("efficientnet-lite0")


def test_kept_photo_map_of_separable_classes():
    """Two classes of tight clusters: every photo's neighbours are its own class, kept as the index keeps them
    (codes in the collection's bases) or not."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 64))
    labels = np.repeat([0, 1], 20)
    gem = (centres[labels] + 0.05 * rng.normal(size=(40, 64))).astype(np.float32)
    sketch = rng.normal(size=(40, 64)).astype(np.float32)
    assert photo_map(gem, labels) == 1.0
    assert kept_photo_map(gem, sketch, labels) == 1.0
    shuffled = rng.permutation(labels)
    assert kept_photo_map(gem, sketch, shuffled) < 0.8
