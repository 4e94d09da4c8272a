"""The numpy EfficientNet-Lite0 (engine.npnet) against the torch one (engine.torchnet), and its weights cache."""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import cnn, npnet
from engine.cnn import GemDescriber, GemSettings, get_backbone, numpy_backbone, numpy_weights_path
from engine.describe import drawing_settings
from engine.fusion import drawing_input
from engine.imageio import load_image
from engine.imagesearch import VectorIndex
from engine.torchnet import gem, numpy_weights

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"
NAME = "efficientnet-lite0"


@pytest.fixture(scope="module")
def torch_net():
    return get_backbone(NAME)


@pytest.fixture(scope="module")
def numpy_net(torch_net):
    return npnet.EfficientNetLite(numpy_weights(torch_net))


@pytest.fixture(scope="module")
def demo_photos():
    paths = sorted((DEMO / "photos").glob("*.jpg"))[:8]
    return [load_image(p, max_side=GemSettings().max_side).pixels for p in paths]


def torch_maps(net, image):
    with torch.inference_mode():
        return net(torch.from_numpy(image).permute(2, 0, 1)[None].contiguous())[0].permute(1, 2, 0).numpy()


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("shape", [(224, 224), (97, 131), (33, 300), (160, 96)])
def test_feature_maps_equal_torch_on_random_images(torch_net, numpy_net, shape):
    """Odd sizes exercise the "SAME" padding (uneven halves) of every strided convolution."""
    image = np.random.default_rng(sum(shape)).random((*shape, 3), dtype=np.float32)
    a, b = numpy_net.features(image), torch_maps(torch_net, image)
    assert a.shape == b.shape == (-(-shape[0] // 32), -(-shape[1] // 32), 1280) and a.dtype == np.float32
    assert np.max(np.abs(a - b)) < 1e-3  # activations in [0, 6] (ReLU6); float32 rounding over 16 blocks
    ga, gb = npnet.gem(a, 3.0), gem(torch.from_numpy(b).permute(2, 0, 1)[None], 3.0)[0].numpy()
    assert cosine(ga, gb) > 0.99999


def test_gem_equals_torch_gem():
    x = np.random.default_rng(0).random((5, 7, 16), dtype=np.float32)
    ref = gem(torch.from_numpy(x).permute(2, 0, 1)[None], p=3.0)[0].numpy()
    np.testing.assert_allclose(npnet.gem(x, 3.0), ref, rtol=1e-5)
    with pytest.raises(ValueError, match="gem expects"):
        npnet.gem(x[0], 3.0)


@pytest.mark.slow
def test_image_descriptors_equal_torch_on_real_photos(demo_photos):
    """Whole multi-scale descriptors of demo photos: the max abs difference and the cosine of each pair."""
    a = GemDescriber(device="cpu", backend="numpy").describe(demo_photos)
    b = GemDescriber(device="cpu", backend="torch").describe(demo_photos)
    assert np.max(np.abs(a - b)) < 1e-4
    assert min(float(x @ y) for x, y in zip(a, b, strict=True)) > 0.99999


def test_sketch_descriptors_equal_torch():
    """The global sketch descriptor's network input (a drawing) gives the same vector in both backends."""
    from engine.edges import sketch_edges
    from engine.imageio import load_image as load

    edges = sketch_edges(load(DEMO / "sketches" / "house.png").pixels)
    settings = drawing_settings(NAME)
    x = drawing_input(edges, query=True)
    a = GemDescriber(settings, "cpu", backend="numpy").describe([x])[0]
    b = GemDescriber(settings, "cpu", backend="torch").describe([x])[0]
    assert cosine(a, b) > 0.99999 and np.max(np.abs(a - b)) < 1e-4


@pytest.mark.slow
def test_image_search_rankings_equal_between_backends(demo_photos):
    """Every demo photo as a query against the others: the same ranking where cosines are not near-tied."""
    db = GemDescriber(device="cpu", backend="torch").describe(demo_photos)
    q = {b: GemDescriber(device="cpu", backend=b).describe(demo_photos) for b in ("numpy", "torch")}
    index = VectorIndex(db, kind="flat")
    (da, ia), (db_, ib) = index.search(q["numpy"], 8), index.search(q["torch"], 8)
    np.testing.assert_allclose(da, db_, atol=1e-4)
    for row in range(len(ia)):
        clear = np.r_[True, np.diff(da[row]) < -1e-3] & np.r_[np.diff(da[row]) < -1e-3, True]
        assert np.array_equal(ia[row][clear], ib[row][clear])


# ----------------------------------------------------------------------------------------------- the weights cache


def test_cache_lives_in_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert npnet.cache_dir() == tmp_path / "sketchsearch"
    assert numpy_weights_path(NAME).parent == tmp_path / "sketchsearch"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: relative paths are invalid
    assert npnet.cache_dir() == Path.home() / ".cache" / "sketchsearch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert npnet.cache_dir() == Path.home() / ".cache" / "sketchsearch"


def test_the_suite_never_writes_the_users_cache():
    assert not str(npnet.cache_dir()).startswith(str(Path.home() / ".cache"))


def test_building_the_torch_network_writes_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cnn, "_CACHE", {})  # as in a fresh process
    assert numpy_backbone(NAME) is None
    get_backbone(NAME)
    path = numpy_weights_path(NAME)
    assert path.is_file() and path.parent == tmp_path / "sketchsearch"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    net = numpy_backbone(NAME)
    assert net is not None and net is numpy_backbone(NAME)  # loaded once


def test_auto_runs_torch_until_the_weights_are_cached(tmp_path, monkeypatch, demo_photos):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    d = GemDescriber(device="cpu", backend="auto")
    assert not d.runs_numpy
    x = d.describe(demo_photos[:1])
    ref = GemDescriber(device="cpu", backend="torch").describe(demo_photos[:1])
    np.testing.assert_array_equal(x, ref)


def test_a_damaged_cache_file_falls_back_on_torch(tmp_path, monkeypatch, caplog, demo_photos):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = numpy_weights_path(NAME)
    path.parent.mkdir(parents=True)
    good = GemDescriber(device="cpu", backend="torch").describe(demo_photos[:1])
    for damage in (b"not a zip file", None):
        if damage is None:  # a truncated copy of a real file
            npnet.save(path, numpy_weights(get_backbone(NAME)))
            path.write_bytes(path.read_bytes()[:100_000])
        else:
            path.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="engine.npnet"):
            d = GemDescriber(device="cpu", backend="auto")
            assert not d.runs_numpy
            np.testing.assert_array_equal(d.describe(demo_photos[:1]), good)
        assert "cannot use the cached network weights" in caplog.text
        caplog.clear()
        assert npnet.load(path) is not None  # dropped, and written again by the torch network


