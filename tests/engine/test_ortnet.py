"""The ONNX Runtime EfficientNet-Lite0 (engine.ortnet), the indexer's CPU network, against the float torch and
numpy ones, and its cached graph.

Equivalence: the stored descriptors (GeM of the photo at three scales, GeM of its edges drawn) of the ONNX
Runtime path are within cosine 0.99999 of the torch path's (measured: 1 - 1e-7), and a collection described by
it ranks float (numpy, the query path) queries as one described by torch.
"""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import cnn, npnet, ortnet
from engine.cnn import GemDescriber, GemSettings, get_backbone, numpy_weights_path, onnx_backbone
from engine.describe import drawing_settings, drawn
from engine.edges import edges_from_maps, get_detector, working_image
from engine.imageio import load_image, network_input
from engine.imagesearch import VectorIndex
from engine.npnet import EfficientNetLite
from engine.settings import SketchSettings
from engine.torchnet import numpy_weights

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
NAME = "efficientnet-lite0"
#: the least cosine between a descriptor of the ONNX Runtime path and the float torch path's
TOLERANCE = 0.99999


@pytest.fixture(scope="module")
def numpy_net():
    return EfficientNetLite(numpy_weights(get_backbone(NAME)))


@pytest.fixture(scope="module")
def session(numpy_net):
    return ortnet.OrtNet(ortnet.model_bytes(numpy_net), num_threads=1)


@pytest.fixture(scope="module")
def inputs():
    """The indexer's CNN inputs of the demo photos: (photos at 384 px, their edge maps drawn), uint8."""
    settings, side = SketchSettings(), GemSettings().max_side
    photos, drawings = [], []
    for path in sorted((DEMO / "photos").glob("*.jpg"))[:12]:
        image = load_image(path, max_side=max(settings.max_side, side))
        photos.append(network_input(image.pixels, side))
        work, scale = working_image(image, settings.max_side)
        strength, theta = get_detector(settings.detector)(work)
        drawings.append(drawn(edges_from_maps(strength, theta, scale=scale, min_strength=settings.min_strength)))
    return photos, drawings


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("shape", [(224, 224), (97, 131), (33, 300), (160, 96), (288, 384)])
def test_feature_maps_equal_numpy(numpy_net, session, shape):
    """Odd and even sizes exercise the "SAME" padding (uneven halves) of every strided convolution."""
    images = np.random.default_rng(sum(shape)).random((2, *shape, 3), dtype=np.float32)
    maps = session.features(images)
    assert maps.shape == (2, -(-shape[0] // 32), -(-shape[1] // 32), 1280) and maps.dtype == np.float32
    for image, m in zip(images, maps, strict=True):
        assert np.max(np.abs(m - numpy_net.features(image))) < 1e-3  # activations in [0, 6] (ReLU6)


def test_features_take_channels_last_batches(session):
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        session.features(np.zeros((64, 64, 3), np.float32))


@pytest.mark.parametrize("kind", ["photos", "drawings"])
def test_stored_descriptors_equal_torch(inputs, kind):
    """The indexer's descriptors of the demo photos (multi-scale GeM) and of their edges drawn (the global
    sketch descriptor): ONNX Runtime within TOLERANCE of torch, and every photo's nearest neighbours the same."""
    settings = GemSettings() if kind == "photos" else drawing_settings(NAME)
    images = inputs[0] if kind == "photos" else inputs[1]
    fast = GemDescriber(settings, "cpu", num_threads=1, backend="onnx").describe(images)
    ref = GemDescriber(settings, "cpu", num_threads=1, backend="torch").describe(images)
    assert fast.dtype == np.float32 and fast.shape == ref.shape
    assert cosines(fast, ref).min() > TOLERANCE
    assert np.max(np.abs(fast - ref)) < 1e-4
    queries = GemDescriber(settings, "cpu", backend="numpy").describe(images)  # the query path: float numpy
    (da, ia), (db, ib) = VectorIndex(fast, kind="flat").search(queries, 6), VectorIndex(ref, kind="flat").search(
        queries, 6)
    np.testing.assert_allclose(da, db, atol=1e-4)
    for row in range(len(ia)):
        clear = np.r_[True, np.diff(da[row]) < -1e-3] & np.r_[np.diff(da[row]) < -1e-3, True]
        assert np.array_equal(ia[row][clear], ib[row][clear])


def test_onnx_backend_is_cpu_only():
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CPU only"):
            GemDescriber(device="cuda", backend="onnx")
    assert GemDescriber(device="cpu", backend="onnx").runs_numpy is False


# ----------------------------------------------------------------------------------------------- the cached graph


def test_the_graph_is_cached_beside_the_numpy_weights_and_opened_once(tmp_path, monkeypatch, inputs):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cnn, "_ONNX", {})
    net = onnx_backbone(NAME, 1)
    path = ortnet.cached_model_path(numpy_weights_path(NAME))
    assert path.is_file() and path.parent == tmp_path / "sketchsearch" and path.suffix == ".onnx"
    assert numpy_weights_path(NAME).is_file()  # written on the way, through torch
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert onnx_backbone(NAME, 1) is net and onnx_backbone(NAME, 2) is not net
    monkeypatch.setattr(cnn, "_ONNX", {})  # a fresh process reads the file
    monkeypatch.setattr(ortnet, "model_bytes", lambda *a, **k: pytest.fail("the cached graph was built again"))
    assert onnx_backbone(NAME, 1) is not net


def test_a_damaged_graph_is_built_again(tmp_path, monkeypatch, caplog, inputs):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = ortnet.cached_model_path(numpy_weights_path(NAME))
    path.parent.mkdir(parents=True)
    good = GemDescriber(device="cpu", backend="torch").describe(inputs[0][:1])
    for damage in (b"not a graph", None):
        monkeypatch.setattr(cnn, "_ONNX", {})
        if damage is None:  # a truncated copy of a real file
            onnx_backbone(NAME, 1)
            monkeypatch.setattr(cnn, "_ONNX", {})
            path.write_bytes(path.read_bytes()[:100_000])
        else:
            path.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="engine.cnn"):
            d = GemDescriber(device="cpu", num_threads=1, backend="onnx")
            assert cosines(d.describe(inputs[0][:1]), good)[0] > TOLERANCE
        assert "cannot use the cached network graph" in caplog.text
        caplog.clear()
        assert ortnet.OrtNet(path.read_bytes()) is not None  # written again


