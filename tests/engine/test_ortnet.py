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
    monkeypatch.setattr(ortnet, "model_bytes", lambda net: pytest.fail("the cached graph was built again"))
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
