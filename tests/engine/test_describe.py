"""engine.describe: the settings of a run, and a photo's descriptors as the indexer and the benchmarks get them."""
import dataclasses
import json

import cv2
import numpy as np
import pytest

from engine.afm import FeatureLayout
from engine.describe import (
    DEFAULT_BACKBONE,
    content_hash,
    describe_file,
    describe_photo,
    drawing_settings,
    gem_settings,
    resolve_settings,
)
from engine.errors import SketchSearchError
from engine.fusion import load_params
from engine.indexer import index_folders
from engine.rotation import POLAR_DIM
from engine.settings import SketchSettings

from .synth import photo_with_shape


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photos" / "star.png"
    path.parent.mkdir()
    cv2.imwrite(str(path), photo_with_shape("star", (120, 80, 360, 320)))
    return path


def test_a_new_index_gets_the_defaults_and_the_default_backbone(tmp_path):
    settings, image = resolve_settings(tmp_path / "new", None, "auto")
    assert settings == SketchSettings()
    assert json.loads(image)["backbone"] == DEFAULT_BACKBONE


def test_what_is_asked_wins_and_edges_set_the_detector(tmp_path):
    quality = SketchSettings.preset("quality")
    settings, image = resolve_settings(tmp_path / "new", quality, "none", edges="canny")
    assert settings == dataclasses.replace(quality, detector="canny")
    assert image is None


def test_an_existing_index_keeps_its_settings(tmp_path, photo):
    db = tmp_path / "db"
    index_folders([photo.parent], db, workers=1, backbone="none", settings=SketchSettings.preset("quality"))
    settings, image = resolve_settings(db, None, "auto")
    assert settings == SketchSettings.preset("quality") and image is None  # the index's, not the defaults


def test_an_unknown_detector_or_backbone_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unknown edge detector"):
        resolve_settings(tmp_path / "new", None, "auto", edges="no-such-detector")
    with pytest.raises(SketchSearchError):
        gem_settings("no-such-backbone")
    assert not (tmp_path / "new").exists()
    assert gem_settings("none") is None and gem_settings(None) is None


def test_the_global_sketch_descriptor_draws_at_the_fitted_size():
    params = load_params()
    s = drawing_settings(DEFAULT_BACKBONE)
    assert (s.max_side, s.p, s.scales) == (params.side, params.p, (1.0,))


def test_a_photo_is_described_with_its_identity_geometry_and_descriptors(photo):
    layout = FeatureLayout.from_settings(SketchSettings())
    record = describe_photo(photo, layout)
    assert record.path == str(photo) and record.hash == content_hash(photo)
    assert (record.width, record.height) == (640, 480) and record.n_points > 0
    assert record.codes.shape == (layout.settings.dim,) and record.codes.dtype == np.int8
    assert record.polar.shape == (POLAR_DIM,) and record.polar.dtype == np.float16
    again, net = describe_file(photo, layout, record.hash, 224)
    np.testing.assert_array_equal(again.codes, record.codes)
    pixels, drawn = net  # the CNN's inputs: the photo and its edge map drawn (uint8 RGB)
    assert pixels.shape[2] == 3 and drawn.dtype == np.uint8 and drawn.shape[2] == 3