def test_an_unwritable_cache_folder_still_gives_descriptors(tmp_path, monkeypatch, caplog, inputs):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(cnn, "_ONNX", {})
    monkeypatch.setattr(cnn, "_CACHE", {})
    with caplog.at_level(logging.WARNING, logger="engine.cnn"):
        d = GemDescriber(device="cpu", num_threads=1, backend="onnx")
        x = d.describe(inputs[0][:1])
    assert "built in memory" in caplog.text
    ref = GemDescriber(device="cpu", backend="torch").describe(inputs[0][:1])
    assert cosines(x, ref)[0] > TOLERANCE


def test_queries_on_the_cpu_run_onnx_runtime_once_the_weights_are_cached(tmp_path, monkeypatch, inputs):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cnn, "_ONNX", {})
    first = GemDescriber(device="cpu", backend="auto")
    ref = first.describe(inputs[0][:2])  # nothing cached yet: torch, which caches the weights
    assert first._cpu_net() is None
    d = GemDescriber(device="cpu", backend="auto")
    assert isinstance(d._cpu_net(), ortnet.OrtNet) and not d.runs_numpy
    x = d.describe(inputs[0][:2])
    assert np.min(np.sum(x * ref, axis=1)) > 1 - 1e-5


def test_queries_fall_back_on_numpy_where_onnx_runtime_cannot_run(tmp_path, monkeypatch, inputs, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cnn, "_ONNX", {})
    GemDescriber(device="cpu", backend="auto").describe(inputs[0][:1])  # caches the weights

    def broken(*args, **kwargs):
        raise ImportError("no onnxruntime here")

    monkeypatch.setattr(cnn, "onnx_backbone", broken)
    d = GemDescriber(device="cpu", backend="auto")
    with caplog.at_level(logging.WARNING, logger="engine.cnn"):
        assert d.runs_numpy
    assert "ONNX Runtime not used" in caplog.text


