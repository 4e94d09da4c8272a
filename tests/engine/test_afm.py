"""AFM descriptor: similarity equals the brute-force kernel sum, quantisation and norms are consistent."""
import numpy as np
import pytest

from engine.afm import (
    database_descriptor,
    encode_points,
    encode_query,
    norms,
    quantize,
)
from engine.edges import EdgeMap
from engine.featuremaps import kernel_approx, rbf, von_mises_kappa, von_mises_kernel


@pytest.fixture(scope="module")
def layout(any_layout):
    return any_layout


def random_points(rng, n, extent=140.0):
    return (rng.uniform(-extent, extent, n), rng.uniform(-extent, extent, n), rng.uniform(0, np.pi, n),
            rng.uniform(0.2, 1.0, n))


def pair_kernels(p, q, layout, kernel, *, exact):
    """(Np, Nq) product kernel of every point pair, with the exact or the approximated 1-D kernels."""
    lx = q[0][None, :] - p[0][:, None]
    ly = q[1][None, :] - p[1][:, None]
    lp = 2.0 * (q[2][None, :] - p[2][:, None])
    if exact:
        sigma = layout.settings.sigmas[kernel]
        kappa = von_mises_kappa(layout.settings.sigma_phi)
        return rbf(lx, sigma) * rbf(ly, sigma) * von_mises_kernel(lp, kappa)
    kx = kernel_approx(lx.ravel(), layout.freqs_xy, layout.alphas_xy[kernel]).reshape(lx.shape)
    ky = kernel_approx(ly.ravel(), layout.freqs_xy, layout.alphas_xy[kernel]).reshape(ly.shape)
    kp = kernel_approx(lp.ravel(), layout.freqs_phi, layout.alpha_phi).reshape(lp.shape)
    return kx * ky * kp


def test_dimensions(layout):
    s = layout.settings
    assert s.dim == {5: 243, 6: 605}[s.n_freq_xy]
    assert len(layout.x_index) == len(layout.y_index) == s.dim_xy * s.dim_phi
    assert sorted(layout.storage_order) == list(range(s.dim))


@pytest.mark.parametrize("seed", range(3))
def test_afm_similarity_equals_kernel_sum(layout, seed):
    rng = np.random.default_rng(seed)
    p, q = random_points(rng, 40), random_points(rng, 25)
    vp = encode_points(*p, layout)
    vq = encode_points(q[0], q[1], q[2], np.ones(25), layout)
    for k in range(layout.n_kernels):
        afm = vp @ (layout.kernel_diag(k) * vq)  # asymmetric: weights on the query side only
        pairs = p[3][:, None] * pair_kernels(p, q, layout, k, exact=False)
        assert afm == pytest.approx(pairs.sum(), rel=1e-9, abs=1e-9)
        # against the exact kernels: each pair's error is bounded by the 1-D feature maps' max errors,
        # |abc - a'b'c'| <= ex + (1 + ex) ey + (1 + ex)(1 + ey) ephi
        err = np.abs(pair_kernels(p, q, layout, k, exact=False) - pair_kernels(p, q, layout, k, exact=True))
        lam = np.linspace(0, layout.settings.lam_max, 4001)
        ex = np.abs(kernel_approx(lam, layout.freqs_xy, layout.alphas_xy[k])
                    - rbf(lam, layout.settings.sigmas[k])).max()
        lam_phi = np.linspace(0, np.pi, 721)
        ephi = np.abs(kernel_approx(lam_phi, layout.freqs_phi, layout.alpha_phi)
                      - von_mises_kernel(lam_phi, von_mises_kappa(layout.settings.sigma_phi))).max()
        assert err.max() <= ex + (1 + ex) * ex + (1 + ex) ** 2 * ephi + 1e-9
        exact = (p[3][:, None] * pair_kernels(p, q, layout, k, exact=True)).sum()
        assert abs(afm - exact) <= (p[3][:, None] * err).sum() + 1e-9


def test_norm_is_symmetric_self_similarity(layout):
    rng = np.random.default_rng(5)
    p = random_points(rng, 60)
    v = encode_points(*p, layout)
    n = norms(v, layout)
    for k in range(layout.n_kernels):
        pairs = np.outer(p[3], p[3]) * pair_kernels(p, p, layout, k, exact=False)
        assert n[k, 0] ** 2 == pytest.approx(pairs.sum(), rel=1e-9)


def test_quantised_cosine_and_self_similarity(layout):
    rng = np.random.default_rng(7)
    p = random_points(rng, 300)
    edges = EdgeMap(*(a.astype(np.float32) for a in p), width=300, height=300)
    stored = database_descriptor(edges, layout)
    assert stored.codes.dtype == np.int8 and stored.inv_norms.shape == (layout.n_kernels, 3)
    v = encode_points(*p, layout)
    codes_canonical = np.empty_like(stored.codes)
    codes_canonical[layout.storage_order] = stored.codes
    codes, step = quantize(v)
    assert np.array_equal(codes, codes_canonical)
    for k in range(layout.n_kernels):
        d = layout.kernel_diag(k)
        exact_cos = (v @ (d * v)) / (v @ (d * v))
        stored_cos = (codes.astype(float) @ (d * v)) * stored.inv_norms[k, 0] / np.sqrt(v @ (d * v))
        assert stored_cos == pytest.approx(exact_cos, abs=0.01)
        deq = codes * step
        self_cos = (codes.astype(float) @ (d * deq)) * stored.inv_norms[k, 0] / np.sqrt(deq @ (d * deq))
        assert self_cos == pytest.approx(1.0, abs=1e-5)


def test_empty_edge_map_scores_zero(layout):
    empty = EdgeMap(*(np.zeros(0, np.float32) for _ in range(4)), width=10, height=10)
    stored = database_descriptor(empty, layout)
    assert not stored.codes.any() and not stored.inv_norms.any()


def test_mirrored_query_flips_sine_components(layout):
    rng = np.random.default_rng(3)
    p = random_points(rng, 50)
    edges = EdgeMap(*(a.astype(np.float32) for a in p[:3]), np.ones(50, np.float32), width=300, height=300)
    q = encode_query(edges, layout)
    dx, dy, dp = layout.dims
    sx = np.array([1.0] + [1.0, -1.0] * (layout.settings.n_freq_xy - 1))
    sp = np.array([1.0] + [1.0, -1.0] * (layout.settings.n_freq_phi - 1))
    flip = np.einsum("a,b,c->abc", sx, np.ones(dy), sp).ravel()
    np.testing.assert_allclose(q.desc[0, 1], q.desc[0, 0] * flip, rtol=1e-6, atol=1e-6)
    assert q.desc.shape == (len(layout.settings.scales), 2, layout.settings.dim)


def test_empty_query_is_refused(layout):
    empty = EdgeMap(*(np.zeros(0, np.float32) for _ in range(4)), width=10, height=10)
    with pytest.raises(ValueError, match="empty"):
        encode_query(empty, layout)
