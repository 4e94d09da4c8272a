"""Fused sketch search (engine.fusion): calibration, fusion arithmetic, the global descriptor's drawing,
and the search through an index."""
import dataclasses
import json

import cv2
import numpy as np
import pytest

from engine import fusion
from engine.afm import encode_query
from engine.edges import sketch_edges
from engine.fusion import FusionParams, calibrate, fuse, load_params
from engine.search import QueryScorer, SearchOptions, rank

from .synth import photo_with_shape, sketch_of


def test_shipped_calibration_is_monotone_and_in_unit_interval():
    for cal in (load_params().calibration, load_params().calibration_afm):
        z = np.linspace(-50, 50, 20001)
        p = calibrate(z, cal)
        assert np.all((p >= 0) & (p <= 1))
        assert np.all(np.diff(p) >= 0)
        assert p[-1] > p[0]


def test_fitted_parameters_are_recorded():
    p = load_params()
    assert p.fit.get("data", "").startswith("Sketchy")  # fitted, not the class defaults
    assert p.qe_n >= 0 and p.w >= 0 and p.background >= 100


def test_fuse_with_global_weight_zero_reproduces_the_alignment_ranking():
    rng = np.random.default_rng(0)
    afm, glob = rng.random(300), rng.random(300)
    rows = np.arange(300)
    f = fuse(rows, afm, glob, rows, dataclasses.replace(FusionParams(), w=0.0, qe_n=0))
    assert np.array_equal(np.argsort(-f.final, kind="stable"), np.argsort(-afm, kind="stable"))
    g = fuse(rows, afm, glob, rows, dataclasses.replace(FusionParams(), w=1.0, qe_n=0))
    za = (afm - np.median(afm)) / (1.4826 * np.median(np.abs(afm - np.median(afm))))
    zg = (glob - np.median(glob)) / (1.4826 * np.median(np.abs(glob - np.median(glob))))
    np.testing.assert_allclose(g.final, za + zg)
    assert np.all(np.diff(g.score[np.argsort(g.final)]) >= 0)  # calibrated score follows the ranking


def test_fuse_standardises_against_the_background_only():
    rng = np.random.default_rng(1)
    afm, glob = rng.normal(size=50), rng.normal(size=50)
    rows = np.arange(50)
    bg = np.arange(0, 50, 2)
    f = fuse(rows, afm, glob, bg, dataclasses.replace(FusionParams(), qe_n=0))
    zb = f.z[bg]
    assert abs(np.median(zb)) < 1e-9 and abs(1.4826 * np.median(np.abs(zb - np.median(zb))) - 1) < 1e-9
    f2 = fuse(rows, afm + 100 * (np.arange(50) % 2), glob, bg, dataclasses.replace(FusionParams(), qe_n=0))
    np.testing.assert_allclose(f2.z[bg], f.z[bg])  # rows outside the background do not move it


def test_standardise_is_robust_to_a_large_matching_share():
    rng = np.random.default_rng(3)
    noise = rng.normal(size=900)
    matches = rng.normal(6.0, 0.5, size=100)  # a collection where a tenth of the photos match
    ref = np.concatenate([noise, matches])
    z = fusion.standardise(matches, ref)
    assert z.mean() > 5.0  # the plain z-score would give about 2
    assert abs(fusion.standardise(np.array([5.0]), np.full(10, 5.0))[0]) < 1e-9  # a flat sample: no blow-up


def test_weighted_median_with_equal_weights_is_the_median():
    rng = np.random.default_rng(4)
    for n in (1, 2, 5, 6, 101):
        x = rng.normal(size=n)
        assert fusion.weighted_median(x, np.ones(n)) == np.median(x)
    assert fusion.weighted_median(np.array([0.0, 10.0]), np.array([3.0, 1.0])) == 0.0


