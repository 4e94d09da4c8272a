"""The small array helpers (engine.vectors): checked against their definitions on small inputs."""
import numpy as np

from engine.vectors import l2n, top_positions


def test_l2n_divides_rows_by_their_norms_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-20, 0.0]])
    assert np.allclose(l2n(x), [[0.6, 0.8], [0, 0], [1e-8, 0]])
    assert l2n(x.astype(np.float32)).dtype == np.float32


def test_top_positions_are_the_stable_sorts():
    rng = np.random.default_rng(1)
    for n, k in [(10, 3), (1000, 20), (1000, 999), (5000, 7), (5, 0)]:
        for scores in (rng.random(n), rng.integers(0, 5, n).astype(float)):  # ties too
            assert top_positions(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()


def test_top_positions_of_large_arrays_through_the_sample_threshold_are_the_stable_sorts():
    """From ``SAMPLED_FROM`` scores on, the best are first narrowed down by a sample's threshold: the same positions
    as a stable full sort, with ties, NaN (worst), infinities, and an array whose sample misleads the threshold
    (then the whole array is partitioned)."""
    from engine import vectors

    rng = np.random.default_rng(2)
    n = vectors.SAMPLED_FROM + 12_345
    cases = {
        "uniform": rng.random(n).astype(np.float32),
        "ties": rng.integers(0, 50, n).astype(np.float64),
        "heavy tail": rng.standard_cauchy(n),
        "nan and inf": np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
        "ascending": np.arange(n, dtype=np.float64),
        "a few very high": np.r_[rng.random(n - 5), [9, 9, 9, 8, 7]],
    }
    cases["nan and inf"][rng.integers(0, n, 50)] = np.inf
    cases["nan and inf"][rng.integers(0, n, 50)] = -np.inf
    for name, scores in cases.items():
        for k in (1, 5, 200, 999, n // 64, n // 16 - 1):
            want = np.argsort(-scores, kind="stable")[:k].tolist()  # NaN last, as -NaN sorts
            assert top_positions(scores, k).tolist() == want, (name, k)
    # the sample's threshold is what is used where it lets enough through
    assert vectors._candidates(cases["uniform"], 200) is not None
    assert len(vectors._candidates(cases["uniform"], 200)) < 2_000
    # a sample that is all higher than the rest: its threshold lets only about 2 k / step + 64 of it through
    k, step = 999, max(1, n // 16_384)
    misleading = rng.random(n) * 0.5
    misleading[::step] = 1.0 + rng.random(len(misleading[::step]))
    assert vectors._candidates(misleading, k) is None
    assert top_positions(misleading, k).tolist() == np.argsort(-misleading, kind="stable")[:k].tolist()
