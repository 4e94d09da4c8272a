"""Sharded collections opened in this process: a manifest of path-hash shards ranks exactly as one index of
the same photos (sketch and image queries, fused, expanded, plain); shards with other settings or of
another collection are refused; incremental runs; the CLI on a manifest."""
from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest

from app.cli import main
from engine.collection import SketchIndex
from engine.errors import IndexFormatError, IndexNotFound
from engine.indexer import index_folders
from engine.search import SearchOptions
from engine.settings import SketchSettings
from engine.shards import Manifest, ShardedIndex, index_sharded, is_manifest, open_collection, shard_of
from engine.writer import IndexWriter

from .synth import photo_with_shape, sketch_of

SHAPES = ["house", "star", "ell", "arrow"]


def make_photos(root, n: int, start: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        shape = SHAPES[i % 4]
        x0, y0 = 20 + (i * 37) % 200, 20 + (i * 53) % 120
        box = (x0, y0, x0 + 260 + (i % 3) * 40, y0 + 240 + (i % 2) * 50)
        cv2.imwrite(str(root / f"{i:02d}-{shape}.jpg"), photo_with_shape(shape, box, seed=i)[..., ::-1])
    return root


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """24 photos as one index and as a manifest of 3 shards."""
    tmp = tmp_path_factory.mktemp("shards")
    photos = make_photos(tmp / "photos", 24)
    index_folders([photos], tmp / "single", workers=1)
    summary = index_sharded([photos], tmp / "photos.json", n_shards=3, workers=1)
    return tmp, photos, summary


def same_hits(a, b, *, rtol=1e-4):
    """Same photos in the same order with the same boxes; scores equal up to float32 rounding (a shard's
    scores come from products over other blocks of rows), and so are the boxes and scales (the soft placement
    weighs every placement's score)."""
    assert [h.path for h in a] == [h.path for h in b]
    np.testing.assert_allclose([h.box for h in a], [h.box for h in b], rtol=0, atol=1e-3)
    np.testing.assert_allclose([h.scale for h in a], [h.scale for h in b], rtol=1e-6)
    assert [h.mirrored for h in a] == [h.mirrored for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=rtol, atol=1e-9)
    raw = [h.raw_score for h in a]
    if raw[:1] != [None]:
        np.testing.assert_allclose(raw, [h.raw_score for h in b], rtol=rtol)


def test_every_photo_is_in_exactly_the_shard_of_its_path(collection):
    tmp, photos, summary = collection
    sharded = ShardedIndex(tmp / "photos.json")
    assert summary.indexed == summary.described == 24 and len(sharded) == 24
    seen = []
    for i, ix in enumerate(sharded.indexes):
        assert all(shard_of(p, 3) == i for p in ix.paths)
        seen += ix.paths
    assert sorted(seen) == sorted(SketchIndex(tmp / "single").paths)
    assert all(len(ix) for ix in sharded.indexes)  # 24 photos spread over 3 shards


@pytest.mark.parametrize("kind", ["fused", "expansion-off", "alignment-only", "exhaustive"])
def test_sharded_sketch_search_ranks_as_one_index(collection, kind):
    tmp, _, _ = collection
    single, sharded = SketchIndex(tmp / "single"), ShardedIndex(tmp / "photos.json")
    kw = {"fused": {}, "expansion-off": {"expand": 0}, "alignment-only": {"fusion": False},
          "exhaustive": {"options": SearchOptions(mode="exhaustive")}}[kind]
    for shape in ("house", "star", "ell"):
        a = sharded.search(sketch_of(shape), top_k=10, **kw)
        b = single.search(sketch_of(shape), top_k=10, **kw)
        assert len(a) == 10
        same_hits(a, b)
        if shape != "house":  # and it finds the shape (the small synthetic houses look like much else)
            assert any(shape in h.path for h in a[:2])
    # the collection rows of the hits address the same photos
    assert [sharded.lookup([h.row])[0][0] for h in a] == [h.path for h in a]


@pytest.mark.parametrize("kind", ["fused", "expansion-off", "alignment-only"])
def test_a_binding_shard_cap_keeps_the_top_results(collection, kind):
    """Shards that send only the photos fewer than ``candidates * (top_k + seeds)`` others beat on both scores
    (3 to 5 here, of shards of about 8 photos and of the single index's 24): the same hits as the whole
    shortlists."""
    tmp, _, _ = collection
    single, sharded = SketchIndex(tmp / "single"), ShardedIndex(tmp / "photos.json")
    kw = {"fused": {"expand": 2}, "expansion-off": {"expand": 0}, "alignment-only": {"fusion": False}}[kind]
    capped, whole = SearchOptions(candidates=1), SearchOptions(candidates=None)
    assert capped.shard_cap(3, 2) == 5 < max(len(ix) for ix in sharded.indexes)
    for shape in ("house", "star", "ell", "arrow"):
        want = single.search(sketch_of(shape), top_k=3, options=whole, **kw)
        same_hits(sharded.search(sketch_of(shape), top_k=3, options=capped, **kw), want)
        same_hits(single.search(sketch_of(shape), top_k=3, options=capped, **kw), want)


def test_undominated_keeps_what_fewer_than_k_beat_on_both_scores():
    """Against counting, for each row, the rows that beat it (ties: the smaller row first); rows without a global
    score are kept and beat none; without global scores, the k best by alignment."""
    from engine.shardsearch import undominated

    rng = np.random.default_rng(3)
    n = 700  # several blocks of the count
    rows = rng.permutation(5 * n)[:n]
    afm, glob = rng.integers(0, 40, n).astype(float), rng.integers(0, 40, n).astype(float)  # many ties
    glob[rng.choice(n, 20, replace=False)] = np.nan
    for k in (1, 7, 60):
        known = ~np.isnan(glob)
        beats = ((afm[:, None] >= afm[None, :]) & (glob[:, None] >= glob[None, :])
                 & ((afm[:, None] > afm[None, :]) | (glob[:, None] > glob[None, :]) | (rows[:, None] < rows[None, :])))
        beaten = (beats & known[:, None] & known[None, :]).sum(axis=0)
        want = np.sort(rows[(beaten < k) | ~known])
        assert np.array_equal(undominated(rows, afm, glob, k), want)
        best = np.lexsort((rows, -afm))[:k]
        assert np.array_equal(undominated(rows, afm, None, k), np.sort(rows[best]))


def test_the_shard_cap_bounds_the_rows_a_shard_sends(tmp_path):
    """5,000 photos (shortlist 1,000), cap 40: a shard sends its background and, of its shortlist, the 40 best by
    alignment (the photos fewer than 40 others beat), whose scores are those of the whole shortlist."""
    from engine.afm import encode_query
    from engine.bench.synthetic import synthetic_index, synthetic_sketch
    from engine.search import QueryScorer, rank
    from engine.shardsearch import ShardSearcher

    synthetic_index(tmp_path / "db", 5000)
    shard = ShardSearcher(tmp_path / "db")
    ix, sketch, options = shard.index, synthetic_sketch(), SearchOptions()
    ranking = rank(QueryScorer(encode_query(sketch, ix.layout), ix.layout), ix.codes, ix.inv_norms, options,
                   top_k=1000, n_align=0)
    short, short_afm = ranking.rows[:ranking.n_exact], ranking.scores[:ranking.n_exact]
    bg = np.arange(0, 5000, 50)  # 100 background rows
    whole = shard.sketch_candidates("q0", sketch, options, None, bg, 20)
    capped = shard.sketch_candidates("q1", sketch, options, None, bg, 20, None, 40)
    assert len(short) == 1000 and len(whole.rows) > 1000 and len(capped.rows) <= 100 + 40
    best = short[np.argsort(-short_afm)[:40]]
    assert np.array_equal(capped.rows, np.union1d(bg, best)) and capped.core.all()
    np.testing.assert_array_equal(capped.afm, whole.afm[np.searchsorted(whole.rows, capped.rows)])


def test_sharded_image_search_ranks_as_one_index(collection):
    tmp, photos, _ = collection
    single, sharded = SketchIndex(tmp / "single"), ShardedIndex(tmp / "photos.json")
    query = sorted(photos.iterdir())[5]
    for qe in (0, 5):
        a, b = sharded.search_image(query, top_k=8, qe=qe), single.search_image(query, top_k=8, qe=qe)
        same_hits(a, b)
        assert a[0].path == str(query)


def test_filtered_and_browsed_sharded_collection_answers_as_one_index(collection):
    """Filters, browsing, regions and the indexed folders through the shard steps: as one index of the photos."""
    from engine.filters import PhotoFilter

    tmp, photos, _ = collection
    single, sharded = SketchIndex(tmp / "single"), ShardedIndex(tmp / "photos.json")
    small = PhotoFilter(min_side=10_000)
    assert sharded.search(sketch_of("star"), filt=small) == [] and sharded.search_image(
        sorted(photos.iterdir())[1], filt=small) == []
    # a date window holding about half the photos (their file times: written one after another)
    times = sorted(single.dates(np.arange(len(single))))
    half = PhotoFilter(after=times[6], before=times[18] + 1e-3)
    for shape in ("star", "ell"):
        same_hits(sharded.search(sketch_of(shape), top_k=6, filt=half), single.search(sketch_of(shape), top_k=6,
                                                                                       filt=half))
    query = sorted(photos.iterdir())[7]
    same_hits(sharded.search_image(query, top_k=5, qe=0, filt=half), single.search_image(query, top_k=5, qe=0,
                                                                                          filt=half))
    a, b = sharded.browse(limit=10, offset=3), single.browse(limit=10, offset=3)
    assert [h.taken for h in a] == [h.taken for h in b] and len(a) == 10
    assert sharded.folders() == single.folders() == [str(photos.resolve())]
    box = (20, 20, 300, 280)
    same_hits(sharded.search_region(query, box, mode="shape", top_k=5),
              single.search_region(query, box, mode="shape", top_k=5))


def test_the_shards_share_one_learned_image_space(collection):
    tmp, _, _ = collection
    m = Manifest.load(tmp / "photos.json")
    assert m.learned and m.learned_path().is_file()
    single = SketchIndex(tmp / "single").images()
    means, bases = [], []
    for i in range(3):
        rec = json.loads(SketchIndex(m.shard_path(i)).meta["image_index"])
        assert rec["learned"] == m.learned
        g = SketchIndex(m.shard_path(i)).images().generation
        means.append(g.sketch_mean)
        bases.append(g.image_basis)
    for mean in means:  # the collection's mean, not the shard's own
        np.testing.assert_allclose(mean, single.sketch_mean, rtol=1e-5, atol=1e-6)
    for b in bases:  # one basis, learned on every shard's photos: the codes of all shards live in one space
        assert b.n == len(single.index) and np.array_equal(b.components, bases[0].components)


def test_background_sample_depends_on_the_photos_not_their_order(collection):
    tmp, _, _ = collection
    single = SketchIndex(tmp / "single")
    keys, rows = single.background_keys(10)
    assert keys == sorted(keys) and len(set(rows.tolist())) == 10
    # the sharded collection's background is the same photos
    sharded = ShardedIndex(tmp / "photos.json")
    bg = sharded.shards.background(10)
    paths = sorted(sharded.indexes[i].paths[r] for i, rs in bg.items() for r in rs.tolist())
    assert paths == sorted(single.paths[r] for r in rows.tolist())


def test_a_second_run_reuses_every_shard_and_a_new_photo_lands_in_one(collection, tmp_path):
    tmp, photos, _ = collection
    shutil.copytree(photos, tmp_path / "photos")
    index_sharded([tmp_path / "photos"], tmp_path / "c.json", n_shards=2, workers=1, backbone="none")
    again = index_sharded([tmp_path / "photos"], tmp_path / "c.json", workers=1)
    assert again.described == 0 and again.reused == 24
    make_photos(tmp_path / "photos", 1, start=24)
    more = index_sharded([tmp_path / "photos"], tmp_path / "c.json", workers=1)
    assert more.described == 1 and more.indexed == 25
    assert len(ShardedIndex(tmp_path / "c.json")) == 25


def test_shards_with_other_settings_are_refused(collection, tmp_path):
    tmp, photos, _ = collection
    m = index_sharded([photos], tmp_path / "c.json", n_shards=2, workers=1, backbone="none")
    assert m.indexed == 24
    manifest = Manifest.load(tmp_path / "c.json")
    # a run asking for other settings
    with pytest.raises(IndexFormatError, match="other sketch settings"):
        index_sharded([photos], tmp_path / "c.json", settings=SketchSettings.preset("quality"), workers=1)
    with pytest.raises(IndexFormatError, match="--backbone none"):
        index_sharded([photos], tmp_path / "c.json", backbone="efficientnet-lite0", workers=1)
    with pytest.raises(IndexFormatError, match="2 shards, not 3"):
        index_sharded([photos], tmp_path / "c.json", n_shards=3, workers=1)
    # a shard folder replaced by an index built with other settings
    shard = manifest.shard_path(1)
    shutil.rmtree(shard)
    with IndexWriter(shard, SketchSettings.preset("quality")):
        pass
    with pytest.raises(IndexFormatError, match=f"{shard}.*shard 1 .*other sketch settings"):
        ShardedIndex(tmp_path / "c.json")
    # ... or by a shard of another collection
    shutil.rmtree(shard)
    shutil.copytree(Manifest.load(tmp / "photos.json").shard_path(0), shard)
    with pytest.raises(IndexFormatError, match="image settings|another collection"):
        ShardedIndex(tmp_path / "c.json")
    shutil.rmtree(shard)  # a shard that is not there (yet) is left out, with a warning at every search
    from engine.collection import PartialResultWarning

    partial = ShardedIndex(tmp_path / "c.json")
    with pytest.warns(PartialResultWarning, match="shard 1 .* is not indexed yet"):
        assert len(partial.search(sketch_of("star"), top_k=30)) == len(partial) < 24


def test_manifest_names_and_errors(tmp_path):
    assert is_manifest(tmp_path / "new.json") and not is_manifest(tmp_path)
    with pytest.raises(IndexNotFound, match="no such manifest"):
        ShardedIndex(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(IndexFormatError, match="not a readable sketchsearch manifest"):
        open_collection(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        index_sharded([tmp_path / "nowhere"], tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()


def test_cli_on_a_manifest_prints_what_one_index_prints(collection, tmp_path, capsys):
    tmp, photos, _ = collection
    cv2.imwrite(str(tmp_path / "s.png"), sketch_of("star"))
    out = {}
    for db in ("single", "photos.json"):
        assert main(["search", "--db", str(tmp / db), "--sketch", str(tmp_path / "s.png"), "--json", "--top", "5"]) == 0
        out[db] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in out["single"]] == [r["path"] for r in out["photos.json"]]
    assert [r["box"] for r in out["single"]] == [r["box"] for r in out["photos.json"]]
    assert set(out["single"][0]) == set(out["photos.json"][0])
    assert main(["info", "--db", str(tmp / "photos.json"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 24 and len(info["shards"]) == 3 and info["manifest"]["n_shards"] == 3
    assert info["image_index"]["n"] == 24
    # a new manifest through the CLI, then searched
    assert main(["index", str(photos), "--db", str(tmp_path / "cli.json"), "--shards", "2", "--backbone", "none",
                 "--workers", "1", "-q"]) == 0
    assert "24 photos in" in capsys.readouterr().err
    assert main(["search", "--db", str(tmp_path / "cli.json"), "--sketch", str(tmp_path / "s.png"), "--top", "3"]) == 0
    assert "3 of 24 photos" in capsys.readouterr().out
    assert main(["index", str(photos), "--db", str(tmp_path / "folder"), "--shards", "2"]) == 2
    assert "is a .json file" in capsys.readouterr().err
    plain = tmp_path / "plain"  # an existing plain index with --shards: said what it is, not "no such manifest"
    assert main(["index", str(photos), "--db", str(plain), "--backbone", "none", "--workers", "1", "-q"]) == 0
    capsys.readouterr()
    assert main(["index", str(photos), "--db", str(plain), "--shards", "3"]) == 2
    err = capsys.readouterr().err
    assert "a folder, not a sharded collection's manifest" in err and "no such manifest" not in err
    # the other commands take a manifest too
    query = sorted(photos.iterdir())[2]
    assert main(["search", "--db", str(tmp / "photos.json"), "--image", str(query), "--rotation", "any", "--json",
                 "--top", "2"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["path"] == str(query) and "rotation" in first
    assert main(["duplicates", "--db", str(tmp / "photos.json")]) == 0
    assert "groups of near-duplicates among 24 photos" in capsys.readouterr().out


def test_bad_files_are_skipped_and_listed_once(tmp_path):
    photos = make_photos(tmp_path / "photos", 4)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (photos / "empty.png").write_bytes(b"")
    s = index_sharded([photos], tmp_path / "c.json", n_shards=3, workers=1, backbone="none")
    assert s.indexed == 4 and sorted(p.rsplit("/", 1)[1] for p, _ in s.skipped) == ["broken.jpg", "empty.png"]
    sharded = ShardedIndex(tmp_path / "c.json")
    assert sharded.n_skipped == 2 and all(reason for _, reason in sharded.skipped)
    again = index_sharded([photos], tmp_path / "c.json", workers=1)
    assert again.described == 0 and len(again.skipped) == 2




def test_browsing_pages_photos_of_one_date_once_each_in_path_order(tmp_path):
    """Photos with the same date (a copied folder) page in path order, each once, sharded as in one index."""
    photos = make_photos(tmp_path / "photos", 9)
    for p in photos.iterdir():
        os.utime(p, (1.6e9, 1.6e9))
    index_folders([photos], tmp_path / "single", workers=1, backbone=None)
    index_sharded([photos], tmp_path / "photos.json", n_shards=3, workers=1, backbone=None)
    expected = sorted(str(p) for p in photos.iterdir())
    for ix in (SketchIndex(tmp_path / "single"), ShardedIndex(tmp_path / "photos.json")):
        pages = [h.path for off in (0, 4, 8) for h in ix.browse(limit=4, offset=off)]
        assert pages == expected


def test_the_sketch_is_described_on_a_thread_beside_the_alignment_with_the_same_hits(collection, monkeypatch):
    """In this process the sketch's global descriptor is computed on another thread while the shards rank the
    alignment's shortlist (``LocalShards.soon``): the same hits as computing it first, one index or shards."""
    import threading

    from engine.collection import LocalShards, Shards
    from engine.shardsearch import ShardSearcher

    tmp, _, _ = collection
    threads = []
    describe = ShardSearcher.describe_sketch

    def recorded(self, edges, device=None):
        threads.append(threading.current_thread().name)
        return describe(self, edges, device)

    monkeypatch.setattr(ShardSearcher, "describe_sketch", recorded)
    for path in (tmp / "single", tmp / "photos.json"):
        ix = SketchIndex(path) if path.is_dir() else ShardedIndex(path)
        beside = [ix.search(sketch_of(s), top_k=10) for s in ("star", "ell")]
        assert threads and all(t.startswith("sketchsearch-query") for t in threads)
        threads.clear()
        with monkeypatch.context() as m:  # first the descriptor, then the shards (as for shards in other processes)
            m.setattr(LocalShards, "soon", Shards.soon)
            m.setattr(LocalShards, "sent", Shards.sent)
            first = [ix.search(sketch_of(s), top_k=10) for s in ("star", "ell")]
        assert threads == [threading.main_thread().name] * 2
        threads.clear()
        for a, b in zip(beside, first, strict=True):
            assert [h.to_json() for h in a] == [h.to_json() for h in b]


def test_a_sketch_that_cannot_be_described_fails_the_search_and_the_next_one_works(collection, monkeypatch):
    from engine.errors import QueryError
    from engine.shardsearch import ShardSearcher

    tmp, _, _ = collection
    ix = SketchIndex(tmp / "single")

    def broken(self, edges, device=None):
        raise QueryError("the sketch network is broken")

    with monkeypatch.context() as m:
        m.setattr(ShardSearcher, "describe_sketch", broken)
        with pytest.raises(QueryError, match="sketch network is broken"):
            ix.search(sketch_of("star"), top_k=5)
    assert len(ix.search(sketch_of("star"), top_k=5)) == 5


def test_a_views_image_searcher_is_loaded_once_when_two_threads_ask_at_once(collection, monkeypatch):
    import threading
    import time

    from engine import imageindex

    tmp, _, _ = collection
    view = SketchIndex(tmp / "single")
    made = []
    init = imageindex.ImageSearcher.__init__

    def slow(self, *a, **kw):
        made.append(1)
        time.sleep(0.2)  # both threads ask while the first load runs
        init(self, *a, **kw)

    monkeypatch.setattr(imageindex.ImageSearcher, "__init__", slow)
    got = []
    ts = [threading.Thread(target=lambda: got.append(view.images())) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(made) == 1 and len(got) == 2 and got[0] is got[1]


def _search_in_child(path: str, conn) -> None:
    conn.send(len(SketchIndex(path).search(sketch_of("star"), top_k=5)))


def test_a_process_forked_after_a_search_searches_on_its_own_threads(collection):
    """The threads that describe sketches (``LocalShards.soon``) are not copied by ``fork``: a child made after a
    search makes its own instead of waiting on its parent's for ever."""
    import multiprocessing as mp

    tmp, _, _ = collection
    assert len(SketchIndex(tmp / "single").search(sketch_of("star"), top_k=5)) == 5  # the parent's threads exist
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_search_in_child, args=(str(tmp / "single"), there))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child's search hung")
    try:
        assert child.exitcode == 0 and here.poll(5) and here.recv() == 5
    finally:
        here.close()
        there.close()