def test_reference_with_weight_zero_leaves_the_collection_statistics_exactly():
    rng = np.random.default_rng(5)
    afm, glob = rng.normal(size=80), rng.normal(size=80)
    rows = np.arange(80)
    params = dataclasses.replace(FusionParams(), qe_n=0)
    ref = fusion.ReferenceScores(rng.normal(3.0, 1.0, 40), rng.normal(3.0, 1.0, 40), 0.0)
    a = fuse(rows, afm, glob, rows, params)
    b = fuse(rows, afm, glob, rows, params, reference=ref)
    assert np.array_equal(a.final, b.final) and np.array_equal(a.score, b.score)
    assert fusion.Stats.of(afm, ref.afm, 0.0) == fusion.Stats.of(afm)


def test_reference_weight_fades_out_as_the_collection_grows():
    p = dataclasses.replace(FusionParams(), ref_k=200.0, ref_full=1000)
    w = [fusion.reference_weight(n, p) for n in (0, 30, 300, 999, 1000, 5000)]
    assert w[0] == 200.0 and w[1] > w[2] > w[3] > 0 and w[4] == 0 and w[5] == 0
    assert fusion.reference_weight(30, dataclasses.replace(p, ref_k=0.0)) == 0


def test_a_heavy_reference_standardises_like_the_reference():
    rng = np.random.default_rng(6)
    ref = rng.normal(0.0, 1.0, 400)
    tiny = rng.normal(2.0, 0.2, 12)  # a few photos, all alike: their own statistics say little
    s = fusion.Stats.of(tiny, ref, 1e6)
    r = fusion.Stats.of(ref)
    assert abs(s.median - r.median) < 0.02 and abs(s.scale / r.scale - 1) < 0.02
    light = fusion.Stats.of(tiny, ref, 1e-6)
    lo, hi = np.sort(tiny)[5:7]
    assert lo <= light.median <= hi


def test_reference_rows_join_every_background_statistic():
    rng = np.random.default_rng(7)
    n, r = 30, 201  # odd: the reference's median is one of its values
    afm, glob = rng.normal(size=n), rng.normal(size=n)
    rows = np.arange(n)
    params = dataclasses.replace(FusionParams(), qe_n=0, w=1.0)
    ref = fusion.ReferenceScores(rng.normal(size=r), rng.normal(size=r), 1e9)  # the reference alone, in effect
    f = fuse(rows, afm, glob, rows, params, reference=ref)
    za = (afm - np.median(ref.afm)) / (1.4826 * np.median(np.abs(ref.afm - np.median(ref.afm))))
    zg = (glob - np.median(ref.glob)) / (1.4826 * np.median(np.abs(ref.glob - np.median(ref.glob))))
    np.testing.assert_allclose(f.final, za + zg, atol=1e-6)
    # without global descriptors in the reference, a fused score keeps the collection's statistics
    g = fuse(rows, afm, glob, rows, params, reference=fusion.ReferenceScores(ref.afm, None, 1e9))
    np.testing.assert_array_equal(g.final, fuse(rows, afm, glob, rows, params).final)


def test_expansion_brings_in_rows_and_uses_their_image_cosines():
    rows = np.arange(10)
    afm = np.linspace(0, 1, 10)
    glob = np.linspace(0, 1, 10)
    seen = []

    def image(seeds):
        seen.append(seeds)
        rows2 = np.arange(12)
        cos = np.zeros(12)
        cos[11] = 5.0  # a photo only the image descriptors find
        return rows2, cos, np.concatenate([afm, [0.5, 0.5]]), np.concatenate([glob, [0.5, 0.5]]), None

    f = fuse(rows, afm, glob, rows, dataclasses.replace(FusionParams(), qe_n=3), image=image)
    assert list(seen[0]) == [9, 8, 7]
    assert len(f.rows) == 12 and f.rows[np.argmax(f.final)] == 11


def test_drawing_is_black_strokes_on_white_with_a_border():
    img = np.full((200, 300), 255, np.uint8)
    cv2.rectangle(img, (50, 40), (250, 160), 0, 3)
    e = sketch_edges(img)
    d = fusion.drawing(e, thickness=2, border=0.1, side=224)
    assert d.dtype == np.uint8 and max(d.shape[:2]) == 224 and d.shape[2] == 3
    ink = d[:, :, 0] < 128
    assert 0.005 < ink.mean() < 0.2
    rr, cc = np.nonzero(ink)
    pad = 0.1 / 1.2 * 224
    assert cc.min() > pad - 3 and rr.min() > pad * (e.height / e.width) - 3  # the white border



