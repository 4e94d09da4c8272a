"""Whitening, alpha query expansion, the k-NN index, and image -> image copy detection with real weights."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cnn import GemDescriber, GemSettings
from engine.imageio import load_image
from engine.imagesearch import (
    VectorIndex,
    Whitening,
    alpha_qe,
    learn_whitening,
)

DEMO_PHOTOS = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos"


def l2n(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def correlated(rng, n, d, rank=None):
    """L2-normalised descriptors with a strongly non-isotropic covariance."""
    scales = np.geomspace(3.0, 0.01, d)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return l2n(1.0 + (rng.normal(size=(n, d)) * scales) @ basis.T)


# --- whitening -------------------------------------------------------------------------------------------------


def test_whitening_without_shrinkage_gives_zero_mean_identity_covariance():
    rng = np.random.default_rng(0)
    x = correlated(rng, 500, 32)
    w = learn_whitening(x, shrinkage=0.0, min_images=10, samples_per_dim=1)
    assert w.dim_in == 32 and w.dim_out == 32
    z = (x - w.mean) @ w.projection  # before the final L2
    assert np.abs(z.mean(axis=0)).max() < 1e-4
    assert np.allclose(np.cov(z, rowvar=False), np.eye(32), atol=1e-3)
    assert np.allclose(np.linalg.norm(w.apply(x), axis=1), 1.0, atol=1e-5)


def test_shrinkage_bounds_the_whitened_variances():
    rng = np.random.default_rng(1)
    x = correlated(rng, 300, 64)
    for s in (0.1, 0.5):
        w = learn_whitening(x, shrinkage=s, min_images=10, samples_per_dim=1)
        z = (x - w.mean) @ w.projection
        eig = np.linalg.eigvalsh(np.cov(z, rowvar=False))
        assert eig.max() <= 1.0 / (1.0 - s) + 1e-3
        assert eig.min() > 0.0


def test_whitening_needs_enough_images_and_drops_empty_directions():
    rng = np.random.default_rng(2)
    assert learn_whitening(correlated(rng, 999, 16)) is None  # default min_images=1000
    assert learn_whitening(correlated(rng, 10, 16), min_images=5) is not None
    w = learn_whitening(correlated(rng, 1000, 64))
    assert w.dim_out == 50  # default: 20 learning descriptors per kept component
    w = learn_whitening(correlated(rng, 40, 64), min_images=10, samples_per_dim=1)
    assert w.dim_out == 39  # n - 1 informative directions when n <= d
    w = learn_whitening(correlated(rng, 200, 64), dim=16, min_images=10, samples_per_dim=1)
    assert w.dim_out == 16 and w.apply(np.ones(64, np.float32)).shape == (16,)
    with pytest.raises(ValueError, match="shrinkage"):
        learn_whitening(correlated(rng, 200, 64), shrinkage=1.0)


def test_whitening_learns_on_a_sample_of_large_collections():
    rng = np.random.default_rng(3)
    x = correlated(rng, 2000, 8)
    a = learn_whitening(x, max_samples=500, seed=1)
    b = learn_whitening(x, max_samples=500, seed=1)
    assert np.array_equal(a.projection, b.projection)
    assert not np.allclose(a.mean, learn_whitening(x).mean, atol=1e-7)


def test_whitening_npz_round_trip(tmp_path):
    w = learn_whitening(correlated(np.random.default_rng(4), 150, 24), dim=10, min_images=10)
    path = tmp_path / "sub" / "whitening.npz"
    w.to_npz(path)
    w.to_npz(path)  # overwrite in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["whitening.npz"]
    r = Whitening.from_npz(path)
    assert np.array_equal(r.mean, w.mean) and np.array_equal(r.projection, w.projection)
    with pytest.raises(ValueError, match="projection"):
        Whitening(mean=np.zeros(3), projection=np.zeros((4, 2)))


# --- query expansion -------------------------------------------------------------------------------------------


def test_alpha_qe_with_one_neighbour_and_alpha_zero_adds_the_top_hit():
    rng = np.random.default_rng(5)
    db = l2n(rng.normal(size=(50, 16)))
    q = l2n(rng.normal(size=(3, 16)))
    top = np.argmax(q @ db.T, axis=1)
    out = alpha_qe(q, db, top[:, None], alpha=0.0)
    assert np.allclose(out, l2n(q + db[top]), atol=1e-6)
    assert np.allclose(alpha_qe(q[0], db, top[:1], alpha=0.0), out[0], atol=1e-6)


def test_alpha_qe_weights_and_missing_neighbours():
    rng = np.random.default_rng(6)
    db = l2n(rng.normal(size=(20, 8)))
    q = l2n(rng.normal(size=8))
    nb = np.argsort(-(db @ q))[:4]
    sims = np.maximum(db[nb] @ q, 0)
    expected = l2n(q + (sims[:, None] ** 3 * db[nb]).sum(axis=0))
    assert np.allclose(alpha_qe(q, db, nb, alpha=3.0), expected, atol=1e-6)
    assert np.allclose(alpha_qe(q, db, np.r_[nb, -1], alpha=3.0), expected, atol=1e-6)  # -1: no result
    neg = np.argsort(db @ q)[:1]  # the least similar, negative similarity: clipped to weight 0
    assert np.allclose(alpha_qe(q, db, neg, alpha=3.0), q, atol=1e-6)


# --- k-NN index ------------------------------------------------------------------------------------------------


def test_flat_and_torch_backends_agree():
    rng = np.random.default_rng(7)
    db = l2n(rng.normal(size=(3000, 64)))
    q = l2n(rng.normal(size=(25, 64)))
    d_flat, i_flat = VectorIndex(db, kind="flat").search(q, 10)
    d_torch, i_torch = VectorIndex(db, kind="torch", device="cpu").search(q, 10)
    assert np.array_equal(i_flat, i_torch)
    assert np.allclose(d_flat, d_torch, atol=1e-4)
    ref = np.argsort(-(q @ db.T), axis=1)[:, :10]
    assert np.array_equal(i_flat, ref)
    assert i_flat.dtype == np.int64 and d_flat.dtype == np.float32


def test_index_pads_when_k_exceeds_n():
    db = l2n(np.random.default_rng(8).normal(size=(3, 4)))
    for kind in ("flat", "torch"):
        d, i = VectorIndex(db, kind=kind, device="cpu").search(db[:2], 5)
        assert np.array_equal(i[:, 3:], -np.ones((2, 2))) and np.all(np.isneginf(d[:, 3:]))
        assert np.array_equal(i[:, 0], [0, 1])


def test_auto_kind():
    db = l2n(np.random.default_rng(9).normal(size=(300, 16)))
    assert VectorIndex(db, device="cpu").kind == "flat"
    assert VectorIndex(db, device="cpu", ivf_threshold=200, nlist=4, pq_m=4).kind == "ivfpq"
    expected = "torch" if torch.cuda.is_available() else "flat"
    assert VectorIndex(db).kind == expected
    with pytest.raises(ValueError, match="unknown index kind"):
        VectorIndex(db, kind="hnsw")


def clustered(rng, centres, n, noise=0.3):
    """Points around random ones of the (C, d) ``centres``."""
    d = centres.shape[1]
    return l2n(centres[rng.integers(0, len(centres), n)] + noise * rng.normal(size=(n, d)) / np.sqrt(d))


def test_ivfpq_recall_on_clustered_data(tmp_path):
    rng = np.random.default_rng(10)
    centres = l2n(rng.normal(size=(1000, 32)))
    db = clustered(rng, centres, 10000)
    q = clustered(rng, centres, 100)
    exact = VectorIndex(db, kind="flat")
    approx = VectorIndex(db, kind="ivfpq", nprobe=16)
    assert approx.kind == "ivfpq" and approx.nprobe == 16
    _, i_exact = exact.search(q, 10)
    _, i_approx = approx.search(q, 10)
    r = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(i_approx, i_exact, strict=True)])
    assert r > 0.8, r
    # saved and memory-mapped back: same results
    path = tmp_path / "ivfpq.faiss"
    approx.save(path)
    loaded = VectorIndex.load(path, mmap=True, nprobe=16)
    assert loaded.kind == "ivfpq" and len(loaded) == 10000
    assert np.array_equal(loaded.search(q, 10)[1], i_approx)
    with pytest.raises(ValueError, match="IVF-PQ"):
        loaded.vectors()


def test_flat_and_torch_save_load(tmp_path):
    rng = np.random.default_rng(11)
    db = l2n(rng.normal(size=(500, 32)))
    q = db[:5]
    for kind in ("flat", "torch"):
        idx = VectorIndex(db, kind=kind, device="cpu")
        path = tmp_path / f"{kind}.faiss"
        idx.save(path)
        for mmap in (True, False):
            loaded = VectorIndex.load(path, mmap=mmap, device="cpu")
            assert loaded.kind == "flat"
            assert np.array_equal(loaded.search(q, 3)[1], idx.search(q, 3)[1])
    assert np.allclose(VectorIndex.load(tmp_path / "flat.faiss", device="cpu").vectors(), db)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_torch_backend_matches_faiss():
    rng = np.random.default_rng(12)
    db = l2n(rng.normal(size=(5000, 128)))
    q = l2n(rng.normal(size=(20, 128)))
    d_flat, i_flat = VectorIndex(db, kind="flat").search(q, 10)
    gpu = VectorIndex(db, device="cuda")
    assert gpu.kind == "torch" and gpu.device.type == "cuda"
    d_gpu, i_gpu = gpu.search(q, 10)
    assert np.mean(i_flat == i_gpu) > 0.95  # fp16 may swap near-ties
    assert np.allclose(d_flat, d_gpu, atol=2e-3)


# --- copy detection with the real network ----------------------------------------------------------------------

QUERIES = ["skimage_chelsea.jpg", "lomiri_fig.jpg", "gen_sailboat_1.jpg"]


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.round(img[..., ::-1] * 255).astype(np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255


def _center_crop(img: np.ndarray, frac: float) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = round(h * frac), round(w * frac)
    return np.ascontiguousarray(img[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw])


TRANSFORMS = {
    "rotate90": lambda im: np.ascontiguousarray(np.rot90(im)),
    "mirror": lambda im: np.ascontiguousarray(im[:, ::-1]),
    "half_size": lambda im: cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA),
    "jpeg30": lambda im: _jpeg(im, 30),
    "crop70": lambda im: _center_crop(im, 0.7),
}


@pytest.fixture(scope="module")
def demo_descriptors():
    """Each demo photo's pixels and descriptor (real EfficientNet-Lite0 weights)."""
    names = sorted(p.name for p in DEMO_PHOTOS.glob("*.jpg"))
    assert len(names) >= 30
    describer = GemDescriber(GemSettings(), device="cpu")
    pixels = {n: load_image(DEMO_PHOTOS / n, max_side=describer.settings.max_side).pixels for n in names}
    desc = dict(zip(names, describer.describe([pixels[n] for n in names]), strict=True))
    return describer, pixels, desc


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_photo_finds_its_transformed_copy(demo_descriptors, transform):
    describer, pixels, desc = demo_descriptors
    for query in QUERIES:
        # ~24 distinct other photos: every real photo, one rendered photo of each other kind
        kind = query.rsplit("_", 1)[0]
        others = sorted(n for n in desc if n != query
                        and (not n.startswith("gen_") or (n.endswith("_1.jpg") and not n.startswith(kind))))
        assert len(others) >= 20
        copy = describer.describe([TRANSFORMS[transform](pixels[query])])[0]
        db = np.stack([copy] + [desc[n] for n in others])
        scores, ids = VectorIndex(db, kind="flat").search(desc[query][None], 3)
        assert ids[0, 0] == 0, (query, transform, [(["COPY"] + others)[i] for i in ids[0]], scores[0])
