"""Image search through an index: the CLI contract, expansion of sketch queries, whitening fallback,
refusals with clear messages."""
import json

import cv2
import numpy as np
import pytest

from app.cli import main
from engine import imageindex
from engine.collection import SketchIndex
from engine.compact import BASIS_DIM
from engine.errors import Hint, IndexFormatError, QueryError
from engine.indexer import index_folders

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


def indexed_copy(indexed, tmp_path):
    """A copy of the module's photo folder and a fresh index of it (for tests that change them)."""
    import shutil

    root = tmp_path / "photos"
    shutil.copytree(indexed[0], root)
    db = tmp_path / "db"
    index_folders([root], db, workers=1)
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
        # the same placement (the soft mean's last bit may differ with the block a photo's scores came in)
        assert h.box == pytest.approx(plain[h.path].box, rel=1e-9)
        assert h.scale == pytest.approx(plain[h.path].scale, rel=1e-12)


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
    with pytest.raises(QueryError, match="no image descriptors") as e:
        SketchIndex(db).search_image(root / "p1.jpg")
    assert e.value.hint == Hint("image-descriptors", str(db))
    with pytest.raises(IndexFormatError, match="another image backbone"):
        index_folders([root], db, workers=1, backbone="efficientnet-lite0")
    assert index_folders([root], db, workers=1).indexed == 10  # "auto" keeps the index's choice
    assert main(["index", str(root), "--db", str(db), "--backbone", "resnet-9000", "-q"]) == 2
    assert "unknown backbone" in capsys.readouterr().err


def test_new_photos_become_searchable_by_image_after_the_run(indexed, tmp_path):
    root, db = indexed_copy(indexed, tmp_path)
    cv2.imwrite(str(root / "new.jpg"), scene(99))
    index_folders([root], db, workers=1)
    hits = SketchIndex(db).search_image(root / "new.jpg", top_k=1)
    assert hits[0].path.endswith("new.jpg")
    # the previous generation is kept for readers opened before the run; the one before is gone
    assert len(list(db.glob("image-*.image_codes.npy"))) == 2
    index_folders([root], db, workers=1)  # nothing changed: no new generation, and the old one is cleaned up
    assert len(list(db.glob("image-*.image_codes.npy"))) == 1


def test_a_reader_opened_before_two_runs_still_searches_by_image(indexed, tmp_path):
    root, db = indexed_copy(indexed, tmp_path)
    old = SketchIndex(db)  # its generation is deleted by the second run below
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(root / name), scene(hash(name) % 1000))
        index_folders([root], db, workers=1)
    hits = old.search_image(root / "p2.jpg", top_k=20)
    assert hits[0].path.endswith("p2.jpg")
    assert len(hits) == 10 and not any(h.path.endswith(("a.jpg", "b.jpg")) for h in hits)  # not in its view