def test_a_cached_graph_opens_without_reading_the_numpy_weights(tmp_path, monkeypatch, inputs):
    """A query's first sketch: the session is made from the cached graph, and the numpy weights (40-60 ms to read)
    are read only where ONNX Runtime cannot run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cnn, "_ONNX", {})
    monkeypatch.setattr(cnn, "_NUMPY", {})
    onnx_backbone(NAME, 1)  # caches the weights and the graph
    monkeypatch.setattr(cnn, "_ONNX", {})
    monkeypatch.setattr(cnn, "_NUMPY", {})
    real_load = npnet.load
    monkeypatch.setattr(npnet, "load", lambda path: pytest.fail("the numpy weights were read"))
    d = GemDescriber(device="cpu", backend="auto")
    assert isinstance(d._cpu_net(), ortnet.OrtNet) and not d.runs_numpy

    def broken(*args, **kwargs):
        raise RuntimeError("no session here")

    monkeypatch.setattr(npnet, "load", real_load)
    monkeypatch.setattr(cnn, "onnx_backbone", broken)
    assert GemDescriber(device="cpu", backend="auto").runs_numpy  # the numpy fallback, graph cached or not


# ----------------------------------------------------------------------------------------------- the int8 graph
#: the least cosine of each int8 descriptor to the float one, and of their mean (the calibration's check on the
#: odd Sketchy classes: photos 0.9938 on average, 0.973 at least; drawings 0.981 and 0.952)
INT8_PHOTOS, INT8_PHOTOS_MEAN = 0.96, 0.99
INT8_DRAWINGS, INT8_DRAWINGS_MEAN = 0.94, 0.975


def same_pad(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding of (N, C, H, W): the smaller half first."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return torch.nn.functional.pad(x, pads)


def fake_quant_features(net: EfficientNetLite, ranges: dict, image: np.ndarray) -> np.ndarray:
    """The int8 graph's arithmetic by brute force, in float64 torch: every activation rounded to its uint8 grid
    (scale (high - low) / 255, zero point round(-low / scale), ReLU6 outputs over [0, min(6, high)]), every
    convolution's weights to int8 with one symmetric scale per output channel, its bias to int32 in the
    product of the input's and the weights' scales."""
    f64 = torch.float64

    def grid(low, high):
        low, high = min(low, 0.0), max(high, 0.0)
        scale = max(high - low, 1e-8) / 255.0
        return float(np.float32(scale)), float(np.clip(round(-low / scale), 0, 255))  # stored in float32

    def fq(x, low, high):  # QuantizeLinear then DequantizeLinear, in float32 as the graph computes them
        scale, zero = grid(low, high)
        s32 = torch.tensor(scale, dtype=torch.float32)
        q = torch.clamp(torch.round(x.float() / s32) + zero, 0, 255)
        return ((q - zero) * s32).double(), scale

    layer = 0

    def conv(x, x_scale, w, b, stride, relu6, groups=1):
        nonlocal layer
        name = f"layer{layer}"
        layer += 1
        w = torch.as_tensor(np.asarray(w, np.float32), dtype=f64)
        b = torch.as_tensor(np.asarray(b, np.float32), dtype=f64)
        w_scale = torch.maximum(w.abs().flatten(1).amax(1) / 127.0, b.abs() / (x_scale * 2.0 ** 30))
        w_scale = torch.where(w_scale > 0, w_scale, torch.ones_like(w_scale)).float().double()
        wq = torch.clamp(torch.round(w / w_scale[:, None, None, None]), -127, 127) * w_scale[:, None, None, None]
        b_scale = (x_scale * w_scale).float().double()
        bq = torch.round(b / b_scale) * b_scale
        y = torch.nn.functional.conv2d(same_pad(x, w.shape[2], stride), wq, bq, stride=stride, groups=groups)
        low, high = ranges[name]
        return fq(y, 0.0, min(high, 6.0)) if relu6 else fq(y, low, high)

    x = (np.asarray(image, np.float32) - np.float32(net.mean)) * np.float32(net.scale)  # in float32 as the graph
    x = torch.as_tensor(x, dtype=f64).permute(2, 0, 1)[None]
    ends = sorted(float((v - np.float32(net.mean)) * np.float32(net.scale)) for v in (0.0, 1.0))
    x, s = fq(x, *ends)
    k = net.stem_k
    x, s = conv(x, s, net.stem_w.reshape(k, k, 3, -1).transpose(3, 2, 0, 1), net.stem_b, net.stem_stride, True)
    for expand, dw_w, dw_b, stride, proj_w, proj_b, skip in net.blocks:
        inputs = x
        if expand is not None:
            x, s = conv(x, s, expand[0].T[:, :, None, None], expand[1], 1, True)
        x, s = conv(x, s, dw_w.transpose(2, 0, 1)[:, None], dw_b, stride, True, groups=dw_w.shape[2])
        x, s = conv(x, s, proj_w.T[:, :, None, None], proj_b, 1, False)
        if skip:
            x, s = fq(x + inputs, *ranges[f"layer{layer - 1}.skip"])
    x, s = conv(x, s, net.head_w.T[:, :, None, None], net.head_b, 1, True)
    return x[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def shipped_ranges():
    return cnn.int8_ranges(NAME)[0]


@pytest.fixture(scope="module")
def small_net():
    """The network's first three blocks (the third has a skip) and a head of 64 random maps: few enough layers
    that a rounding tie broken the other way upstream stays rare at the end."""
    arrays = numpy_weights(get_backbone(NAME))
    kept = {k: v for k, v in arrays.items() if not k.startswith("b") or k.split(".")[0] in ("b0", "b1", "b2")}
    kept["head.w"] = np.random.default_rng(0).normal(0, 0.3, (24, 64)).astype(np.float32)
    kept["head.b"] = np.full(64, 0.5, np.float32)
    return EfficientNetLite(kept)


def test_int8_graph_computes_the_quantised_arithmetic(small_net):
    """ONNX Runtime's integer kernels against the brute force (float64 convolutions, the activations rounded to
    their grids in float32): calibrated on two images, run on a third, the feature maps agree to a step of
    the last activation's grid save where a rounding tie went the other way."""
    rng = np.random.default_rng(1)
    images = [cv2_resize(rng.integers(0, 256, (72, 96, 3)).astype(np.uint8), (96 - 8 * i, 72)) for i in range(3)]
    ranges = ortnet.activation_ranges(small_net, images[:2])
    assert set(ranges) == {"layer0", "layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "layer7",
                           "layer8", "layer8.skip", "layer9"}
    assert all(low <= high for low, high in ranges.values()) and ranges["layer0"][0] == 0.0  # ReLU6
    session = ortnet.OrtNet(ortnet.model_bytes(small_net, ranges), num_threads=1)
    got = session.features(images[2][None])[0]
    ref = fake_quant_features(small_net, ranges, images[2])
    step = min(ranges["layer9"][1], 6.0) / 255.0
    assert got.shape == ref.shape == (18, 20, 64)  # stride 4 after three blocks
    assert np.mean(np.abs(got - ref) <= step * 1.01) > 0.99  # measured: 0.998
    assert np.max(np.abs(got - ref)) < 0.05 * np.abs(ref).max()
    flt = small_net.features(images[2])  # and the float network is further from it than the brute force is
    assert np.abs(got - flt).mean() > 20 * np.abs(got - ref).mean()  # measured: 270 times


