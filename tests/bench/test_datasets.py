"""Data-set loaders against ../shared/data (slow; skipped when the data are missing)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.bench import datasets as ds


def test_missing_dataset_raises(tmp_path, monkeypatch):
    with pytest.raises(ds.DatasetMissing, match=str(tmp_path)):
        ds.load_sketchy(tmp_path)
    with pytest.raises(ds.DatasetMissing, match="sysu-shapes"):
        ds.load_sysu(tmp_path)
    monkeypatch.setenv(ds.DATA_ENV_VAR, str(tmp_path))
    assert ds.data_root() == tmp_path
    with pytest.raises(ds.DatasetMissing):
        ds.load_sketchy()


def test_sysu_queries_on_synthetic_data():
    square = np.array([[0, 0], [59, 0], [59, 59], [0, 59]], float)
    data = ds.SysuData(
        image_paths=[None] * 4, image_class=np.array([0, 0, 1, 1]),
        image_sizes=np.array([[100, 100]] * 4),
        boxes=[np.array([[0, 0, 60, 60]], float), np.array([[0, 0, 10, 10], [0, 0, 60, 60]], float),
               np.array([[0, 0, 10, 10]], float), np.array([[0, 0, 60, 60]], float)],
        polygons=[[square], [square / 6, square], [square / 6], [square]],
        class_names=["a", "b"])
    qs = ds.sysu_queries(data, max_side=100)
    assert [(q.class_index, q.source_index, q.object_index) for q in qs] == [(0, 0, 0), (0, 1, 1), (1, 3, 0)]
    sketch, cls, src = qs[1]
    assert sketch.dtype == np.uint8 and sketch.shape == (100, 100) and cls == 0 and src == 1
    assert len(ds.sysu_queries(data, per_class=1, max_side=100)) == 2
    rel, ex = ds.sysu_ground_truth(data, qs)
    assert rel.tolist() == [[False, True, False, False], [True, False, False, False],
                            [False, False, True, False]]
    assert ex.sum() == 3 and ex[2, 3]


def _data_or_skip(loader):
    try:
        return loader()
    except ds.DatasetMissing as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_load_sketchy_counts():
    d = _data_or_skip(ds.load_sketchy)
    assert len(d.class_names) == 50
    assert len(d.photo_paths) == len(d.photo_ids) == d.photo_class.shape[0] == 50 * 25
    assert np.all(np.bincount(d.photo_class) == 25)
    assert all(p.is_file() and p.suffix == ".jpg" for p in d.photo_paths)
    families = {(p.parent.name, p.stem.rpartition("-")[0])
                for p in (d.photo_paths[0].parents[2] / "sketch").glob("*/*.png")}
    assert len(d.query_paths) == len(families)
    assert all(p.stem.endswith("-1") for p in d.query_paths)
    assert np.all(d.photo_class[d.query_photo] == d.query_class)
    assert all(d.photo_ids[i] == p.stem[:-2] for i, p in zip(d.query_photo, d.query_paths, strict=True))
    assert d.relevance().shape == (len(d.query_paths), len(d.photo_paths))
    assert d.query_paths == sorted(d.query_paths, key=lambda p: (p.parent.name, p.name))
    assert len(ds.load_sketchy(sketch_index=2).query_paths) <= len(d.query_paths)


@pytest.mark.slow
def test_load_sysu_boxes_and_polygons_consistent():
    d = _data_or_skip(ds.load_sysu)
    assert d.class_names == ["bicycle", "boat"]
    assert len(d) == len(d.boxes) == len(d.polygons) == d.image_class.shape[0] > 0
    assert set(np.unique(d.image_class)) == {0, 1}
    n_obj = [len(b) for b in d.boxes]
    assert min(n_obj) >= 1 and max(n_obj) <= 3 and max(n_obj) >= 2
    for (w, h), boxes, polys in zip(d.image_sizes, d.boxes, d.polygons, strict=True):
        assert boxes.shape == (len(polys), 4)
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        for b, p in zip(boxes, polys, strict=True):
            assert p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3
            ext = p.max(0) - p.min(0)
            assert np.all(np.abs(ext - (b[2:] - b[:2])) <= 2.0)
            assert np.all(np.abs(p.min(0) - b[:2]) <= 2.0)


@pytest.mark.slow
def test_sysu_queries_real():
    d = _data_or_skip(ds.load_sysu)
    qs = ds.sysu_queries(d, per_class=5, seed=0)
    assert len(qs) == 10
    assert [q.class_index for q in qs] == [0] * 5 + [1] * 5
    for q in qs:
        assert q.image.dtype == np.uint8 and max(q.image.shape) == 400
        assert q.image.min() == 0 and np.median(q.image) == 255
        assert d.image_class[q.source_index] == q.class_index
    again = ds.sysu_queries(d, per_class=5, seed=0)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(qs, again, strict=True))


def test_load_or_skip_says_why_a_part_cannot_run(tmp_path):
    skipped: list[str] = []
    assert ds.load_or_skip(ds.load_sysu, tmp_path / "absent", skipped, "region queries") is None
    assert skipped == ["region queries: no evaluation data (../shared/data)"]
    assert ds.load_or_skip(ds.load_sysu, tmp_path, skipped, "region queries") is None  # a folder without the data set
    assert skipped[1].startswith("region queries: sysu-shapes data set not found")
    assert ds.load_or_skip(lambda root: root, tmp_path, skipped, "x") == tmp_path and len(skipped) == 2