def test_missing_arrays_are_a_damaged_file(tmp_path, caplog):
    path = tmp_path / "w.npz"
    arrays = numpy_weights(get_backbone(NAME))
    npnet.save(path, {k: v for k, v in arrays.items() if k != "head.w"})
    with caplog.at_level(logging.WARNING, logger="engine.npnet"):
        assert npnet.load(path) is None
    assert "head.w" in caplog.text and not path.exists()
    assert npnet.load(tmp_path / "absent.npz") is None


def test_a_new_weights_version_is_a_new_cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = tmp_path / "weights.pth"
    source.write_bytes(b"w" * 10)
    a = npnet.cached_weights_path(NAME, source, "0.0.1")
    assert a == npnet.cached_weights_path(NAME, source, "0.0.1")
    b = npnet.cached_weights_path(NAME, source, "0.0.2")
    assert b != a and "0.0.2" in b.name and b.parent == a.parent
    source.write_bytes(b"w" * 11)  # the same version reinstalled with other weights
    assert npnet.cached_weights_path(NAME, source, "0.0.1") != a


def test_an_unwritable_cache_folder_still_gives_numpy_descriptors(tmp_path, monkeypatch, demo_photos):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(cnn, "_CACHE", {})
    d = GemDescriber(device="cpu", backend="numpy")
    assert d.runs_numpy
    ref = GemDescriber(device="cpu", backend="torch").describe(demo_photos[:1])
    assert cosine(d.describe(demo_photos[:1])[0], ref[0]) > 0.99999


def test_numpy_backend_is_cpu_only():
    with pytest.raises(ValueError, match="unknown backend"):
        GemDescriber(device="cpu", backend="jax")
