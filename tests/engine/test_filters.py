"""Filters narrow a query before its cut (folder, date, size), browsing lists a collection newest first, and an
index of an earlier catalog gets its photos' dates on the next index run."""
import datetime
import os
import sqlite3

import numpy as np
import pytest
from PIL import Image

from engine.catalog import CATALOG, DATES_PENDING
from engine.collection import SketchIndex
from engine.errors import QueryError
from engine.filters import PhotoFilter, parse_date
from engine.imageio import read_taken
from engine.indexer import index_folders

from .synth import photo_with_shape, sketch_of

SHAPES = ("arrow", "house", "ell", "star")


def _stamp(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y:%m:%d %H:%M:%S").timestamp()


def _save(path, pixels, taken: str | None = None, mtime: str | None = None) -> None:
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    Image.fromarray(pixels).save(path, exif=exif, quality=92)
    if mtime:
        t = _stamp(mtime)
        os.utime(path, (t, t))


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """16 photos in two folders: dated by EXIF (a/) or by file time only (b/); two are small."""
    root = tmp_path_factory.mktemp("photos")
    (root / "a").mkdir()
    (root / "b").mkdir()
    dates = {}
    for i in range(16):
        shape = SHAPES[i % 4]
        folder = "a" if i < 8 else "b"
        size = (320, 240) if i in (5, 13) else (640, 480)
        box = (100, 60, 460, 420) if size[0] == 640 else (40, 30, 230, 210)
        img = photo_with_shape(shape, box, size=size, seed=i)
        when = f"{2010 + i}:06:01 12:00:00"
        path = root / folder / f"{shape}_{i}.jpg"
        _save(path, (img * 255).astype(np.uint8) if img.dtype != np.uint8 else img,
              taken=when if folder == "a" else None, mtime=None if folder == "a" else when)
        dates[str(path.resolve())] = _stamp(when)
    db = tmp_path_factory.mktemp("db") / "index"
    index_folders([root], db, workers=1)
    return root, db, dates


@pytest.fixture()
def sketch(tmp_path):
    path = tmp_path / "star.png"
    Image.fromarray(sketch_of("star")).save(path)
    return path


def _allowed(ix, filt, dates):
    sizes = ix.geometry[:, :2]
    taken = np.array([dates[p] for p in ix.paths])
    return {p for p, ok in zip(ix.paths, filt.allows(ix.paths, taken, sizes), strict=True) if ok}


FILTERS = [
    lambda root: PhotoFilter(under=str(root / "a")),
    lambda root: PhotoFilter(after=parse_date("2014-01-01"), before=parse_date("2022-01-01")),
    lambda root: PhotoFilter(min_side=300),
    lambda root: PhotoFilter(under=str(root / "b"), min_side=300, after=parse_date("2020-01-01")),
]


@pytest.mark.parametrize("make", FILTERS)
def test_filtered_sketch_search_is_the_full_ranking_restricted(collection, sketch, make, monkeypatch):
    """Below the shortlist size every photo is a candidate: a filtered search must rank exactly as the whole
    collection's ranking with the photos the filter bars taken out (same scores: the background statistics stay
    the collection's), with the expansion too: its seeds are the whole collection's (seeded from the photos the
    filter lets through, a sailboat's outline scored a folder of bicycles 0.95, found under Xvfb)."""
    from engine import collection as coll
    from engine import fusion

    root, db, dates = collection
    ix = SketchIndex(db)
    filt = make(root)
    allowed = _allowed(ix, filt, dates)
    assert 0 < len(allowed) < len(ix)
    full = [h for h in ix.search(sketch, top_k=len(ix), expand=0) if h.path in allowed]
    got = ix.search(sketch, top_k=len(ix), filt=filt, expand=0)
    assert [h.path for h in got] == [h.path for h in full]
    assert np.allclose([h.score for h in got], [h.score for h in full], atol=1e-6)
    few = ix.search(sketch, top_k=3, filt=filt, expand=0)  # the cut comes after the filter: a full page
    assert [h.path for h in few] == [h.path for h in full[:3]]
    seeds, seed_rows = [], fusion.seed_rows
    monkeypatch.setattr(coll.fusion_steps, "seed_rows",
                        lambda stage: seeds.append(seed_rows(stage)) or seeds[-1])
    whole = [h for h in ix.search(sketch, top_k=len(ix)) if h.path in allowed]
    expanded = ix.search(sketch, top_k=len(ix), filt=filt)
    assert [h.path for h in expanded] == [h.path for h in whole]
    assert np.allclose([h.score for h in expanded], [h.score for h in whole], atol=1e-6)
    assert [h.likely for h in expanded] == [h.likely for h in whole]
    assert len(seeds) == 2 and np.array_equal(seeds[0], seeds[1])  # seeded as without the filter


@pytest.mark.parametrize("make", FILTERS)
def test_filtered_image_search_is_the_full_ranking_restricted(collection, make):
    root, db, dates = collection
    ix = SketchIndex(db)
    filt = make(root)
    allowed = _allowed(ix, filt, dates)
    query = sorted(dates)[3]
    full = [h for h in ix.search_image(query, top_k=len(ix), qe=0) if h.path in allowed]
    got = ix.search_image(query, top_k=4, qe=0, filt=filt)
    assert [h.path for h in got] == [h.path for h in full[:4]]
    assert np.allclose([h.score for h in got], [h.score for h in full[:4]], atol=1e-4)


def test_a_filter_that_lets_nothing_through_gives_no_results(collection, sketch, tmp_path):
    root, db, _ = collection
    ix = SketchIndex(db)
    assert ix.search(sketch, filt=PhotoFilter(under=str(tmp_path))) == []
    assert ix.search_image(sorted(ix.paths)[0], filt=PhotoFilter(min_side=10_000)) == []
    assert ix.browse(PhotoFilter(after=parse_date("2100-01-01"))) == []


def test_dates_come_from_exif_else_the_file_time(collection):
    root, db, dates = collection
    ix = SketchIndex(db)
    got = ix.dates(np.arange(len(ix)))
    assert np.allclose(got, [dates[p] for p in ix.paths])


def test_browse_lists_newest_first_in_pages(collection):
    root, db, dates = collection
    ix = SketchIndex(db)
    newest = sorted(dates, key=lambda p: -dates[p])
    page1, page2 = ix.browse(limit=5), ix.browse(limit=5, offset=5)
    assert [h.path for h in page1 + page2] == newest[:10]
    assert [h.taken for h in page1] == [dates[p] for p in newest[:5]]
    assert all(h.box[:2] == (0.0, 0.0) for h in page1)
    assert len({h.path for h in ix.browse(limit=100)}) == len(dates)
    only_a = ix.browse(PhotoFilter(under=str(root / "a")), limit=100)
    assert [h.path for h in only_a] == [p for p in newest if "/a/" in p]


def test_an_older_catalog_gets_its_dates_on_the_next_index_run(collection, tmp_path):
    """A catalog from before the ``taken`` column: searching and browsing work (the file's time stands in);
    the next index run adds the column and reads the EXIF dates without describing anything again."""
    root, _, dates = collection
    db = tmp_path / "old"
    index_folders([root / "a"], db, workers=1, backbone=None)
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("ALTER TABLE files DROP COLUMN taken")
    con.close()
    ix = SketchIndex(db)
    mtimes = [os.stat(p).st_mtime for p in ix.paths]
    assert np.allclose(ix.dates(np.arange(len(ix))), mtimes)
    assert len(ix.browse(PhotoFilter(min_side=1), limit=50)) == 8
    again = index_folders([root / "a"], db, workers=1, backbone=None)
    assert again.described == 0
    ix = SketchIndex(db)
    assert np.allclose(ix.dates(np.arange(len(ix))), [dates[p] for p in ix.paths])
    con = sqlite3.connect(db / CATALOG)
    assert con.execute("SELECT COUNT(*) FROM meta WHERE key = ?", (DATES_PENDING,)).fetchone()[0] == 0
    con.close()


def test_filter_values_are_checked():
    with pytest.raises(QueryError, match="not a date"):
        parse_date("2020-02-30")
    try:  # a date all the same: said so where this machine's clock cannot hold it, never "not a date"
        early = parse_date("0001-01-01")
    except QueryError as e:
        assert "out of the range" in str(e)
    else:
        assert early < parse_date("1970-01-02")
    assert parse_date("2019-06-01 10:30") - parse_date("2019-06-01") == 10.5 * 3600
    with pytest.raises(QueryError, match="empty"):
        PhotoFilter(after=parse_date("2021-01-01"), before=parse_date("2020-01-01"))
    with pytest.raises(QueryError, match="at least 1"):
        PhotoFilter(min_side=0)
    assert not PhotoFilter().active
    assert PhotoFilter(min_side=5).describe() == ["at least 5 px"]


def test_read_taken_tolerates_files_without_a_date(tmp_path):
    p = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(p)
    assert read_taken(p) is None
    assert read_taken(tmp_path / "missing.jpg") is None
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert read_taken(tmp_path / "bad.jpg") is None


def test_a_collection_knows_its_indexed_folders(collection, tmp_path):
    root, db, _ = collection
    assert SketchIndex(db).folders() == [str(root.resolve())]
    db2 = tmp_path / "two"
    index_folders([root / "a"], db2, workers=1, backbone=None)
    index_folders([root / "b"], db2, workers=1, backbone=None)
    assert SketchIndex(db2).folders() == sorted([str((root / "a").resolve()), str((root / "b").resolve())])
    con = sqlite3.connect(db2 / CATALOG)  # an index from before the folders were recorded
    with con:
        con.execute("DELETE FROM meta WHERE key = 'folders'")
    con.close()
    assert SketchIndex(db2).folders() == [str(root.resolve())]