def test_drawing_equals_its_former_three_channel_resize():
    """The drawing resized as one grey channel and repeated: the bytes of the former resize of three equal
    channels, shrinking (area) and enlarging (bilinear), with and without a border."""
    from engine.edges import EdgeMap
    from engine.imageio import network_input

    def former(edges, thickness, border, side):
        h, w = edges.height, edges.width
        pad = int(round(border * max(h, w)))
        ink = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
        cols = np.rint(edges.x + (w - 1) / 2.0).astype(np.intp) + pad
        rows = np.rint(edges.y + (h - 1) / 2.0).astype(np.intp) + pad
        ink[rows, cols] = 1.0
        if thickness > 1:
            ink = cv2.dilate(ink, np.ones((thickness, thickness), np.uint8))
        return network_input(np.repeat((1.0 - ink)[:, :, None], 3, axis=2), side)

    rng = np.random.default_rng(8)
    for w, h in ((400, 300), (300, 400), (400, 400), (448, 224), (37, 16), (1, 1), (123, 401)):
        n = max(1, w * h // 20)
        cols, rows = rng.integers(0, w, n), rng.integers(0, h, n)
        e = EdgeMap(x=(cols - (w - 1) / 2.0).astype(np.float32), y=(rows - (h - 1) / 2.0).astype(np.float32),
                    theta=np.zeros(n, np.float32), w=np.ones(n, np.float32), width=w, height=h)
        for thickness, border, side in ((2, 0.0, 224), (2, 0.1, 224), (1, 0.0, 112), (3, 0.05, 500)):
            d = fusion.drawing(e, thickness=thickness, border=border, side=side)
            ref = former(e, thickness, border, side)
            assert d.dtype == ref.dtype and d.shape == ref.shape and d.flags.c_contiguous
            assert np.array_equal(d, ref), (w, h, thickness, border, side)


# --------------------------------------------------------------------------------------------------
# Through an index


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from engine.collection import SketchIndex
    from engine.indexer import index_folders

    root = tmp_path_factory.mktemp("fusion-photos")
    shapes = [("house", (40, 60, 380, 460)), ("star", (100, 30, 500, 430)), ("ell", (200, 40, 580, 440)),
              ("star", (300, 200, 560, 440)), ("house", (250, 150, 600, 460)), ("ell", (20, 20, 300, 300))]
    for i, (shape, box) in enumerate(shapes):
        cv2.imwrite(str(root / f"{i}-{shape}.jpg"), photo_with_shape(shape, box, seed=i)[..., ::-1])
    db = tmp_path_factory.mktemp("fusion-db") / "index"
    index_folders([root], db, workers=1)
    return SketchIndex(db)


def test_index_has_global_sketch_descriptors(index):
    images = index.images()
    assert images.has_sketch and len(images.sketch) == len(index)
    vectors = images.sketch.vectors(np.arange(len(index)))  # searchable: unit length, centred on the collection
    assert vectors.shape == (len(index), 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert abs(vectors.mean(axis=0)).max() < 0.05


def test_search_scores_are_calibrated_and_keep_the_raw_cosine(index):
    hits = index.search(sketch_of("star"), top_k=6)
    assert len(hits) == 6 and "star" in hits[0].path
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert all(-1.0 <= h.raw_score <= 1.0 for h in hits)
    j = hits[0].to_json()
    assert set(j) >= {"rank", "path", "score", "box", "scale", "mirrored", "raw_score", "box_sure"}
    assert j["box_sure"] is True  # the star stands out where its box is
    plain = index.search(sketch_of("star"), top_k=6, params=dataclasses.replace(load_params(), confirm_n=0))
    assert all(a.score >= b.score for a, b in zip(plain, plain[1:], strict=False))  # without confirmation: by score


def test_global_weight_zero_reproduces_the_alignment_ranking_through_the_index(index):
    sketch = sketch_of("ell")
    params = dataclasses.replace(load_params(), w=0.0, qe_n=0)
    fused = index.search(sketch, top_k=len(index), params=params, options=SearchOptions(mode="exhaustive"))
    edges = index.sketch_query(sketch)
    scorer = QueryScorer(encode_query(edges, index.layout), index.layout, mirror=True)
    r = rank(scorer, index.codes, index.inv_norms, SearchOptions(mode="exhaustive"), top_k=len(index))
    assert [h.row for h in fused] == r.rows.tolist()
    assert [h.raw_score for h in fused] == pytest.approx(r.scores.tolist(), abs=1e-5)
    alone = index.search(sketch, top_k=len(index), fusion=False, options=SearchOptions(mode="exhaustive"))
    assert [h.row for h in alone] == r.rows.tolist()


def test_search_json_through_the_cli(index, tmp_path, capsys):
    from app.cli import main

    cv2.imwrite(str(tmp_path / "s.png"), sketch_of("house"))
    for extra in ([], ["--no-mirror"], ["--mirror", "--expand", "0"], ["--no-fusion"]):
        assert main(["search", "--db", str(index.path), "--sketch", str(tmp_path / "s.png"), "--json", "--top", "2",
                     *extra]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 2 and all(0 <= r["score"] <= 1 and "raw_score" in r for r in rows)
        assert all(isinstance(r["box_sure"], bool) for r in rows)
        assert "house" in rows[0]["path"]


def test_stand_out_interpolates_in_log_size_and_grows_beyond_the_fitted_sizes():
    p = FusionParams(stand_out={"small": [[30, 3.0, 2], [300, 6.0, 8]], "whitened": [[1000, 10.0, 20]],
                                "quantile": 0.95})
    assert p.stand_out_z(10, whitened=False) == 3.0  # below the smallest size: its value
    assert p.stand_out_z(30, whitened=False) == pytest.approx(3.0)
    assert p.stand_out_z(95, whitened=False) == pytest.approx(3.0 + 3.0 * np.log(95 / 30) / np.log(10))
    assert p.stand_out_count(95, whitened=False) == pytest.approx(2 + 6 * np.log(95 / 30) / np.log(10))
    assert p.stand_out_z(300, whitened=False) == pytest.approx(6.0)
    # above the largest size: the best of n Gaussian draws (sqrt log n); the count in proportion to n
    assert p.stand_out_z(900, whitened=False) == pytest.approx(6.0 * np.sqrt(np.log(900) / np.log(300)))
    assert p.stand_out_count(900, whitened=False) == pytest.approx(24.0)
    assert p.stand_out_z(10**6, whitened=True) == pytest.approx(10.0 * np.sqrt(np.log(1e6) / np.log(1000)))
    # either test: a best hit that stands out, or more hits at or above the cut than such collections show
    assert p.stands_out(300, whitened=False, best_z=6.0, count=0)
    assert p.stands_out(300, whitened=False, best_z=5.9, count=8)
    assert not p.stands_out(300, whitened=False, best_z=5.9, count=7)
    assert FusionParams().stands_out(100, whitened=False, best_z=-5.0, count=0)  # nothing fitted: no test
    shipped = load_params()  # fitted: rising with the size in each regime
    for whitened, sizes in ((False, (30, 100, 300, 900)), (True, (1000, 10**4, 10**6))):
        z = [shipped.stand_out_z(n, whitened=whitened) for n in sizes]
        k = [shipped.stand_out_count(n, whitened=whitened) for n in sizes]
        assert all(a < b for a, b in zip(z, z[1:], strict=False)), z
        assert all(a <= b for a, b in zip(k, k[1:], strict=False)) and k[0] >= 1, k
    assert shipped.stand_out["quantile"] == 0.95


def test_likely_matches_only_where_the_hits_stand_out(index):
    sketch = sketch_of("star")
    p = load_params()
    untested = index.search(sketch, top_k=6, params=dataclasses.replace(p, stand_out={}))
    assert [h.likely for h in untested] == [h.score >= p.likely for h in untested]
    assert untested[0].likely and untested[0].to_json()["likely"] is True
    never = dataclasses.replace(p, stand_out={"small": [[2, 1e9, 1e9]], "whitened": [[2, 1e9, 1e9]]})
    hits = index.search(sketch, top_k=6, params=never)
    assert [h.path for h in hits] == [h.path for h in untested]  # the ranking is unchanged
    assert not any(h.likely for h in hits) and hits[0].to_json()["likely"] is False
    alone = index.search(sketch, top_k=6, fusion=False, params=never)  # fitted on the fused score only
    assert [h.likely for h in alone] == [h.score >= p.likely for h in alone]


def test_only_hits_whose_shape_was_found_count_where_the_table_says_confirmed(index):
    p = FusionParams(likely=0.3, sure_z=2.0)
    score, za = np.array([0.5, 0.5, 0.2, 0.9]), np.array([3.0, 1.0, 5.0, 2.0])
    assert p.counted(score, za).tolist() == [True, True, False, True]  # the cut alone
    confirmed = dataclasses.replace(p, stand_out={"confirmed": True})
    assert confirmed.counted(score, za).tolist() == [True, False, False, True]
    # through the index: a count threshold that the hits at or above the cut reach, the sure ones not
    sketch = sketch_of("star")
    shipped = load_params()
    plain = index.search(sketch, top_k=len(index), params=dataclasses.replace(shipped, stand_out={}))
    cut = sum(h.score >= shipped.likely for h in plain)
    sure = sum(h.score >= shipped.likely and h.box_sure for h in plain)
    assert cut > sure >= 1
    flat = [[2, 1e9, cut], [10**7, 1e9, cut]]  # the best z never stands out; the count needed: ``cut``
    table = {"small": flat, "whitened": flat}
    by_cut = index.search(sketch, top_k=6, params=dataclasses.replace(shipped, stand_out=table))
    by_sure = index.search(sketch, top_k=6, params=dataclasses.replace(shipped, stand_out={**table, "confirmed": True}))
    assert by_cut[0].likely and not any(h.likely for h in by_sure)


def test_reference_fades_out_exactly_through_the_index(index):
    sketch = sketch_of("star")
    p = load_params()
    off = dataclasses.replace(p, ref_k=0.0)
    faded = dataclasses.replace(p, ref_k=500.0, ref_full=len(index))  # weight 0 at this collection's size
    on = dataclasses.replace(p, ref_k=500.0, ref_full=10 * len(index))
    a, b, c = (index.search(sketch, top_k=len(index), params=q) for q in (off, faded, on))
    assert [(h.path, h.score) for h in a] == [(h.path, h.score) for h in b]  # a large collection: its own statistics
    assert [h.score for h in a] != [h.score for h in c]  # a small one: the reference is in use


def test_reference_fits_the_default_settings_only():
    from engine.reference import load_reference
    from engine.settings import SketchSettings

    ref = load_reference()
    assert ref is not None and len(ref) >= 150 and ref.codes.dtype == np.int8
    assert ref.fits(SketchSettings().to_json())
    assert not ref.fits(SketchSettings.preset("quality").to_json())
    assert ref.gem.shape == ref.sketch.shape == (len(ref), 1280)
    assert (fusion.FUSION_FILE.parent / "reference.npz").stat().st_size < 2e6


def wine_glass(size: int = 400) -> np.ndarray:
    """A sketch of a wine glass (a shape the demo collection does not hold)."""
    img = np.full((size, size), 255, np.uint8)
    c = size // 2
    bowl = [(c - 70, 60), (c - 75, 120), (c - 60, 170), (c - 25, 200), (c, 205), (c + 25, 200), (c + 60, 170),
            (c + 75, 120), (c + 70, 60)]
    cv2.polylines(img, [np.array(bowl, np.int32)], False, 0, 3, cv2.LINE_AA)
    cv2.line(img, (c - 70, 60), (c + 70, 60), 0, 3, cv2.LINE_AA)
    cv2.line(img, (c - 4, 205), (c - 4, 320), 0, 3, cv2.LINE_AA)
    cv2.line(img, (c + 4, 205), (c + 4, 320), 0, 3, cv2.LINE_AA)
    cv2.ellipse(img, (c, 330), (60, 12), 0, 0, 360, 0, 3, cv2.LINE_AA)
    return img


@pytest.fixture(scope="module")
def demo_grown(tmp_path_factory):
    """The demo collection (36 photos) and a copy grown by 60 synthetic photos."""
    import shutil

    from engine.collection import SketchIndex
    from engine.demo import DEMO
    from engine.indexer import index_folders

    tmp = tmp_path_factory.mktemp("demo-grown")
    index_folders([DEMO / "photos"], tmp / "demo", workers=1)
    more = tmp / "more"
    more.mkdir()
    for i in range(60):
        shape = ["star", "ell", "arrow", "house"][i % 4]
        x0, y0 = 20 + (i * 37) % 200, 20 + (i * 53) % 120
        box = (x0, y0, x0 + 260 + (i % 3) * 40, y0 + 240 + (i % 2) * 50)
        cv2.imwrite(str(more / f"{i:02d}-{shape}.jpg"), photo_with_shape(shape, box, seed=100 + i)[..., ::-1])
    shutil.copytree(tmp / "demo", tmp / "grown")
    index_folders([DEMO / "photos", more], tmp / "grown", workers=1)
    return DEMO, SketchIndex(tmp / "demo"), SketchIndex(tmp / "grown")


def _expected_scores(index, demo, params):
    expected = json.loads((demo / "expected.json").read_text())["sketches"]
    out = []
    for sketch, want in expected.items():
        hits = index.search(demo / "sketches" / sketch, top_k=len(index), params=params)
        score = {h.path.rsplit("/", 1)[-1]: h.score for h in hits}
        out += [score[name] for name in want["photos"]]
    return np.array(out)


@pytest.mark.slow
@pytest.mark.xdist_group("demo-grown")  # one build of the module's fixture (pytest -n)
def test_demo_scores_stay_put_as_the_collection_grows(demo_grown):
    demo, small, grown = demo_grown
    assert len(small) == 36 and len(grown) == 96
    p = load_params()
    moved = np.abs(_expected_scores(grown, demo, p) - _expected_scores(small, demo, p))
    alone = dataclasses.replace(p, ref_k=0.0, calibration_small=None)  # the collection's own statistics (before)
    moved_alone = np.abs(_expected_scores(grown, demo, alone) - _expected_scores(small, demo, alone))
    assert moved.mean() < 0.05 and moved_alone.mean() > 0.15, (moved, moved_alone)


@pytest.mark.slow
@pytest.mark.xdist_group("demo-grown")
def test_demo_absent_shape_scores_below_the_likely_cut(demo_grown):
    _, small, _ = demo_grown
    hits = small.search(wine_glass(), top_k=3)
    assert hits[0].score < load_params().likely, [(h.path, h.score) for h in hits]
    assert not any(h.likely for h in hits)




def _brute_confirmed_order(final, za, m, eligible, score=None, base=None, cut=None, clear=None):
    """The ranking by its definition: rows both rankings put among their best m (of the eligible) first, by
    alignment z -- and, with ``clear`` (sure_z), the alignment's best where it is at least that and leads the
    second by that; then, where a likely cut is given (``likely_by_drawing``), the other rows scoring at or
    above it, by the drawing's own evidence (``base``); then the others by the fused score; ineligible rows left
    out."""
    idx = [i for i in range(len(final)) if eligible[i]]
    by_afm = sorted(idx, key=lambda i: (-za[i], i))[:m]
    by_final = sorted(idx, key=lambda i: (-final[i], i))[:m]
    both = set(by_afm) & set(by_final)
    ranked = sorted(idx, key=lambda i: (-za[i], i))
    if clear is not None and m and len(ranked) >= 2 and za[ranked[0]] >= clear \
            and za[ranked[0]] - za[ranked[1]] >= clear:
        both.add(ranked[0])
    first = sorted(both, key=lambda i: (-za[i], i))
    others = [i for i in idx if i not in both]
    likely = [] if cut is None else sorted((i for i in others if score[i] >= cut), key=lambda i: (-base[i], i))
    rest = sorted((i for i in others if i not in likely), key=lambda i: (-final[i], i))
    return first + likely + rest


@pytest.mark.parametrize("seed", range(6))
def test_confirmed_first_matches_its_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    final = rng.normal(size=n)
    za = 0.5 * final + rng.normal(size=n)
    eligible = rng.random(n) > 0.1
    params = dataclasses.replace(FusionParams(), confirm_n=20, confirm_share=0.05)
    f = fusion.Fused(np.arange(n), final, final, calibrate(final, params.calibration), za)
    key = fusion.confirmed_first(f, params, n, eligible)
    m = max(3, min(20, round(0.05 * n)))
    order = [i for i in np.argsort(-key, kind="stable") if np.isfinite(key[i])]
    assert order == _brute_confirmed_order(final, za, m, eligible)
    assert np.all(np.isneginf(key[~eligible]))
    off = fusion.confirmed_first(f, dataclasses.replace(params, confirm_n=0), n, eligible)
    np.testing.assert_array_equal(off, np.where(eligible, final, -np.inf))  # 0: the fused order itself


@pytest.mark.parametrize("seed", range(12))
def test_a_clear_alignment_hit_is_confirmed_first_as_its_definition_says(seed):
    """``confirm_clear``: the alignment's best row, at least sure_z and ahead of the second by sure_z, comes
    first even where the fused score does not rank it among its best (half the seeds plant such a row)."""
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(5, 300))
    final = rng.normal(size=n)
    za = 0.5 * final + rng.normal(size=n)
    if seed % 2:
        za[int(rng.integers(n))] = za.max() + rng.uniform(1.5, 3.5)  # sometimes clear enough, sometimes not
    eligible = rng.random(n) > 0.1
    params = dataclasses.replace(FusionParams(), confirm_n=20, confirm_share=0.05, confirm_clear=True, sure_z=2.0)
    f = fusion.Fused(np.arange(n), final, final, calibrate(final, params.calibration), za)
    key = fusion.confirmed_first(f, params, n, eligible)
    m = max(3, min(20, round(0.05 * n)))
    order = [i for i in np.argsort(-key, kind="stable") if np.isfinite(key[i])]
    assert order == _brute_confirmed_order(final, za, m, eligible, clear=2.0)


def test_a_shape_found_clearly_in_one_photo_comes_first_though_the_fused_score_buries_it():
    # row 4: the alignment's z 3.6, the second's 1.2 (a drawn bicycle; the global descriptor prefers houses)
    final = np.array([9.0, 8.9, 8.8, 8.7, 1.0, 0.5])
    za = np.array([1.1, 1.0, 0.9, 1.2, 3.6, 0.2])
    params = dataclasses.replace(FusionParams(), confirm_n=10, confirm_share=0.05, sure_z=2.0)
    f = fusion.Fused(np.arange(6), final, final, calibrate(final, params.calibration), za)
    off = np.argsort(-fusion.confirmed_first(f, params, 6), kind="stable").tolist()
    on = np.argsort(-fusion.confirmed_first(f, dataclasses.replace(params, confirm_clear=True), 6),
                    kind="stable").tolist()
    assert off[0] != 4 and on[0] == 4 and on[1:] == [r for r in off if r != 4]
    za[3] = 1.7  # the second within sure_z of it: not clear
    assert np.argsort(-fusion.confirmed_first(f, dataclasses.replace(params, confirm_clear=True), 6),
                      kind="stable").tolist() == off


@pytest.mark.parametrize("seed", range(6))
def test_likely_hits_in_the_order_of_the_drawing_match_their_definition(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 400))
    final = 3 * rng.normal(size=n)
    za = 0.3 * final + rng.normal(size=n)
    base = za + rng.normal(size=n)
    eligible = rng.random(n) > 0.1
    params = dataclasses.replace(FusionParams(), confirm_n=int(rng.choice([0, 20])), confirm_share=0.05,
                                 likely=0.25, likely_by_drawing=True, calibration=(-4.0, 1.0, 0.0, 5.0))
    score = calibrate(final, params.calibration)
    assert 0 < (score >= params.likely).sum() < n  # some rows on either side of the cut
    f = fusion.Fused(np.arange(n), final, final, score, za, base=base)
    key = fusion.confirmed_first(f, params, n, eligible)
    m = max(3, min(20, round(0.05 * n))) if params.confirm_n else 0
    order = [i for i in np.argsort(-key, kind="stable") if np.isfinite(key[i])]
    assert order == _brute_confirmed_order(final, za, m, eligible, score, base, params.likely)
    assert np.all(np.isneginf(key[~eligible]))
    off = fusion.confirmed_first(f, dataclasses.replace(params, likely_by_drawing=False), n, eligible)
    order_off = [i for i in np.argsort(-off, kind="stable") if np.isfinite(off[i])]
    if params.confirm_n:
        assert order_off == _brute_confirmed_order(final, za, m, eligible)
    else:
        np.testing.assert_array_equal(off, np.where(eligible, final, -np.inf))


def test_a_likely_hit_that_follows_the_drawing_comes_before_one_the_expansion_alone_lifts():
    # rows 0-2 score above the cut; row 2 is the drawn photo: the expansion puts it third, the drawing first
    final = np.array([9.0, 8.5, 8.0, 1.0, 0.5, 0.0])
    za = np.array([0.5, 0.4, 1.5, 0.2, 0.0, 0.1])
    base = np.array([1.0, 0.5, 4.0, 0.8, 0.1, 0.0])  # alignment z + global z
    params = dataclasses.replace(FusionParams(), confirm_n=0, likely=0.25, likely_by_drawing=True,
                                 calibration=(-4.0, 1.0, 0.0, 5.0))
    f = fusion.Fused(np.arange(6), final, final, calibrate(final, params.calibration), za, base=base)
    assert np.argsort(-fusion.confirmed_first(f, params, 6), kind="stable").tolist() == [2, 0, 1, 3, 4, 5]
    # row 3 has the best drawing evidence of the rest, but scores below the cut: it stays in the fused order
    off = dataclasses.replace(params, likely_by_drawing=False)
    assert np.argsort(-fusion.confirmed_first(f, off, 6), kind="stable").tolist() == [0, 1, 2, 3, 4, 5]


def test_fused_base_is_the_drawing_evidence_before_the_expansion():
    rng = np.random.default_rng(3)
    n = 300
    rows = np.arange(n)
    afm, glob = rng.random(n), rng.random(n)
    vec = rng.normal(size=(n, 16))
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    params = dataclasses.replace(load_params(), qe_n=5, qe_w=0.5, ref_k=0.0)

    def image(seeds):
        return rows, vec @ vec[seeds].mean(axis=0), afm, glob, None

    f = fuse(rows, afm, glob, rows, params, image=image)
    za = fusion.standardise(afm, afm)
    zg = fusion.standardise(glob, glob)
    np.testing.assert_allclose(f.base, za + 0.5 * zg, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fuse(rows, afm, glob, rows, dataclasses.replace(params, qe_n=0)).base, za + 0.5 * zg,
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fuse(rows, afm, None, rows, params).base, za, rtol=1e-9, atol=1e-9)  # alignment alone


def test_confirmed_first_puts_the_well_aligned_hit_before_one_the_fused_score_alone_lifted():
    # rows 0 and 1 are the fused score's two best; row 1 is the alignment's best, row 0 barely aligns
    final = np.array([9.0, 8.0, 1.0, 0.5, 0.0, -1.0, -2.0, 0.2])
    za = np.array([-0.5, 6.0, 5.0, 0.0, 0.1, -0.3, 0.4, 0.2])
    params = dataclasses.replace(FusionParams(), confirm_n=3, confirm_share=1.0)
    f = fusion.Fused(np.arange(8), final, final, calibrate(final, params.calibration), za)
    key = fusion.confirmed_first(f, params, 8)
    order = np.argsort(-key, kind="stable")
    assert order[:3].tolist() == [1, 2, 0]  # 1 and 2 are in both top-3 lists: first, by alignment; then 0
    assert (f.za >= params.sure_z).tolist() == [False, True, True, False, False, False, False, False]  # sure boxes


def test_alignment_only_search_order_is_unchanged_by_confirmation():
    rng = np.random.default_rng(7)
    afm = rng.random(200)
    rows = np.arange(200)
    params = dataclasses.replace(load_params(), confirm_n=20)
    f = fuse(rows, afm, None, rows, params)
    assert np.array_equal(np.argsort(-f.key, kind="stable"), np.argsort(-afm, kind="stable"))
