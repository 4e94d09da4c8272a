"""End to end through the index: shapes pasted at known places are found and boxed; re-indexing is incremental."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.catalog import read_settings
from engine.collection import SketchIndex
from engine.errors import Hint, IndexFormatError, IndexNotFound, QueryError
from engine.indexer import index_folders
from engine.search import SearchOptions
from engine.settings import SketchSettings

from .synth import photo_with_shape, polygon, sketch_of

# the method's query scales (1, 0.8, 0.6 of the photo's longer side) find shapes of about that size
TRUE_BOX = {"arrow": (150, 70, 600, 400), "house": (40, 60, 380, 460), "ell": (200, 40, 580, 440),
            "star": (100, 30, 500, 430)}


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i, (shape, box) in enumerate(TRUE_BOX.items()):
        cv2.imwrite(str(root / f"{shape}.jpg"), photo_with_shape(shape, box, seed=i)[..., ::-1])
    for i in range(8):  # distractors: clutter, with each shape small in a corner
        shape = list(TRUE_BOX)[i % 4]
        img = photo_with_shape(shape, (40 + 10 * i, 40, 160 + 10 * i, 140), seed=100 + i)
        cv2.imwrite(str(root / f"other_{i}.png"), img[..., ::-1])
    db = tmp_path_factory.mktemp("db") / "index"
    summary = index_folders([root], db, workers=1)
    assert summary.indexed == 12 and not summary.skipped
    return root, db


@pytest.mark.parametrize("shape", list(TRUE_BOX))
def test_pasted_shape_is_found_and_boxed(collection, tmp_path, shape):
    root, db = collection
    sketch = tmp_path / "sketch.png"
    cv2.imwrite(str(sketch), sketch_of(shape))
    for mode in ("fast", "exhaustive"):
        hits = SketchIndex(db).search(sketch, top_k=3, options=SearchOptions(mode=mode))
        assert os.path.basename(hits[0].path) == f"{shape}.jpg"
        assert iou(hits[0].box, TRUE_BOX[shape]) >= 0.7, hits[0]
        assert hits[0].score >= hits[1].score


def test_reindex_is_incremental(collection, tmp_path):
    root, db = collection
    again = index_folders([root], db, workers=1)
    assert (again.described, again.reused, again.removed) == (0, 12, 0)
    extra = tmp_path / "extra"
    extra.mkdir()
    cv2.imwrite(str(extra / "new.png"), photo_with_shape("star", (10, 10, 200, 200), seed=9)[..., ::-1])
    (extra / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    db2 = tmp_path / "db2"
    s1 = index_folders([root, extra], db2, workers=1)
    assert s1.indexed == 13 and [os.path.basename(p) for p, _ in s1.skipped] == ["broken.jpg"]
    (extra / "new.png").unlink()
    s2 = index_folders([root, extra], db2, workers=1)  # a missing file is kept (an unplugged drive)...
    assert (s2.indexed, s2.described, s2.removed, s2.missing) == (13, 0, 0, 1)
    s3 = index_folders([root, extra], db2, workers=1, prune=True)  # ...until pruned
    assert (s3.indexed, s3.described, s3.removed, s3.missing) == (12, 0, 1, 0)
    assert len(SketchIndex(db2).skipped) == 1 and len(SketchIndex(db2)) == 12


def test_parallel_index_equals_serial(collection, tmp_path):
    root, db = collection
    par = tmp_path / "par"
    index_folders([root], par, workers=2)
    a, b = SketchIndex(db), SketchIndex(par)
    assert sorted(a.paths) == sorted(b.paths)  # rows in completion order
    ia, ib = np.argsort(a.paths), np.argsort(b.paths)
    np.testing.assert_array_equal(np.asarray(a.codes)[ia], np.asarray(b.codes)[ib])
    np.testing.assert_array_equal(np.asarray(a.inv_norms)[ia], np.asarray(b.inv_norms)[ib])


def test_errors_name_the_path(collection, tmp_path):
    root, db = collection
    with pytest.raises(IndexNotFound, match=str(tmp_path / "missing")):
        SketchIndex(tmp_path / "missing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IndexNotFound, match="not a sketchsearch index"):
        SketchIndex(tmp_path / "folder")
    with pytest.raises(QueryError, match="nothing.png"):
        SketchIndex(db).search(tmp_path / "nothing.png")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((50, 50), 255, np.uint8))
    with pytest.raises(QueryError, match="empty"):
        SketchIndex(db).search(blank)
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        index_folders([tmp_path / "no-such-folder"], tmp_path / "x")


def test_other_settings_are_refused(collection, tmp_path):
    root, db = collection
    assert read_settings(db) == SketchSettings()
    with pytest.raises(IndexFormatError, match="other sketch settings"):
        index_folders([root], db, settings=SketchSettings.preset("quality"))


def test_quality_preset_605d(collection, tmp_path):
    root, _ = collection
    db = tmp_path / "q"
    index_folders([root], db, settings=SketchSettings.preset("quality"), workers=1)
    index = SketchIndex(db)
    assert index.codes.shape == (12, 605) and index.info()["bytes_per_image"] == 605 + 36 + 8
    sketch = tmp_path / "sketch.png"
    cv2.imwrite(str(sketch), sketch_of("house"))
    hit = index.search(sketch, top_k=1)[0]
    assert os.path.basename(hit.path) == "house.jpg" and iou(hit.box, TRUE_BOX["house"]) >= 0.7


def test_more_results_than_the_shortlist_keep_scores_with_their_boxes(collection, tmp_path):
    _, db = collection
    sketch = tmp_path / "sketch.png"
    cv2.imwrite(str(sketch), sketch_of("arrow"))
    hits = SketchIndex(db).search(sketch, top_k=8, options=SearchOptions(order="sum", shortlist=2))
    assert len(hits) == 8 and [h.rank for h in hits] == list(range(1, 9))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    exact = {h.path: h for h in SketchIndex(db).search(sketch, top_k=12, options=SearchOptions(mode="exhaustive"))}
    for h in hits:  # each hit carries the exact 2-D score and box of its own alignment
        assert h.score == pytest.approx(exact[h.path].score, abs=1e-5) and h.box == exact[h.path].box


def test_bad_file_names_and_old_indexes_do_not_stop_a_run(collection, tmp_path):
    root, _ = collection
    folder = tmp_path / "odd"
    folder.mkdir()
    img = photo_with_shape("star", (100, 30, 500, 430), seed=5)[..., ::-1]
    cv2.imwrite(str(folder / "ok.png"), img)
    with open(os.path.join(os.fsencode(folder), b"bad\xff.png"), "wb") as f:  # a name that is not UTF-8
        f.write(cv2.imencode(".png", img)[1].tobytes())
    db = tmp_path / "db"
    s = index_folders([folder], db, workers=1)
    assert s.indexed == 1 and [r for _, r in s.skipped] == ["file name is not valid UTF-8"]
    names = {p.name for p in db.iterdir()} - {"catalog.sqlite3-wal", "catalog.sqlite3-shm"}
    index = SketchIndex(db)
    assert names == {"catalog.sqlite3", "lock", ".sketchsearch-index", *index.chunk_files, *index.image_files}
    # an index of another format version is refused, and rebuilt when asked, as the error message says
    import sqlite3

    con = sqlite3.connect(db / "catalog.sqlite3")
    with con:
        con.execute("UPDATE meta SET value = '0' WHERE key = 'format_version'")
    con.close()
    with pytest.raises(IndexFormatError, match="index format 0 but this sketchsearch reads format") as e:
        SketchIndex(db)
    assert e.value.hint == Hint("rebuild", str(db))  # the command line: rebuild with ... --rebuild
    with pytest.raises(IndexFormatError, match="index format 0") as e:
        index_folders([folder], db, workers=1)
    assert e.value.hint == Hint("rebuild", str(db))
    assert index_folders([folder], db, workers=1, rebuild=True).described == 1
    assert len(SketchIndex(db)) == 1


def test_a_reader_keeps_its_arrays_while_the_index_is_rewritten(collection, tmp_path):
    import shutil

    from engine.writer import IndexWriter

    root = tmp_path / "photos"
    shutil.copytree(collection[0], root)
    db = tmp_path / "db"
    index_folders([root], db, workers=1)
    reader = SketchIndex(db)
    before = np.array(reader.codes)
    img = photo_with_shape("star", (10, 10, 300, 300), seed=77)[..., ::-1]
    cv2.imwrite(str(root / "other_0.png"), img)  # changed: described again into a new chunk
    index_folders([root], db, workers=1)
    # at least the reader's chunk and the new one (more where a slow run committed on the clock, FLUSH_SECONDS)
    chunks = len(list(db.glob("chunk-*.codes.npy")))
    assert chunks >= 2
    with IndexWriter.existing(db) as w:
        assert w.compact(full=True) == chunks  # the chunks the reader has mapped are replaced and deleted
    assert len(list(db.glob("chunk-*.codes.npy"))) == 1
    np.testing.assert_array_equal(reader.codes, before)
    assert len(SketchIndex(db)) == 12


def test_tall_reduced_jpeg_boxes_use_the_true_scale(tmp_path):
    folder = tmp_path / "tall"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "tall.jpg"), rng.integers(0, 255, (4001, 1001, 3), dtype=np.uint8))
    index_folders([folder], tmp_path / "db", workers=1)
    width, height, ww, wh, scale = SketchIndex(tmp_path / "db").geometry[0]
    assert (width, height) == (1001, 4001) and wh == 400
    assert scale == pytest.approx(400 / 4001, rel=1e-3)


def test_a_hits_box_is_fitted_to_the_photos_edges_and_older_rows_keep_the_frame(tmp_path):
    """Each indexed photo keeps its edge cells; a sketch hit's box is the extent of the photo's edges along the
    placed sketch (engine.boxes), so a shape of another aspect than the sketch is boxed as it is.  A row
    described before the cells were kept (NULL) is boxed with the placed frame, as before; a catalog without
    the column searches the same way, and a writer adds the column."""
    import sqlite3

    from engine.boxes import CELL_BYTES
    from engine.catalog import CATALOG

    root = tmp_path / "photos"
    root.mkdir()
    wide = (60, 150, 580, 330)  # the house stretched to 520 x 180, on a plain wall
    img = np.full((480, 640, 3), 200, np.uint8)
    cv2.fillPoly(img, [np.round(polygon("house", wide)).astype(np.int32)], (40, 60, 90), cv2.LINE_AA)
    cv2.imwrite(str(root / "wide-house.jpg"), img)
    outline = polygon("house", wide)
    truth = (*outline.min(axis=0), *outline.max(axis=0))
    for i in range(5):
        img = photo_with_shape(["star", "ell", "arrow"][i % 3], (40 + 20 * i, 60, 200 + 20 * i, 220), seed=20 + i)
        cv2.imwrite(str(root / f"other_{i}.jpg"), img[..., ::-1])
    db = tmp_path / "db"
    index_folders([root], db, workers=1, backbone=None)
    con = sqlite3.connect(db / CATALOG)
    assert [len(c) for (c,) in con.execute("SELECT cells FROM files")] == [CELL_BYTES] * 6
    con.close()
    sketch = tmp_path / "house.png"
    cv2.imwrite(str(sketch), sketch_of("house"))

    def top():
        (hit,) = [h for h in SketchIndex(db).search(sketch, top_k=6) if h.path.endswith("wide-house.jpg")]
        return hit

    fitted = top()
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("UPDATE files SET cells = NULL")
    con.close()
    frame = top()
    assert (frame.scale, frame.mirrored, frame.score) == (fitted.scale, fitted.mirrored, fitted.score)
    assert fitted.frame == frame.frame  # where the sketch was placed: the app draws it there
    x0, y0, x1, y1 = fitted.frame  # the frame itself where it lies in the photo; the box without cells, clipped
    assert frame.box == (max(x0, 0), max(y0, 0), min(x1, 640), min(y1, 480))
    # the frame keeps the sketch's aspect (0.48 here: a miss at the benchmark's IoU 0.5); the fitted box, 0.70
    assert iou(frame.box, truth) < 0.5 < 0.6 < iou(fitted.box, truth)
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("ALTER TABLE files DROP COLUMN cells")
    con.close()
    assert top().box == frame.box  # a catalog from before the column
    ids = sorted(r[0] for r in sqlite3.connect(db / CATALOG).execute("SELECT id FROM files"))
    again = index_folders([root], db, workers=1, backbone=None)
    # the writer adds the column back, and the run describes those unchanged photos again, once, for their cells
    assert (again.indexed, again.described, again.upgraded, again.reused) == (6, 6, 6, 0)
    con = sqlite3.connect(db / CATALOG)
    assert [len(c) for (c,) in con.execute("SELECT cells FROM files")] == [CELL_BYTES] * 6
    assert sorted(r[0] for r in con.execute("SELECT id FROM files")) == ids  # the same photos, the same ids
    con.close()
    assert top().box == fitted.box
    assert (top().scale, top().score) == (fitted.scale, fitted.score)
    then = index_folders([root], db, workers=1, backbone=None)
    assert (then.described, then.upgraded, then.reused) == (0, 0, 6)  # once only


def test_a_photo_that_fails_to_be_described_again_for_its_cells_keeps_its_row(tmp_path, monkeypatch):
    """An unchanged photo described again for the edge cells an earlier version did not keep, which now fails
    (a decoder that no longer reads it), stays indexed as it was (boxed with the frame) rather than being
    dropped from the collection; a later run tries again."""
    import sqlite3

    import engine.indexer as indexer
    from engine.catalog import CATALOG
    from engine.imageio import ImageError

    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        img = photo_with_shape(["star", "ell", "arrow"][i], (40, 60, 200, 220), seed=30 + i)
        cv2.imwrite(str(root / f"p{i}.jpg"), img[..., ::-1])
    db = tmp_path / "db"
    index_folders([root], db, workers=1, backbone=None)
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("UPDATE files SET cells = NULL")
    con.close()
    real = indexer.describe_file

    def failing(path, *a, **k):
        if Path(path).name == "p1.jpg":
            raise ImageError(f"{path}: cannot be decoded")
        return real(path, *a, **k)

    monkeypatch.setattr(indexer, "describe_file", failing)
    run = index_folders([root], db, workers=1, backbone=None)
    assert (run.indexed, run.described, run.upgraded, run.reused, run.skipped) == (3, 2, 2, 1, ())
    con = sqlite3.connect(db / CATALOG)
    rows = dict(con.execute("SELECT path, cells IS NOT NULL FROM files WHERE status = 'indexed'").fetchall())
    con.close()
    assert sorted((Path(p).name, v) for p, v in rows.items()) == [("p0.jpg", 1), ("p1.jpg", 0), ("p2.jpg", 1)]
    monkeypatch.setattr(indexer, "describe_file", real)
    assert index_folders([root], db, workers=1, backbone=None).upgraded == 1
