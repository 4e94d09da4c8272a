"""Compact vectors (engine.compact): int8 codes, PCA bases and the products that score them, checked against
the float definitions on small inputs."""
import numpy as np
import pytest

from engine.compact import AffineCodes, Basis, Dequantised, dequantise, i8_matvec, learn_basis, quantise
from engine.vectors import l2n


def test_quantise_keeps_each_vector_within_half_a_step_and_zero_rows_zero():
    x = np.random.default_rng(0).normal(size=(50, 40)).astype(np.float32) * np.logspace(-3, 3, 50)[:, None]
    x[7] = 0
    codes, scale = quantise(x)
    assert codes.dtype == np.int8 and scale.dtype == np.float32
    assert np.abs(codes).max() == 127
    err = np.abs(dequantise(codes, scale) - x)
    assert np.all(err <= scale[:, None] / 2 + 1e-6 * np.abs(x))
    assert scale[7] == 0 and not codes[7].any()


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_i8_matvec_equals_the_float_product(block):
    rng = np.random.default_rng(1)
    codes = rng.integers(-127, 128, (3001, 33)).astype(np.int8)
    w = rng.normal(size=33).astype(np.float32)
    np.testing.assert_allclose(i8_matvec(codes, w, block=block), codes.astype(np.float64) @ w, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_i8_matvec_on_threads_gives_the_same_floats_as_on_one(threads, monkeypatch):
    import engine.compact as compact

    monkeypatch.setattr(compact, "MIN_ROWS_PER_THREAD", 700)  # small inputs still split (2,000-odd rows)
    rng = np.random.default_rng(3)
    codes = rng.integers(-127, 128, (2 * 1024 + 333, 40)).astype(np.int8)
    w = rng.normal(size=40).astype(np.float32)
    one = i8_matvec(codes, w, block=256)
    many = i8_matvec(codes, w, block=256, threads=threads)
    np.testing.assert_array_equal(many, one)  # the same blocks, each on one BLAS thread
    np.testing.assert_allclose(many, codes.astype(np.float64) @ w, rtol=1e-5, atol=1e-3)
    assert i8_matvec(codes[:0], w, threads=threads).shape == (0,)


def test_a_basis_learned_on_few_vectors_decodes_them_to_int8_precision():
    x = np.random.default_rng(2).normal(size=(30, 200)).astype(np.float32)
    b = learn_basis(x, dim=256)
    assert b.dim == 30 and b.n == 30
    np.testing.assert_allclose(b.components @ b.components.T, np.eye(30), atol=2e-3)  # float16-rounded rows
    back = b.decode(*b.encode(x))
    rel = np.linalg.norm(back - x, axis=1) / np.linalg.norm(x, axis=1)
    assert rel.max() < 0.02


def test_a_basis_keeps_the_strongest_directions():
    rng = np.random.default_rng(3)
    strong = rng.normal(size=(2000, 8)) @ rng.normal(size=(8, 64)) * 5
    x = (strong + rng.normal(size=(2000, 64)) * 0.1 + 3.0).astype(np.float32)
    b = learn_basis(x, dim=8, n=5000)
    assert b.dim == 8 and b.n == 5000
    np.testing.assert_allclose(b.mean, x.mean(axis=0), atol=1e-4)
    resid = (x - b.mean) - ((x - b.mean) @ b.components.T) @ b.components
    assert np.linalg.norm(resid) / np.linalg.norm(x - b.mean) < 0.03
    centred = learn_basis(x, dim=8, center=np.zeros(64, np.float32))
    assert not centred.mean.any()


def test_affine_codes_score_like_the_decoded_vectors():
    rng = np.random.default_rng(4)
    x = l2n(rng.normal(size=(500, 96)).astype(np.float32) + 0.5)
    b = learn_basis(x, dim=48)
    codes, scales = b.encode(x)
    proj = rng.normal(size=(96, 40)).astype(np.float32)  # a whitening-like map into 40-D
    centre = rng.normal(size=96).astype(np.float32) * 0.1
    offset, matrix = (b.mean - centre) @ proj, b.components @ proj
    aff = AffineCodes(codes, scales, AffineCodes.norms_of(codes, scales, offset, matrix, block=64), offset, matrix)
    want = l2n((b.decode(codes, scales) - centre) @ proj)  # the definition: decode, map, L2
    q = l2n(rng.normal(size=(1, 40)).astype(np.float32))[0]
    np.testing.assert_allclose(aff.vectors(np.arange(500)), want, atol=1e-5)
    np.testing.assert_allclose(aff.scores(q), want @ q, atol=1e-5)
    rows = np.array([9, 3, 499, 3, 0])
    np.testing.assert_allclose(aff.scores_of(q, rows), want[rows] @ q, atol=1e-5)
    assert len(aff) == 500


def test_dequantised_view_decodes_the_rows_asked_for():
    x = np.random.default_rng(5).normal(size=(20, 9)).astype(np.float32)
    codes, scale = quantise(x)
    view = Dequantised(codes, scale)
    full = dequantise(codes, scale)
    assert len(view) == 20 and view.shape == (20, 9)
    np.testing.assert_array_equal(view[3], full[3])
    np.testing.assert_array_equal(view[2:5], full[2:5])
    np.testing.assert_array_equal(view[np.array([4, 1])], full[[4, 1]])
    np.testing.assert_array_equal(np.asarray(view), full)
    assert np.asarray(view, np.float64).dtype == np.float64


def test_basis_round_trip_of_a_basis_object():
    b = Basis(np.zeros(4, np.float32), np.eye(4, dtype=np.float32)[:2], 10)
    c, s = b.encode(np.array([[1.0, -2.0, 5.0, 0.0]], np.float32))
    np.testing.assert_allclose(b.decode(c, s), [[1.0, -2.0, 0.0, 0.0]], atol=0.02)
