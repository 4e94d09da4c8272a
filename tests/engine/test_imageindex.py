"""Image search through an index: the CLI contract, expansion of sketch queries, whitening fallback,
refusals with clear messages."""
import json

import cv2
import numpy as np
import pytest

from engine import imageindex
from engine.cli import main
from engine.errors import IndexFormatError, QueryError
from engine.indexer import index_folders
from engine.store import SketchIndex

from .synth import photo_with_shape, sketch_of

SHAPES = ["arrow", "house", "ell", "star"]


def scene(seed: int) -> np.ndarray:
    """A textured BGR photo with a shape somewhere in it."""
    rng = np.random.default_rng(seed)
    x0, y0 = int(rng.integers(20, 200)), int(rng.integers(20, 120))
    return photo_with_shape(SHAPES[seed % 4], (x0, y0, x0 + 300, y0 + 300), seed=seed)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i in range(10):
        cv2.imwrite(str(root / f"p{i}.jpg"), scene(i))
    db = tmp_path_factory.mktemp("db") / "index"
    s = index_folders([root], db, workers=1)
    assert s.indexed == 10
    return root, db


def test_image_query_finds_the_photo_and_its_copies_first(indexed, tmp_path, capsys):
    root, db = indexed
    query = tmp_path / "query.png"
    img = cv2.imread(str(root / "p3.jpg"))
    cv2.imwrite(str(query), cv2.resize(img, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA))
    assert main(["search", "--db", str(db), "--image", str(query), "--top", "4", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["rank"] for x in lines] == [1, 2, 3, 4]
    first = lines[0]
    assert set(first) == {"rank", "path", "score", "box", "scale", "mirrored"}
    assert first["path"].endswith("p3.jpg") and first["box"] == [0, 0, 640, 480] and first["score"] > 0.9
    assert first["score"] >= lines[1]["score"] >= lines[3]["score"]
    hits = SketchIndex(db).search_image(query, top_k=3, qe=2)
    assert hits[0].path.endswith("p3.jpg")


def test_sketch_expansion_keeps_boxes_where_the_sketch_matched(indexed, tmp_path):
    _, db = indexed
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("house"))
    index = SketchIndex(db)
    plain = {h.path: h for h in index.search(sketch, top_k=10)}
    expanded = index.search(sketch, top_k=6, expand=3)
    assert len(expanded) == 6 and [h.rank for h in expanded] == list(range(1, 7))
    scores = [h.score for h in expanded]
    assert scores == sorted(scores, reverse=True)
    for h in expanded:  # each hit is boxed where the sketch matches it best
        assert h.box == plain[h.path].box and h.scale == plain[h.path].scale


def test_unreadable_query_image_is_one_line_naming_it(indexed, tmp_path, capsys):
    _, db = indexed
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 nope")
    assert main(["search", "--db", str(db), "--image", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "broken.jpg" in err and err.startswith("sketchsearch: error:")
    with pytest.raises(QueryError, match="missing.png"):
        SketchIndex(db).search_image(tmp_path / "missing.png")


def test_small_collection_falls_back_to_plain_l2_and_says_so(indexed, capsys):
    _, db = indexed
    info = SketchIndex(db).info()
    assert info["image_index"]["whitened"] is False and "10 photos < 1000" in info["image_index"]["note"]
    main(["info", "--db", str(db)])
    assert "no whitening: 10 photos < 1000" in capsys.readouterr().out


def test_sketch_only_index_and_backbone_mixing(indexed, tmp_path, capsys):
    root, _ = indexed
    db = tmp_path / "sketch-only"
    index_folders([root], db, workers=1, backbone="none")
    with pytest.raises(QueryError, match="no image descriptors.*--backbone efficientnet-lite0"):
        SketchIndex(db).search_image(root / "p1.jpg")
    with pytest.raises(IndexFormatError, match="another image backbone"):
        index_folders([root], db, workers=1, backbone="efficientnet-lite0")
    assert index_folders([root], db, workers=1).indexed == 10  # "auto" keeps the index's choice
    assert main(["index", str(root), "--db", str(db), "--backbone", "resnet-9000", "-q"]) == 2
    assert "unknown backbone" in capsys.readouterr().err


def test_new_photos_become_searchable_by_image_after_the_run(indexed, tmp_path):
    import shutil

    root = tmp_path / "photos"
    shutil.copytree(indexed[0], root)
    db = tmp_path / "db"
    index_folders([root], db, workers=1)
    cv2.imwrite(str(root / "new.jpg"), scene(99))
    index_folders([root], db, workers=1)
    hits = SketchIndex(db).search_image(root / "new.jpg", top_k=1)
    assert hits[0].path.endswith("new.jpg")
    assert len(list(db.glob("image-*.vectors.npy"))) == 1  # the previous generation is gone


@pytest.mark.slow
def test_whitening_is_learned_on_a_large_enough_collection(tmp_path, monkeypatch):
    monkeypatch.setattr(imageindex, "MIN_WHITENING_IMAGES", 100)  # 1,000 by default: too slow for a test
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(110):
        cv2.imwrite(str(root / f"{i:03d}.jpg"), cv2.resize(scene(i), (320, 240)))
    db = tmp_path / "db"
    index_folders([root], db)
    index = SketchIndex(db)
    assert index.info()["image_index"]["whitened"] is True
    assert index.search_image(root / "042.jpg", top_k=1)[0].path.endswith("042.jpg")
