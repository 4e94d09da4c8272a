"""The query sketch's learned adaptation (engine.adaptation): the fit against its closed form, what it leaves
alone, the shipped map and its log, and the query path that applies it."""
import json
import logging

import numpy as np
import pytest

from engine import adaptation
from engine.adaptation import ADAPTATION_FILE, SketchAdaptation, adapt_sketch, load_adaptation


def _pairs(n=200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    a = np.eye(d) + 0.3 * rng.normal(size=(d, d))
    return x, x @ a + 0.05 * rng.normal(size=(n, d)) + 2.0


def test_full_rank_fit_is_ridge_regression_towards_the_identity():
    x, y = _pairs()
    lam = 3.0
    m = SketchAdaptation.fit(x, y, lam=lam, rank=x.shape[1], backbone="b")
    # brute force: minimise |(x - mx) W - (y - my)|^2 + lam |W - I|^2 column by column
    xc, yc = x - x.mean(0), y - y.mean(0)
    d = x.shape[1]
    w = np.zeros((d, d))
    for j in range(d):
        a = np.vstack([xc, np.sqrt(lam) * np.eye(d)])
        b = np.concatenate([yc[:, j], np.sqrt(lam) * np.eye(d)[:, j]])
        w[:, j] = np.linalg.lstsq(a, b, rcond=None)[0]
    q = np.random.default_rng(1).normal(size=(5, d))
    np.testing.assert_allclose(m(q), (q - x.mean(0)) @ w + y.mean(0), rtol=1e-4, atol=1e-4)


def test_a_huge_lam_leaves_the_centred_descriptor_as_it_is_and_low_rank_keeps_the_leading_part():
    x, y = _pairs()
    m = SketchAdaptation.fit(x, y, lam=1e12, rank=4, backbone="b")
    q = np.random.default_rng(2).normal(size=(3, x.shape[1]))
    np.testing.assert_allclose(m(q), q - x.mean(0) + y.mean(0), atol=1e-5)
    full = SketchAdaptation.fit(x, y, lam=1.0, rank=12, backbone="b")
    low = SketchAdaptation.fit(x, y, lam=1.0, rank=6, backbone="b")
    assert low.u.shape == (12, 6)
    err_low = np.linalg.norm(low(x) - y)
    err_none = np.linalg.norm(x - x.mean(0) + y.mean(0) - y)
    assert np.linalg.norm(full(x) - y) <= err_low < err_none  # the leading directions carry most of it


def test_saved_map_loads_and_applies_only_to_its_backbone_and_length(tmp_path, monkeypatch, caplog):
    x, y = _pairs(d=8)
    m = SketchAdaptation.fit(x, y, lam=1.0, rank=3, backbone="net-a")
    path = tmp_path / "a.npz"
    m.save(path)
    monkeypatch.setattr(adaptation, "ADAPTATION_FILE", path)
    load_adaptation.cache_clear()
    try:
        q = x[:2].astype(np.float32)
        np.testing.assert_allclose(adapt_sketch(q, "net-a"), m(q), atol=2e-3)  # float16 on disk
        assert adapt_sketch(q, "net-b") is q or np.array_equal(adapt_sketch(q, "net-b"), q)
        assert np.array_equal(adapt_sketch(np.ones(5, np.float32), "net-a"), np.ones(5))
        path.write_bytes(b"not a zip")
        load_adaptation.cache_clear()
        with caplog.at_level(logging.WARNING, logger="engine.adaptation"):
            assert adapt_sketch(q, "net-a") is q  # a damaged file: the plain descriptor, and a warning
        assert "not used" in caplog.text
        path.unlink()
        load_adaptation.cache_clear()
        assert load_adaptation() is None
    finally:
        load_adaptation.cache_clear()


def test_the_shipped_map_fits_the_default_backbone_and_won_on_the_held_classes():
    from engine.cnn import GemSettings

    a = load_adaptation()
    assert a is not None and a.backbone == GemSettings().backbone
    assert a.u.shape == a.v.shape == (1280, 64) and np.isfinite(a.u).all()
    log = json.loads(ADAPTATION_FILE.with_suffix(".json").read_text())
    assert log["ships"] and len(log["directions"]) == 2
    for d in log["directions"]:  # class-disjoint: fitted on one half of the classes, reported on the other
        assert d["fitted on"].split()[0] != d["reported on"].split()[0]
        for k in ("global alone mAP", "default search mAP"):
            assert d["adapted"][k] > d["plain"][k]


def test_a_query_sketch_is_adapted_before_it_is_centred(index):
    from engine.edges import sketch_edges
    from engine.fusion import drawing_input

    from .synth import sketch_of

    images = index.images()
    e = sketch_edges(sketch_of("house"))
    q = images.describe_sketch(e)
    raw = images._drawer.describe([drawing_input(e, query=True)])[0]
    v = load_adaptation()(raw) - images.sketch_mean
    np.testing.assert_allclose(q, v / np.linalg.norm(v), atol=1e-5)
    plain = raw - images.sketch_mean
    assert not np.allclose(q, plain / np.linalg.norm(plain), atol=1e-3)  # it did change the query


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    import cv2

    from engine.collection import SketchIndex
    from engine.indexer import index_folders

    from .synth import photo_with_shape

    root = tmp_path_factory.mktemp("adapt-photos")
    for i, (shape, box) in enumerate([("house", (40, 60, 380, 460)), ("star", (100, 30, 500, 430)),
                                      ("ell", (200, 40, 580, 440))]):
        cv2.imwrite(str(root / f"{i}-{shape}.jpg"), photo_with_shape(shape, box, seed=i)[..., ::-1])
    db = tmp_path_factory.mktemp("adapt-db") / "index"
    index_folders([root], db, workers=1)
    return SketchIndex(db)


def test_the_benchmarks_other_direction_uses_the_map_fitted_on_the_other_classes():
    from engine.adaptation import use_adaptation
    from engine.cnn import GemSettings

    shipped, other = load_adaptation(), load_adaptation(reverse=True)
    assert other is not None and not np.allclose(shipped.u, other.u)
    q = np.random.default_rng(3).normal(size=1280).astype(np.float32)
    b = GemSettings().backbone
    with use_adaptation(other):
        np.testing.assert_allclose(adapt_sketch(q, b), other(q))
        with use_adaptation(None):
            assert adapt_sketch(q, b) is q
    np.testing.assert_allclose(adapt_sketch(q, b), shipped(q))
