"""Scoring over shifts, scales and mirrors: equal to brute force, finds true shifts, pipelines agree."""
import numpy as np
import pytest
import torch

from engine import search
from engine.afm import FeatureLayout, database_descriptor, encode_query
from engine.edges import EdgeMap
from engine.search import QueryScorer, SearchOptions, rank
from engine.settings import SketchSettings
from engine.shifts import coarse_shift_values, shift_descriptor, shift_values


@pytest.fixture(scope="module")
def layout():
    return FeatureLayout.from_settings(SketchSettings())


def polyline(corners, per_side):
    """Points along a polyline, ``per_side`` per segment."""
    return np.concatenate([np.linspace(a, b, per_side, endpoint=False)
                           for a, b in zip(corners[:-1], corners[1:], strict=True)])


def outline(kind: str, size: float = 200.0, n: int = 400):
    """Points (x, y, theta) along a closed outline centred on the origin."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if kind == "ellipse":
        pts = np.c_[0.5 * size * np.cos(t), 0.3 * size * np.sin(t)]
    elif kind == "L":  # an asymmetric L-shaped polygon
        corners = np.array([[0, 0], [1, 0], [1, 0.35], [0.35, 0.35], [0.35, 1], [0, 1], [0, 0]]) - 0.4
        pts = polyline(corners, n // 6)
        pts = pts * size
    elif kind == "triangle":
        corners = np.array([[-0.5, 0.4], [0.5, 0.4], [-0.2, -0.5], [-0.5, 0.4]])
        pts = polyline(corners, n // 3)
        pts = pts * size
    else:
        raise ValueError(kind)
    d = np.roll(pts, -1, axis=0) - np.roll(pts, 1, axis=0)
    theta = np.mod(np.arctan2(d[:, 1], d[:, 0]), np.pi)
    return pts[:, 0], pts[:, 1], theta


def edge_map(x, y, theta, w=None, size=(400, 300)):
    w = np.ones_like(x) if w is None else w
    return EdgeMap(*(np.asarray(a, np.float32) for a in (x, y, theta, w)), width=size[0], height=size[1])


def store(layout, maps):
    descs = [database_descriptor(m, layout) for m in maps]
    return np.stack([d.codes for d in descs]), np.stack([d.inv_norms for d in descs])


def sketch(kind):
    x, y, t = outline(kind, size=400)
    return edge_map(x, y, t, size=(int(np.ptp(x)) + 1, int(np.ptp(y)) + 1))


@pytest.mark.parametrize("dx, dy", [(40, -60), (-80, 20), (0, 0)])
def test_shifted_copy_scores_its_maximum_at_the_true_shift(layout, dx, dy):
    x, y, t = outline("L", size=400)
    photo = edge_map(x + dx, y + dy, t)
    codes, inv = store(layout, [photo])
    scorer = QueryScorer(encode_query(sketch("L"), layout), layout)
    (al,) = scorer.align(codes, inv, softness=0)
    assert (al.scale, al.mirrored, al.dx, al.dy) == (1.0, False, dx, dy)
    assert al.score == pytest.approx(1.0, abs=0.02)
    (soft,) = scorer.align(codes, inv)  # the soft placement: the same score and mirror, about the same place
    assert (soft.score, soft.mirrored) == (al.score, al.mirrored)
    assert soft.scale == pytest.approx(1.0, abs=0.05) and abs(soft.dx - dx) < 5 and abs(soft.dy - dy) < 5


def test_mirrored_copy_is_found_mirrored(layout):
    x, y, t = outline("L", size=400)
    photo = edge_map(-x, y, np.mod(np.pi - t, np.pi))
    codes, inv = store(layout, [photo])
    (al,) = QueryScorer(encode_query(sketch("L"), layout), layout).align(codes, inv, softness=0)
    assert al.mirrored and al.scale == 1.0 and al.score > 0.97
    (plain,) = QueryScorer(encode_query(sketch("L"), layout), layout, mirror=False).align(codes, inv)
    assert not plain.mirrored and plain.score < al.score - 0.05


def test_smaller_shape_matches_a_smaller_query_scale(layout):
    x, y, t = outline("L", size=400)
    photo = edge_map(0.6 * x + 36, 0.6 * y - 24, t)
    codes, inv = store(layout, [photo])
    (al,) = QueryScorer(encode_query(sketch("L"), layout), layout).align(codes, inv, softness=0)
    assert al.scale == 0.6 and (al.dx, al.dy) == (36, -24)


def brute_force_scores(layout, query, codes, inv, mirror=True, values=shift_values):
    """Max over every (scale, mirror, shift) of the cosine with the re-shifted query descriptor (shifts: ``values``
    of the settings and the scale)."""
    canonical = np.empty(codes.shape, np.float64)
    canonical[:, layout.storage_order] = codes
    best = np.full(len(codes), -np.inf)
    for k, s in enumerate(layout.settings.scales):
        vals = values(layout.settings, s)
        diag = layout.kernel_diag(k)
        for m in range(2 if mirror else 1):
            q = query.desc[k, m]
            qn = np.sqrt(q @ (diag * q))
            shifted = np.stack([diag * shift_descriptor(q, a, b, layout) for a in vals for b in vals], axis=1)
            best = np.maximum(best, (canonical @ shifted).max(axis=1) * inv[:, k, 0] / qn)
    return best


def brute_force_projection_scores(layout, query, codes, inv, axis):
    """Max over every (scale, mirror, 1-D shift) of the cosine of the x (or y) projections, the query's moved along
    that axis (the 1-D shortlist's score)."""
    canonical = np.empty(codes.shape, np.float64)
    canonical[:, layout.storage_order] = codes
    index = layout.x_index if axis == "x" else layout.y_index
    best = np.full(len(codes), -np.inf)
    for k, s in enumerate(layout.settings.scales):
        pdiag = layout.projection_diag(k)
        for m in range(2):
            p = query.desc[k, m][index]
            moved = [shift_descriptor(query.desc[k, m], d, 0, layout) if axis == "x"
                     else shift_descriptor(query.desc[k, m], 0, d, layout) for d in shift_values(layout.settings, s)]
            shifted = np.stack([pdiag * v[index] for v in moved], axis=1)
            cos = canonical[:, index] @ shifted / np.sqrt(p @ (pdiag * p))
            best = np.maximum(best, cos.max(axis=1) * inv[:, k, 1 if axis == "x" else 2])
    return best


def random_photos(layout, n, seed):
    rng = np.random.default_rng(seed)
    kinds = ["ellipse", "L", "triangle"]
    maps = []
    for i in range(n):
        x, y, t = outline(kinds[i % 3], size=rng.uniform(150, 380))
        cx, cy = rng.uniform(-80, 80, 2)
        clutter = rng.uniform(-200, 200, (2, 150))
        maps.append(edge_map(np.r_[x + cx, clutter[0]], np.r_[y + cy, clutter[1]],
                             np.r_[t, rng.uniform(0, np.pi, 150)], np.r_[np.ones(len(x)), rng.uniform(0.2, 1, 150)]))
    return maps


def test_score_2d_equals_brute_force(layout):
    maps = random_photos(layout, 12, seed=0)
    codes, inv = store(layout, maps)
    query = encode_query(sketch("triangle"), layout)
    scores = QueryScorer(query, layout).score_2d(codes, inv)
    np.testing.assert_allclose(scores, brute_force_scores(layout, query, codes, inv), rtol=2e-5, atol=2e-5)
    plain = QueryScorer(query, layout, mirror=False).score_2d(codes, inv)
    np.testing.assert_allclose(plain, brute_force_scores(layout, query, codes, inv, mirror=False), atol=2e-5)


def test_numpy_kernels_equal_brute_force(any_layout):
    """The numpy backend's products by frequency (1-D projections, exact and coarse 2-D grids) give the scores
    of the shifted query descriptors, in both descriptor layouts, and the same scores (to rounding) one image at a
    time."""
    layout = any_layout
    codes, inv = store(layout, random_photos(layout, 9, seed=5))
    query = encode_query(sketch("L"), layout)
    scorer = QueryScorer(query, layout, device="cpu", backend="numpy")
    x, y = (brute_force_projection_scores(layout, query, codes, inv, axis) for axis in "xy")
    np.testing.assert_allclose(scorer.score_1d(codes, inv, "x"), x, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(scorer.score_1d(codes, inv, "y"), y, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(scorer.score_1d(codes[:, :scorer.n_proj], inv, "xy"), x + y, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(scorer.score_2d(codes, inv), brute_force_scores(layout, query, codes, inv),
                               rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(scorer.score_2d(codes, inv, coarse=True),
                               brute_force_scores(layout, query, codes, inv, values=coarse_shift_values),
                               rtol=2e-5, atol=2e-5)
    one_by_one = np.concatenate([scorer.score_2d(codes[i:i + 1], inv[i:i + 1]) for i in range(len(codes))])
    np.testing.assert_allclose(one_by_one, scorer.score_2d(codes, inv), rtol=1e-6, atol=1e-7)


def test_fast_ranking_equals_the_brute_force_pipeline(layout, monkeypatch):
    """``rank`` (S_x + S_y shortlist, exact 2-D re-rank), in many small blocks on two threads, keeps the
    shortlist and the order that the brute-force scores give, with their scores; one thread gives the same."""
    monkeypatch.setattr(search, "CHUNK_1D", 96)
    monkeypatch.setattr(search, "CHUNK", 32)
    rng = np.random.default_rng(12)
    n, short = 700, 60
    codes = rng.integers(-127, 128, (n, layout.settings.dim), dtype=np.int8)
    inv = rng.uniform(0.5, 2.0, (n, len(layout.settings.scales), 3)).astype(np.float32) / 127.0
    query = encode_query(sketch("triangle"), layout)
    scorer = QueryScorer(query, layout, device="cpu", backend="numpy")
    scorer.threads = 2
    got = rank(scorer, codes, inv, SearchOptions(order="sum", shortlist=short), top_k=short, n_align=5)
    first = (brute_force_projection_scores(layout, query, codes, inv, "x")
             + brute_force_projection_scores(layout, query, codes, inv, "y"))
    by_first = np.argsort(-first, kind="stable")
    assert first[by_first[short - 1]] - first[by_first[short]] > 1e-4  # no near tie at the cut
    exact = brute_force_scores(layout, query, codes[by_first[:short]], inv[by_first[:short]])
    want = by_first[:short][np.argsort(-exact, kind="stable")]
    assert got.n_exact == short and set(got.rows) == set(want)
    np.testing.assert_allclose(got.scores, np.sort(exact)[::-1], rtol=2e-5, atol=2e-5)
    gaps = np.diff(np.sort(exact)[::-1])
    clear = np.r_[True, gaps < -1e-4] & np.r_[gaps < -1e-4, True]  # rows with no near tie either side
    assert np.array_equal(got.rows[clear], want[clear])
    scorer.threads = 1
    alone = rank(scorer, codes, inv, SearchOptions(order="sum", shortlist=short), top_k=short, n_align=5)
    assert np.array_equal(alone.rows, got.rows) and np.array_equal(alone.scores, got.scores)


def test_binary_approximation_is_a_lower_bound_and_close(layout):
    maps = random_photos(layout, 30, seed=1)
    codes, inv = store(layout, maps)
    scorer = QueryScorer(encode_query(sketch("ellipse"), layout), layout)
    exact = scorer.score_2d(codes, inv)
    approx = scorer.score_2d(codes, inv, binary=True)
    assert np.all(approx <= exact + 1e-5)
    assert np.median(exact - approx) < 0.01


@pytest.mark.parametrize("order", ["discriminative", "sum", "coarse", "auto"])
def test_fast_pipeline_agrees_with_exhaustive(layout, order):
    maps = random_photos(layout, 60, seed=2)
    codes, inv = store(layout, maps)
    scorer = QueryScorer(encode_query(sketch("L"), layout), layout)
    full = rank(scorer, codes, inv, SearchOptions(mode="exhaustive"), top_k=60)
    fast = rank(scorer, codes, inv, SearchOptions(order=order, shortlist=20), top_k=10)
    assert fast.n_exact == 10
    assert set(fast.rows[:5]) <= set(full.rows[:10])
    assert fast.rows[0] == full.rows[0]
    np.testing.assert_allclose(fast.scores[:5], full.scores[:5], atol=1e-6)
    assert [a.score for a in fast.alignments[:3]] == pytest.approx(list(fast.scores[:3]), abs=1e-5)


def test_rank_on_empty_database(layout):
    scorer = QueryScorer(encode_query(sketch("L"), layout), layout)
    codes, inv = np.zeros((0, 243), np.int8), np.zeros((0, 3, 3), np.float32)
    r = rank(scorer, codes, inv, SearchOptions(), top_k=5)
    assert len(r.rows) == 0 and r.alignments == ()
    assert scorer.score_1d(codes, inv, "xy").shape == scorer.score_2d(codes, inv).shape == (0,)
    assert scorer.align(codes, inv) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_equal_cpu_scores(layout):
    maps = random_photos(layout, 40, seed=3)
    codes, inv = store(layout, maps)
    query = encode_query(sketch("L"), layout)
    cpu = QueryScorer(query, layout, device=torch.device("cpu"))
    gpu = QueryScorer(query, layout, device=torch.device("cuda"))
    np.testing.assert_allclose(gpu.score_2d(codes, inv), cpu.score_2d(codes, inv), atol=1e-4)
    for axis in ("x", "y"):
        np.testing.assert_allclose(gpu.score_1d(codes, inv, axis), cpu.score_1d(codes, inv, axis), atol=1e-4)
    a = rank(cpu, codes, inv, SearchOptions(shortlist=10), top_k=5)
    b = rank(gpu, codes, inv, SearchOptions(shortlist=10), top_k=5)
    assert list(a.rows) == list(b.rows)


def test_auto_order_picks_by_collection_size():
    opts = SearchOptions(coarse_max=100)
    assert opts.shortlist_order(100) == "coarse" and opts.shortlist_order(101) == "sum"
    assert SearchOptions(order="discriminative").shortlist_order(10) == "discriminative"
    with pytest.raises(ValueError, match="unknown shortlist order"):
        SearchOptions(order="best")


def test_unknown_or_absent_device_is_a_clear_error():
    from engine.errors import SketchSearchError
    from engine.search import pick_device

    with pytest.raises(SketchSearchError, match="unknown device"):
        pick_device("foo")
    if not torch.cuda.is_available():
        with pytest.raises(SketchSearchError, match="no CUDA device"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"


def test_projection_sum_equals_the_two_projections(layout):
    codes, inv = store(layout, random_photos(layout, 20, seed=4))
    scorer = QueryScorer(encode_query(sketch("triangle"), layout), layout)
    both = scorer.score_1d(codes, inv, "xy")
    np.testing.assert_allclose(both, scorer.score_1d(codes, inv, "x") + scorer.score_1d(codes, inv, "y"), atol=1e-6)
    with pytest.raises(ValueError, match="axes"):
        scorer.score_1d(codes, inv, "z")


# ----------------------------------------------------------------------------------------- numpy and torch backends

@pytest.fixture(scope="module", params=["compact", "quality"])
def both_backends(request):
    """A numpy and a torch scorer of one sketch (CPU), and random codes of 60 photos, per preset."""
    layout = FeatureLayout.from_settings(SketchSettings.preset(request.param))
    codes, inv = store(layout, random_photos(layout, 60, seed=7))
    query = encode_query(sketch("L"), layout)
    return (QueryScorer(query, layout, device="cpu", backend="numpy"),
            QueryScorer(query, layout, device="cpu", backend="torch"), codes, inv)


def clear_argmax_agrees(a, b, margin=1e-3):
    """Same arg-max where the best score of ``a`` beats its second by more than ``margin``."""
    top2 = np.sort(a)[-2:]
    if top2[1] - top2[0] > margin:
        assert np.argmax(a) == np.argmax(b)


@pytest.mark.parametrize("kind", ["plain", "binary", "coarse"])
def test_numpy_and_torch_score_2d_agree(both_backends, kind):
    np_scorer, torch_scorer, codes, inv = both_backends
    opts = {"binary": kind == "binary", "coarse": kind == "coarse"}
    a, b = np_scorer.score_2d(codes, inv, **opts), torch_scorer.score_2d(codes, inv, **opts)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (len(codes),)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
    clear_argmax_agrees(a, b)


@pytest.mark.parametrize("axes", ["x", "y", "xy"])
def test_numpy_and_torch_score_1d_agree(both_backends, axes):
    np_scorer, torch_scorer, codes, inv = both_backends
    a, b = np_scorer.score_1d(codes, inv, axes), torch_scorer.score_1d(codes, inv, axes)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
    clear_argmax_agrees(a, b)


def test_numpy_and_torch_alignments_agree(both_backends):
    np_scorer, torch_scorer, codes, inv = both_backends
    a, b = np_scorer.align(codes[:20], inv[:20], softness=0), torch_scorer.align(codes[:20], inv[:20], softness=0)
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=2e-5)
        if abs(x.score - y.score) < 1e-6:  # a tie between placements may go either way in float32
            assert (x.scale, x.mirrored, x.dx, x.dy) == (y.scale, y.mirrored, y.dx, y.dy)
    soft_a, soft_b = np_scorer.align(codes[:20], inv[:20]), torch_scorer.align(codes[:20], inv[:20])
    for x, y in zip(soft_a, soft_b, strict=True):  # the soft placement is smooth in the scores
        assert (x.scale, x.dx, x.dy) == pytest.approx((y.scale, y.dx, y.dy), abs=1e-3)


def test_numpy_and_torch_rankings_agree_on_random_codes():
    """Random stored codes (not photos): the rankings are equal wherever scores are not tied."""
    layout = FeatureLayout.from_settings(SketchSettings())
    rng = np.random.default_rng(11)
    codes = rng.integers(-127, 128, (500, layout.settings.dim), dtype=np.int8)
    inv = rng.uniform(0.5, 2.0, (500, len(layout.settings.scales), 3)).astype(np.float32) / 127.0
    query = encode_query(sketch("triangle"), layout)
    scorers = [QueryScorer(query, layout, device="cpu", backend=b) for b in ("numpy", "torch")]
    for opts in (SearchOptions(mode="exhaustive"), SearchOptions(shortlist=50),
                 SearchOptions(order="sum", shortlist=50), SearchOptions(order="discriminative", shortlist=50),
                 SearchOptions(binary=True, shortlist=50)):
        a, b = (rank(s, codes, inv, opts, top_k=30) for s in scorers)
        np.testing.assert_allclose(a.scores, b.scores, atol=2e-5, rtol=1e-5)
        gaps = np.diff(a.scores[: a.n_exact])
        clear = np.r_[True, gaps < -1e-4] & np.r_[gaps < -1e-4, True]  # rows with no near tie either side
        assert np.array_equal(a.rows[: a.n_exact][clear[: a.n_exact]], b.rows[: b.n_exact][clear[: b.n_exact]])


def test_scoring_backend_defaults_and_checks():
    layout = FeatureLayout.from_settings(SketchSettings())
    query = encode_query(sketch("L"), layout)
    assert QueryScorer(query, layout, device="cpu").backend == "numpy"
    with pytest.raises(ValueError, match="unknown scoring backend"):
        QueryScorer(query, layout, device="cpu", backend="jax")


# ------------------------------------------------------------------------- the torch backend's whole-query path

def _random_collection(layout, n, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(-127, 128, (n, layout.settings.dim), dtype=np.int8)
    inv = rng.uniform(0.5, 2.0, (n, len(layout.settings.scales), 3)).astype(np.float32) / 127.0
    return codes, inv


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


ALL_OPTIONS = (SearchOptions(mode="exhaustive"), SearchOptions(shortlist=40), SearchOptions(order="sum", shortlist=40),
               SearchOptions(order="discriminative", shortlist=40), SearchOptions(binary=True, shortlist=40))


def test_a_subset_ranks_as_its_rows_alone():
    layout = FeatureLayout.from_settings(SketchSettings())
    codes, inv = _random_collection(layout, 300, seed=5)
    subset = np.sort(np.random.default_rng(1).choice(300, 120, replace=False))
    query = encode_query(sketch("L"), layout)
    for backend, kept in (("numpy", False), ("torch", False), ("torch", True)):
        scorer = QueryScorer(query, layout, device="cpu", backend=backend)
        stored = (_read_only(codes), _read_only(inv)) if kept else (codes, inv)  # kept on the device, or not
        for opts in ALL_OPTIONS:
            a = rank(scorer, *stored, opts, top_k=25, subset=subset)
            b = rank(scorer, codes[subset], inv[subset], opts, top_k=25)
            assert list(a.rows) == list(b.rows) and a.n_exact == b.n_exact
            np.testing.assert_array_equal(a.scores, b.scores)
            assert [x.score for x in a.alignments] == [x.score for x in b.alignments]
        empty = rank(scorer, codes, inv, SearchOptions(), top_k=5, subset=np.zeros(0, np.int64))
        assert len(empty.rows) == 0 and empty.alignments == ()


def test_torch_score_rows_equal_numpy_score_rows():
    layout = FeatureLayout.from_settings(SketchSettings())
    codes, inv = _random_collection(layout, 200, seed=6)
    codes, inv = _read_only(codes), _read_only(inv)  # an opened index's memory maps: kept on the device
    query = encode_query(sketch("triangle"), layout)
    rows = np.array([150, 3, 77, 3, 199])
    a = search.score_rows(QueryScorer(query, layout, device="cpu", backend="numpy"), codes, inv, rows)
    b = search.score_rows(QueryScorer(query, layout, device="cpu", backend="torch"), codes, inv, rows)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)
    assert b[1] == b[3]
    torch_scorer = QueryScorer(query, layout, device="cpu", backend="torch")
    writable = search.score_rows(torch_scorer, codes.copy(), inv.copy(), rows)
    np.testing.assert_array_equal(writable, b)  # arrays that may change: only the rows go to the device


def test_resident_codes_are_uploaded_once_per_unchanging_array():
    from engine import torchscore

    layout = FeatureLayout.from_settings(SketchSettings())
    codes, inv = _random_collection(layout, 50, seed=8)
    ro_codes, ro_inv = _read_only(codes), _read_only(inv)
    dev = torch.device("cpu")
    torchscore.forget_resident()
    x1, i1 = torchscore.resident(ro_codes, ro_inv, dev)
    x2, i2 = torchscore.resident(ro_codes, ro_inv, dev)
    assert x1 is x2 and i1 is i2  # kept
    assert torch.equal(x1, torch.from_numpy(codes)) and torch.equal(i1, torch.from_numpy(inv))
    w1, _ = torchscore.resident(codes, inv, dev)
    codes[0, 0] = -codes[0, 0] - 1  # a writable array may change: uploaded at each call, never stale
    w2, _ = torchscore.resident(codes, inv, dev)
    assert w1 is not w2 and int(w2[0, 0]) == int(codes[0, 0])
    others = [(_read_only(codes), _read_only(inv)) for _ in range(torchscore.MAX_RESIDENT)]
    for c, i in others:
        torchscore.resident(c, i, dev)
    x3, _ = torchscore.resident(ro_codes, ro_inv, dev)
    assert x3 is not x1  # the least recently used was dropped
    torchscore.forget_resident()


def test_resident_codes_of_several_blocks():
    from engine import torchscore
    from engine.catalog import RowBlocks

    layout = FeatureLayout.from_settings(SketchSettings())
    codes, inv = _random_collection(layout, 90, seed=9)
    blocks_c = RowBlocks([_read_only(codes[:40]), _read_only(codes[40:])])
    blocks_i = RowBlocks([_read_only(inv[:40]), _read_only(inv[40:])])
    x, i = torchscore.resident(blocks_c, blocks_i, torch.device("cpu"))
    assert torch.equal(x, torch.from_numpy(codes)) and torch.equal(i, torch.from_numpy(inv))
    assert torchscore.resident(blocks_c, blocks_i, torch.device("cpu"))[0] is x
    torchscore.forget_resident()


def test_torch_top_positions_equal_numpy_with_ties():
    from engine import torchscore
    from engine.vectors import top_positions

    rng = np.random.default_rng(2)
    for n, k in ((1000, 10), (1000, 400), (7, 7), (7, 20)):
        s = rng.integers(0, 30, n).astype(np.float32)  # many ties
        assert list(torchscore.top_positions(torch.from_numpy(s), k).numpy()) == list(top_positions(s, k))


def test_split_query_matrix_keeps_float32_accuracy_under_tf32():
    """On CUDA each query matrix is hi + lo with hi exact in TF32; TF32 products of both (emulated here by
    cutting each operand to 10 mantissa bits) give the float32 product to about 2^-21 of |q|, where one TF32
    product is off by about 2^-11."""
    from engine.torchscore import TorchScorer

    def tf32(a):
        return (np.ascontiguousarray(a, np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)

    layout = FeatureLayout.from_settings(SketchSettings())
    scorer = QueryScorer(encode_query(sketch("L"), layout), layout, device="cpu", backend="torch")
    ts = TorchScorer.__new__(TorchScorer)
    ts.split, ts.device = True, torch.device("cpu")
    hi, lo = (t.numpy() for t in ts._pair(scorer.q2t))
    assert np.array_equal(hi + lo, scorer.q2t) and np.array_equal(tf32(hi), hi)
    codes, _ = _random_collection(layout, 100, seed=3)
    x = codes.astype(np.float64)
    exact = scorer.q2t.astype(np.float64) @ x.T
    two = tf32(hi).astype(np.float64) @ x.T + tf32(lo).astype(np.float64) @ x.T
    one = tf32(scorer.q2t).astype(np.float64) @ x.T
    scale = np.abs(scorer.q2t).astype(np.float64) @ np.abs(x).T
    assert np.max(np.abs(two - exact) / scale) < 2 ** -19
    assert np.max(np.abs(one - exact) / scale) > 2 ** -14


def test_exhaustive_float16_first_pass_then_exact():
    """CUDA's exhaustive mode (every photo in float16, the best re-scored exactly), run here on the CPU: the same
    rows and exact scores as the numpy backend's exhaustive ranking."""
    layout = FeatureLayout.from_settings(SketchSettings())
    codes, inv = _random_collection(layout, 400, seed=13)
    query = encode_query(sketch("L"), layout)
    cpu = QueryScorer(query, layout, device="cpu", backend="numpy")
    half = QueryScorer(query, layout, device="cpu", backend="torch")
    half._torch.q2h = half._torch.q2t[0].to(torch.float16)
    opts = SearchOptions(mode="exhaustive", min_shortlist=60)
    a, b = rank(cpu, codes, inv, opts, top_k=20), rank(half, codes, inv, opts, top_k=20)
    assert b.n_exact == 20
    np.testing.assert_allclose(a.scores, b.scores, atol=2e-5, rtol=1e-5)
    gaps = np.diff(a.scores)
    clear = np.r_[True, gaps < -1e-4] & np.r_[gaps < -1e-4, True]
    assert np.array_equal(a.rows[clear], b.rows[clear])
    approx = half._torch.s2_half(torch.from_numpy(codes), torch.from_numpy(inv)).numpy()
    assert np.abs(approx - cpu.score_2d(codes, inv)).max() < 5e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rankings_equal_cpu_rankings():
    """The whole query on CUDA (codes kept there, TF32 split products) against the numpy backend."""
    layout = FeatureLayout.from_settings(SketchSettings())
    codes, inv = _random_collection(layout, 3000, seed=12)
    codes, inv = _read_only(codes), _read_only(inv)
    query = encode_query(sketch("triangle"), layout)
    cpu = QueryScorer(query, layout, device="cpu", backend="numpy")
    gpu = QueryScorer(query, layout, device="cuda")
    for opts in ALL_OPTIONS:
        a, b = rank(cpu, codes, inv, opts, top_k=30), rank(gpu, codes, inv, opts, top_k=30)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5, rtol=1e-5)
        gaps = np.diff(a.scores[: a.n_exact])
        clear = np.r_[True, gaps < -1e-4] & np.r_[gaps < -1e-4, True]
        assert np.array_equal(a.rows[: a.n_exact][clear[: a.n_exact]], b.rows[: b.n_exact][clear[: b.n_exact]])
    rows = np.arange(0, 3000, 7)
    np.testing.assert_allclose(search.score_rows(gpu, codes, inv, rows), search.score_rows(cpu, codes, inv, rows),
                               atol=1e-5, rtol=1e-5)


def brute_force_soft_placement(layout, query, codes, inv, softness):
    """Mean (scale, dx, dy) over every placement, weighted exp((cosine - best) / softness), each cosine from the
    re-shifted query descriptor (METHOD.md section 5), for one image."""
    canonical = np.empty(codes.shape, np.float64)
    canonical[:, layout.storage_order] = codes
    cos, where = [], []
    for k, s in enumerate(layout.settings.scales):
        vals = shift_values(layout.settings, s)
        diag = layout.kernel_diag(k)
        for m in range(2):
            q = query.desc[k, m]
            qn = np.sqrt(q @ (diag * q))
            for a in vals:
                for b in vals:
                    cos.append(float(canonical[0] @ (diag * shift_descriptor(q, a, b, layout)) * inv[0, k, 0] / qn))
                    where.append((s, a, b))
    cos = np.array(cos)
    w = np.exp((cos - cos.max()) / softness)
    return (w @ np.array(where)) / w.sum(), cos.max()


@pytest.mark.parametrize("softness", [0.01, 0.03, 0.2])
def test_soft_placement_is_the_score_weighted_mean_of_every_placement(layout, softness):
    photos = random_photos(layout, 3, seed=5)
    codes, inv = store(layout, photos)
    query = encode_query(sketch("triangle"), layout)
    scorer = QueryScorer(query, layout, box_softness=softness)
    for i, al in enumerate(scorer.align(codes, inv)):
        (scale, dx, dy), best = brute_force_soft_placement(layout, query, codes[i:i + 1], inv[i:i + 1], softness)
        assert al.score == pytest.approx(best, abs=2e-5)
        assert (al.scale, al.dx, al.dy) == pytest.approx((scale, dx, dy), abs=2e-3)


def test_soft_placement_tends_to_the_best_placement(layout):
    codes, inv = store(layout, random_photos(layout, 6, seed=8))
    scorer = QueryScorer(encode_query(sketch("ellipse"), layout), layout)
    best = scorer.align(codes, inv, softness=0)
    for a, b in zip(scorer.align(codes, inv, softness=1e-6), best, strict=True):
        assert (a.scale, a.dx, a.dy, a.mirrored, a.score) == pytest.approx((b.scale, b.dx, b.dy, b.mirrored, b.score))


def test_box_softness_must_not_be_negative(layout):
    with pytest.raises(ValueError, match="box_softness"):
        QueryScorer(encode_query(sketch("L"), layout), layout, box_softness=-0.1)