def test_a_run_killed_before_the_image_index_was_built_is_completed_by_the_next(indexed, tmp_path, monkeypatch):
    from engine.writer import IndexWriter

    root, db = indexed_copy(indexed, tmp_path)
    cv2.imwrite(str(root / "new.jpg"), scene(77))

    def killed(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(IndexWriter, "build_image_index", killed)
        with pytest.raises(KeyboardInterrupt):
            index_folders([root], db, workers=1)
    assert SketchIndex(db).search_image(root / "new.jpg", top_k=1)[0].path != str(root / "new.jpg")
    s = index_folders([root], db, workers=1)
    assert s.described == 0
    assert SketchIndex(db).search_image(root / "new.jpg", top_k=1)[0].path == str(root / "new.jpg")


def test_removed_photos_never_come_back_and_top_k_is_filled(indexed, tmp_path):
    from engine.writer import IndexWriter

    root, db = indexed_copy(indexed, tmp_path)
    index = SketchIndex(db)
    first = [h.path for h in index.search_image(root / "p5.jpg", top_k=10, qe=0)]
    with IndexWriter.existing(db) as w:  # removed without rebuilding the image index
        w.remove(first[:7])
    hits = SketchIndex(db).search_image(root / "p5.jpg", top_k=3, qe=0)
    assert [h.path for h in hits] == first[7:10]
    with IndexWriter.existing(db) as w:
        w.remove(first[7:])
    empty = SketchIndex(db)
    assert len(empty) == 0 and empty.search_image(root / "p5.jpg", top_k=3) == []


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


@pytest.mark.slow
def test_large_collections_search_an_ivfpq_index_reranked_with_the_exact_vectors(tmp_path, monkeypatch):
    from engine.bench.image import clustered_vectors
    from engine.cnn import GemSettings
    from engine.settings import SketchSettings
    from engine.writer import IndexWriter

    monkeypatch.setattr(imageindex, "IVF_THRESHOLD", 2000)
    n, settings = 12_000, SketchSettings()
    raw = clustered_vectors(n, 1280, clusters=300, seed=3)
    db = tmp_path / "db"
    with IndexWriter(db, settings, image_settings=GemSettings().to_json(), image_dim=1280) as w:
        w.add_arrays([f"/photos/{i:05d}.jpg" for i in range(n)], np.tile([640, 480, 400, 300, 0.625], (n, 1)),
                     {"codes": np.zeros((n, settings.dim), np.int8),
                      "inv_norms": np.ones((n, len(settings.scales), 3), np.float32),
                      "gem": raw.astype(np.float16)})
        record = w.build_image_index()
    assert record["kind"] == "ivfpq" and record["whitened"] and record["dim"] == BASIS_DIM
    images = SketchIndex(db).images("cpu")
    assert images.knn.kind == "ivfpq"
    vectors = images.all_vectors()
    found = 0
    for q in range(0, n, 600):
        exact = np.argsort(-(vectors @ vectors[q]), kind="stable")[:10]
        rows, scores = images.search_vector(vectors[q], 10)
        assert rows[0] == images.rows[q] and np.all(np.diff(scores) <= 1e-6)
        found += len(set(images.rows[exact]) & set(rows))
    assert found / (10 * len(range(0, n, 600))) > 0.9


# -- compact storage (issue 21): one int8 copy of each vector, folded in at the end of a run ----------

def synthetic_index(db, n: int, *, seed: int = 0, start: int = 0, dim: int = 1280):
    """Add ``n`` photos with random raw image vectors through the writer (like CNN features: most of their
    variance in a few dozen directions); returns the raw vectors (GeM, sketch)."""
    from engine.cnn import GemSettings
    from engine.settings import SketchSettings
    from engine.writer import IndexWriter

    def features(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        mix = np.random.default_rng(1234).normal(size=(48, dim))  # one space for every run
        return (rng.normal(size=(n, 48)) @ mix + rng.normal(size=(n, dim)) * 0.05 + 4.0).astype(np.float32)

    settings = SketchSettings()
    gem, sketch = features(seed), features(seed + 100)
    with IndexWriter(db, settings, image_settings=GemSettings().to_json(), image_dim=dim) as w:
        w.add_arrays([f"/photos/{i:05d}.jpg" for i in range(start, start + n)], np.tile([640, 480, 400, 300, 0.625],
                                                                                        (n, 1)),
                     {"codes": np.zeros((n, settings.dim), np.int8),
                      "inv_norms": np.ones((n, len(settings.scales), 3), np.float32),
                      "gem": gem.astype(np.float16), "sketch": sketch.astype(np.float16)})
        w.build_image_index()
    return gem, sketch


def test_a_run_folds_the_raw_vectors_into_int8_codes_that_score_like_them(tmp_path):
    from engine.vectors import l2n

    db = tmp_path / "db"
    gem, sketch = synthetic_index(db, 600)
    assert not list(db.glob("chunk-*.gem.npy")) and not list(db.glob("chunk-*.sketch.npy"))  # one copy: the codes
    index = SketchIndex(db)
    images = index.images()
    g = images.generation
    assert g.image_codes.dtype == np.int8 and g.image_codes.shape == (600, BASIS_DIM)
    assert g.sketch_codes.dtype == np.int8 and g.sketch_codes.shape == (600, BASIS_DIM)
    # the cosines of the codes are those of the float vectors (600 photos: no whitening, plain L2)
    want = l2n(gem) @ l2n(gem[7])
    got = images.image_scores(images.embed_raw(gem[7]), np.arange(600))
    assert np.abs(got - want).max() < 0.01
    assert np.argmax(got) == 7
    mean = sketch.mean(axis=0)
    q = l2n(sketch[11] - mean)
    got = images.sketch_scores(q, np.arange(600))
    assert np.abs(got - l2n(sketch - mean) @ q).max() < 0.01
    rows, _ = images.sketch_top(q, 5, with_scores=True)
    assert 11 in rows
    # the decoded vectors are the float ones to int8 precision
    assert np.abs(images.decoded("gem", [3, 1]) - l2n(gem[[3, 1]])).max() < 0.01
    info = index.info()
    assert info["bytes_per_image"] + info["rotation_bytes_per_image"] + info["image_bytes_per_image"] <= 1536


def test_a_small_collection_learns_its_bases_again_a_large_one_keeps_them_and_the_codes(tmp_path, monkeypatch):
    db = tmp_path / "db"
    synthetic_index(db, 300)
    first = SketchIndex(db).images().generation
    assert first.image_basis.n == 300
    synthetic_index(db, 100, seed=1, start=300)  # small: learned again on all 400
    second = SketchIndex(db).images().generation
    assert second.image_basis.n == 400
    monkeypatch.setattr(imageindex, "RELEARN_SMALL", 0)  # as a large collection: kept until it doubles
    synthetic_index(db, 100, seed=2, start=400)
    third = SketchIndex(db).images().generation
    np.testing.assert_array_equal(third.image_basis.components, second.image_basis.components)
    np.testing.assert_array_equal(third.image_codes[:400], second.image_codes)  # the old photos' codes as they were
    np.testing.assert_array_equal(third.sketch_codes[:400], second.sketch_codes)
    synthetic_index(db, 400, seed=3, start=500)  # 900 >= 2 x 400: learned again
    assert SketchIndex(db).images().generation.image_basis.n == 900
    assert imageindex.needs_bases(None, 10, 0)
    assert not imageindex.needs_bases(second.image_basis, 799, 399)
    assert imageindex.needs_bases(second.image_basis, 800, 1)


def test_a_run_killed_before_deleting_the_folded_raw_vectors_is_cleaned_up(indexed, tmp_path, monkeypatch):
    from engine import writer

    root, db = indexed_copy(indexed, tmp_path)
    cv2.imwrite(str(root / "new.jpg"), scene(42))
    real = writer.delete_owned

    def killed(con, folder, names):
        names = list(names)
        if any(n.endswith((".gem.npy", ".sketch.npy")) for n in names):
            raise KeyboardInterrupt
        return real(con, folder, names)

    monkeypatch.setattr(writer, "delete_owned", killed)
    with pytest.raises(KeyboardInterrupt):
        index_folders([root], db, workers=1)
    assert list(db.glob("chunk-*.gem.npy"))  # committed generation, raw vectors still there
    assert SketchIndex(db).search_image(root / "new.jpg", top_k=1)[0].path.endswith("new.jpg")
    monkeypatch.setattr(writer, "delete_owned", real)
    cv2.imwrite(str(root / "newer.jpg"), scene(43))
    index_folders([root], db, workers=1)
    assert not list(db.glob("chunk-*.gem.npy"))
    index = SketchIndex(db)
    assert len(index) == 12 and len(index.images()) == 12
    for name in ("new.jpg", "newer.jpg", "p4.jpg"):
        assert index.search_image(root / name, top_k=1)[0].path.endswith(name)


def test_the_rotation_descriptor_is_stored_as_int8_and_read_back_as_float(indexed):
    index = SketchIndex(indexed[1])
    assert np.load(next(indexed[1].glob("chunk-*.polar.npy"))).dtype == np.int8
    row = index.polar[2]
    assert row.dtype == np.float32 and row.shape == (index.polar.shape[1],)
    np.testing.assert_array_equal(np.asarray(index.polar)[2], row)
