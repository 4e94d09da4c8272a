"""Synthetic inputs of the speed and scale benchmarks: a sketch, descriptor arrays, an index of any size."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..afm import FeatureLayout
from ..edges import EdgeMap
from ..settings import SketchSettings


def synthetic_sketch(seed: int = 0) -> EdgeMap:
    """A sketch-like edge map (an irregular closed outline plus a few inner strokes) at scale 1."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, 900, endpoint=False)
    r = 150 + 30 * np.sin(3 * t + rng.uniform(0, 6)) + 15 * np.cos(5 * t)
    x, y = r * np.cos(t), 0.8 * r * np.sin(t)
    inner = np.linspace(-80, 80, 160)
    x = np.r_[x, inner, np.zeros(160)]
    y = np.r_[y, 0.3 * inner, inner]
    d = np.gradient(np.c_[x, y], axis=0)
    theta = np.mod(np.arctan2(d[:, 1], d[:, 0]), np.pi)
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return EdgeMap(f(x), f(y), f(theta), f(np.ones_like(x)), width=400, height=330)


def synthetic_database(layout: FeatureLayout, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) int8 codes and (n, K, 3) inverse norms with the value ranges of real descriptors."""
    rng = np.random.default_rng(seed)
    codes = np.empty((n, layout.settings.dim), np.int8)
    for start in range(0, n, 1 << 18):
        stop = min(n, start + (1 << 18))
        codes[start:stop] = rng.integers(-127, 128, (stop - start, layout.settings.dim), dtype=np.int8)
    inv = rng.uniform(1e-3, 1e-2, (n, len(layout.settings.scales), 3)).astype(np.float32)
    return codes, inv


def synthetic_index(db: Path, n: int, *, seed: int = 0, prefix: str = "/photos/", images: bool = False) -> None:
    """An index of ``n`` synthetic photos (random codes; paths <prefix><i>.jpg do not exist), sketch-only or,
    with ``images``, with every descriptor of a fused query: random raw image and global sketch vectors
    (``synthetic_features``) and the image index built from them (through the writer, as an index run)."""
    from ..cnn import GemSettings
    from ..writer import IndexWriter

    settings = SketchSettings()
    rng = np.random.default_rng(seed)
    gem = GemSettings()
    image = {"image_settings": gem.to_json(), "image_dim": gem.dim} if images else {}
    with IndexWriter(db, settings, **image) as w:
        step = 50_000 if images else 250_000
        for s in range(0, n, step):
            m = min(step, n - s)
            codes = rng.integers(-127, 128, (m, settings.dim), dtype=np.int8)
            inv = rng.uniform(0.5, 1.5, (m, len(settings.scales), 3)).astype(np.float32) / 127
            geometry = np.tile([640, 480, 400, 300, 0.625], (m, 1))
            arrays = {"codes": codes, "inv_norms": inv}
            if images:
                arrays["gem"] = synthetic_features(m, gem.dim, rng).astype(np.float16)
                arrays["sketch"] = synthetic_features(m, gem.dim, rng).astype(np.float16)
            w.add_arrays([f"{prefix}{i:08d}.jpg" for i in range(s, s + m)], geometry, arrays)
        w.compact(full=True)
        if images:
            w.build_image_index()


def synthetic_features(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) float32 vectors like a CNN's pooled features: non-negative, most of their variance in a few
    dozen directions (the same ones for every call)."""
    mix = np.abs(np.random.default_rng(1234).normal(size=(48, dim)))
    return (np.abs(rng.normal(size=(n, 48))) @ mix / 8 + np.abs(rng.normal(size=(n, dim))) * 0.1).astype(np.float32)