def test_int8_graph_quantises_every_activation_it_is_given(numpy_net, shipped_ranges):
    """The ranges name every activation of the graph; a missing one is refused by name."""
    from onnx import load_from_string

    probes = {o.name for o in load_from_string(ortnet.model_bytes(numpy_net, probe=True)).graph.output} - {"features"}
    assert probes == set(shipped_ranges)
    graph = load_from_string(ortnet.model_bytes(numpy_net, shipped_ranges)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") == len(shipped_ranges) + 1 and "Clip" not in ops  # + the input
    codes = [w for w in graph.initializer if w.name.endswith(".w")]
    assert codes and all(w.data_type == 3 for w in codes)  # int8
    missing = dict(shipped_ranges)
    missing.pop("layer7")
    with pytest.raises(ValueError, match="layer7"):
        ortnet.model_bytes(numpy_net, missing)


@pytest.mark.parametrize("kind", ["photos", "drawings"])
def test_int8_descriptors_within_tolerance_of_float(inputs, kind):
    """The indexer's int8 descriptors of the demo photos against the float ones (the queries'), and every
    photo's nearest neighbour among the others found by a float query the same."""
    settings = GemSettings() if kind == "photos" else drawing_settings(NAME)
    images = inputs[0] if kind == "photos" else inputs[1]
    least, mean = (INT8_PHOTOS, INT8_PHOTOS_MEAN) if kind == "photos" else (INT8_DRAWINGS, INT8_DRAWINGS_MEAN)
    fast = GemDescriber(settings, "cpu", num_threads=1, backend="onnx-int8").describe(images)
    ref = GemDescriber(settings, "cpu", num_threads=1, backend="onnx").describe(images)
    cos = cosines(fast, ref)
    assert cos.min() > least and cos.mean() > mean, cos
    assert not np.allclose(fast, ref, atol=1e-4)  # the int8 graph did run
    own = np.argmax(ref @ fast.T, axis=1)  # each float query finds its own int8 descriptor first
    assert np.array_equal(own, np.arange(len(images)))


def test_the_indexer_runs_the_int8_graph_for_the_photos_only(monkeypatch, inputs):
    """Where the backbone has a calibration the indexer describes the photos with the int8 graph, and with the
    float one where it is told not to (``int8=False``) or the backbone has none; their edge drawings always with
    the float graph, as a query's drawing is described (int8 drawings cost the fused search 3-5 % of its mAP)."""
    from engine.indexer import run_jobs

    photo = sorted((DEMO / "photos").glob("*.jpg"))[0]
    image, drawing = inputs[0][0], inputs[1][0]  # that photo's network inputs

    def indexed(**kw):
        (res,) = run_jobs([(str(photo), None)], SketchSettings(), 1, cnn_json=GemSettings().to_json(), **kw)
        return res.record.gem.astype(np.float32), res.record.sketch.astype(np.float32)

    def described(settings, backend, x):
        return GemDescriber(settings, "cpu", num_threads=1, backend=backend).describe([x])[0]

    drawn_float = described(drawing_settings(NAME), "onnx", drawing)
    photo_int8, photo_float = (described(GemSettings(), b, image) for b in ("onnx-int8", "onnx"))
    assert cosines(photo_int8[None], photo_float[None])[0] < 0.9999  # the two can be told apart
    for kw, want in (({}, photo_int8), ({"int8": False}, photo_float)):
        gem, sketch = indexed(**kw)
        np.testing.assert_allclose(gem, want, atol=2e-3)  # stored in float16
        np.testing.assert_allclose(sketch, drawn_float, atol=2e-3)
    monkeypatch.setattr(cnn, "INT8_RANGES", {})  # a backbone without a calibration: float
    monkeypatch.setattr(cnn, "_AGREES", {})
    gem, sketch = indexed()
    np.testing.assert_allclose(gem, photo_float, atol=2e-3)
    np.testing.assert_allclose(sketch, drawn_float, atol=2e-3)


def test_int8_needs_a_calibration(tmp_path, monkeypatch):
    monkeypatch.setattr(cnn, "_RANGES", {})
    monkeypatch.setattr(cnn, "INT8_RANGES", {NAME: tmp_path / "absent.json"})
    with pytest.raises(cnn.SketchSearchError, match="cannot read the int8 calibration"):
        onnx_backbone(NAME, 1, int8=True)
    (tmp_path / "absent.json").write_text('{"ranges": {}}')
    assert not cnn.has_int8("no-such-net")
    with pytest.raises(ValueError, match="no calibrated range"):
        onnx_backbone(NAME, 1, int8=True)


def cv2_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(np.asarray(image, np.float32) / 255.0, size, interpolation=cv2.INTER_AREA)


def test_the_int8_graph_is_used_only_where_it_agrees_with_the_float_one(monkeypatch, caplog):
    """A CPU whose integer products differ (x86 without VNNI can saturate them) indexes with the float graph."""
    monkeypatch.setattr(cnn, "_AGREES", {})
    assert cnn.int8_agrees(NAME)  # this machine
    assert cnn.photo_backend(NAME) == "onnx-int8" and cnn.photo_backend(NAME, int8=False) == "onnx"
    monkeypatch.setattr(cnn, "_AGREES", {})
    monkeypatch.setattr(cnn, "INT8_AGREEMENT", 1.01)  # as if its descriptors were off
    with caplog.at_level(logging.WARNING, logger="engine.cnn"):
        assert not cnn.int8_agrees(NAME)
    assert "does not agree" in caplog.text
    assert cnn.photo_backend(NAME) == "onnx"
    monkeypatch.setattr(cnn, "_AGREES", {})
    monkeypatch.setattr(cnn, "INT8_RANGES", {})
    assert not cnn.int8_agrees(NAME)
