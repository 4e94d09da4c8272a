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
