"""Tests of engine.featuremaps: explicit feature maps, joint RBF fits and the von Mises kernel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import iv

from engine import featuremaps as fm

SIGMAS = (28.0, 22.4, 16.8)
LAM_MAX = 400.0
# METHOD.md section 9, |Omega| = 5: the prototype's joint fit and the harmonic baseline.
METHOD_JOINT_5 = np.array([0.070, 0.124, 0.201])
METHOD_HARMONIC_5 = np.array([0.199, 0.256, 0.322])


@pytest.fixture(scope="module", params=[5, 6], ids=lambda n: f"n_freq={n}")
def fits(request):
    n = request.param
    return fm.default_spatial_fit(n, SIGMAS), fm.fit_harmonic_rbf(SIGMAS, n, lam_max=LAM_MAX)


def dense_max_err(fit: fm.JointFit) -> np.ndarray:
    lam = np.linspace(0.0, fit.lam_max, 400_001)
    k = fm.rbf(lam[None, :], fit.sigmas[:, None])
    return np.abs(k - fm.kernel_approx(lam, fit.freqs, fit.alphas)).max(axis=1)


# --------------------------------------------------------------------------- maps


def test_kernel_approx_shapes_and_values():
    freqs, alphas = np.array([0.0, 0.1, 0.3]), np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    lam = np.linspace(-5, 5, 7)
    expected = alphas @ np.cos(np.outer(freqs, lam))
    np.testing.assert_allclose(fm.kernel_approx(lam, freqs, alphas), expected, atol=1e-15)
    assert fm.kernel_approx(lam, freqs, alphas[1]).shape == lam.shape
    np.testing.assert_allclose(fm.kernel_approx(lam, freqs, alphas[1]), expected[1], atol=1e-15)


def test_feature_map_layout():
    freqs, w, p = np.array([0.0, 0.5, 2.0]), np.array([3.0, 5.0, 7.0]), np.array([0.3, -1.2])
    expected = np.column_stack(
        [np.full(2, 3.0), 5 * np.cos(0.5 * p), 5 * np.sin(0.5 * p), 7 * np.cos(2 * p), 7 * np.sin(2 * p)]
    )
    np.testing.assert_array_equal(fm.feature_map(p, freqs, w), expected)
    out = fm.feature_map(p, freqs)
    assert out.shape == (2, 5) and out.dtype == np.float64
    np.testing.assert_array_equal(out[:, 0], 1.0)


def test_feature_map_requires_zero_frequency_first():
    with pytest.raises(ValueError):
        fm.feature_map(np.zeros(3), np.array([0.1, 0.2]))


def test_symmetric_and_asymmetric_inner_products(fits):
    joint, _ = fits
    rng = np.random.default_rng(0)
    p, q = rng.uniform(-200, 200, 50), rng.uniform(-200, 200, 40)
    database = fm.feature_map(p, joint.freqs)
    for alphas in joint.alphas:
        expected = fm.kernel_approx(q[:, None] - p[None, :], joint.freqs, alphas)
        sym = (
            fm.feature_map(q, joint.freqs, np.sqrt(alphas))
            @ fm.feature_map(p, joint.freqs, np.sqrt(alphas)).T
        )
        asym = fm.feature_map(q, joint.freqs, alphas) @ database.T
        np.testing.assert_allclose(sym, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(asym, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- RBF fits


def test_fit_structure(fits):
    for fit in fits:
        n = len(fit.freqs)
        assert fit.freqs[0] == 0.0 and np.all(np.diff(fit.freqs) > 0)
        assert fit.alphas.shape == (3, n) and np.all(fit.alphas >= 0)
        np.testing.assert_array_equal(fit.sigmas, SIGMAS)
        assert fit.lam_max == LAM_MAX and fit.max_err.shape == (3,)
    assert len(fits[0].freqs) == len(fits[1].freqs)


def test_reported_max_err_matches_dense_evaluation(fits):
    for fit in fits:
        np.testing.assert_allclose(fit.max_err, dense_max_err(fit), rtol=0, atol=1e-5)


def test_joint_beats_harmonic(fits):
    joint, harmonic = fits
    assert np.all(joint.max_err < 0.75 * harmonic.max_err)
    assert joint.max_err.sum() < 0.6 * harmonic.max_err.sum()


def test_against_method_reference_numbers():
    joint = fm.default_spatial_fit(5, SIGMAS)
    harmonic = fm.fit_harmonic_rbf(SIGMAS, 5)
    np.testing.assert_allclose(harmonic.max_err, METHOD_HARMONIC_5, atol=2e-3)
    np.testing.assert_array_less(joint.max_err, METHOD_JOINT_5 + 2e-3)
    np.testing.assert_allclose(harmonic.freqs, np.arange(5) * np.pi / LAM_MAX)


def test_approximations_are_even_and_harmonic_is_periodic(fits):
    joint, harmonic = fits
    lam = np.linspace(0.0, 300.0, 301)
    for fit in fits:
        np.testing.assert_allclose(
            fm.kernel_approx(-lam, fit.freqs, fit.alphas),
            fm.kernel_approx(lam, fit.freqs, fit.alphas),
            atol=1e-14,
        )
    period = 2 * LAM_MAX
    np.testing.assert_allclose(
        fm.kernel_approx(lam + period, harmonic.freqs, harmonic.alphas),
        fm.kernel_approx(lam, harmonic.freqs, harmonic.alphas),
        atol=1e-12,
    )


def test_approximation_report():
    report = fm.approximation_report(SIGMAS, 5)
    joint, harmonic = fm.default_spatial_fit(5, SIGMAS), fm.fit_harmonic_rbf(SIGMAS, 5)
    assert [r["sigma"] for r in report] == list(SIGMAS)
    assert all(r["n_freq"] == 5 and r["dim"] == 9 for r in report)
    np.testing.assert_allclose([r["joint_max_err"] for r in report], joint.max_err)
    np.testing.assert_allclose([r["harmonic_max_err"] for r in report], harmonic.max_err)


def test_default_fit_is_shipped_shared_and_read_only():
    fit = fm.default_spatial_fit(5, SIGMAS)
    assert fit is fm.default_spatial_fit(5, [28, 22.4, 16.8])
    assert fit is fm._shipped_fits()[fm._fit_key(5, SIGMAS, LAM_MAX)]
    with pytest.raises(ValueError):
        fit.alphas[0, 0] = 1.0


def test_fit_joint_rbf_small_problem_is_deterministic():
    kwargs = {"lam_max": 200.0, "pool": np.arange(1, 41) * 5e-3, "grid_step": 4.0}
    fit = fm.fit_joint_rbf((12.0, 20.0), 3, **kwargs)
    again = fm.fit_joint_rbf((12.0, 20.0), 3, **kwargs)
    harmonic = fm.fit_harmonic_rbf((12.0, 20.0), 3, lam_max=200.0)
    assert len(fit.freqs) == 3 and fit.freqs[0] == 0.0 and np.all(fit.alphas >= 0)
    assert fit.max_err.sum() < harmonic.max_err.sum()
    np.testing.assert_array_equal(fit.freqs, again.freqs)
    np.testing.assert_array_equal(fit.alphas, again.alphas)


def test_default_fit_fits_unknown_settings_once():
    fit = fm.default_spatial_fit(2, (30.0,), lam_max=150.0)
    assert fit is fm.default_spatial_fit(2, [30], lam_max=150)
    assert len(fit.freqs) == 2 and fit.max_err[0] < fm.fit_harmonic_rbf((30.0,), 2, lam_max=150.0).max_err[0]


@pytest.mark.slow
@pytest.mark.parametrize("n_freq", [5, 6])
def test_shipped_json_equals_fresh_fit(n_freq):
    shipped = fm._shipped_fits()[fm._fit_key(n_freq, SIGMAS, LAM_MAX)]
    fresh = fm.fit_joint_rbf(SIGMAS, n_freq, lam_max=LAM_MAX)
    np.testing.assert_allclose(fresh.freqs, shipped.freqs, rtol=0, atol=1e-7)
    np.testing.assert_allclose(fresh.alphas, shipped.alphas, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fresh.max_err, shipped.max_err, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- von Mises


def test_von_mises_kernel_properties():
    kappa = fm.von_mises_kappa(0.8)
    lam = np.linspace(-np.pi, np.pi, 1001)
    k = fm.von_mises_kernel(lam, kappa)
    assert fm.von_mises_kernel(0.0, kappa) == pytest.approx(1.0)
    assert fm.von_mises_kernel(np.pi, kappa) == pytest.approx(0.0, abs=1e-15)
    assert np.all((k >= 0) & (k <= 1 + 1e-15))
    np.testing.assert_allclose(fm.von_mises_kernel(lam + 2 * np.pi, kappa), k, atol=1e-12)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)


def test_von_mises_coefficients_are_the_bessel_series():
    kappa = fm.von_mises_kappa(0.8)
    gamma = fm.von_mises_coefficients(4)
    n = np.arange(1, 4)
    expected = np.r_[(iv(0, kappa) - np.exp(-kappa)) / (2 * np.sinh(kappa)), iv(n, kappa) / np.sinh(kappa)]
    np.testing.assert_allclose(gamma, expected, rtol=1e-12)
    np.testing.assert_allclose(fm.von_mises_coefficients(2), gamma[:2], rtol=1e-15)
    assert kappa == pytest.approx(1.664, abs=1e-3)
    np.testing.assert_allclose(gamma[:2], [0.3206, 0.4538], atol=1e-4)


def test_von_mises_series_converges():
    kappa = fm.von_mises_kappa(0.8)
    lam = np.linspace(-np.pi, np.pi, 2001)
    exact = fm.von_mises_kernel(lam, kappa)
    errors = [
        np.abs(fm.kernel_approx(lam, np.arange(n), fm.von_mises_coefficients(n)) - exact).max()
        for n in range(1, 16)
    ]
    assert np.all(np.diff(errors) < 0)
    assert errors[-1] < 1e-12
    assert fm.von_mises_coefficients(30).sum() == pytest.approx(1.0, abs=1e-14)


def test_von_mises_kappa_is_the_minimax_match_to_the_gaussian():
    lam = np.linspace(0.0, np.pi, 2001)
    for sigma in (0.5, 0.8, 1.0):
        gauss = fm.rbf(lam, sigma)
        kappa = fm.von_mises_kappa(sigma)

        def err(k, gauss=gauss):
            return np.abs(fm.von_mises_kernel(lam, k) - gauss).max()

        others = np.r_[np.geomspace(0.05, 20, 200), kappa * (1 + np.array([-1e-3, 1e-3]))]
        assert all(err(kappa) <= err(k) + 1e-12 for k in others)


def test_method_numbers_come_from_the_peak_normalised_von_mises():
    """METHOD.md's kappa ~ 1.83, [0.326, 0.435] = same rule, kernel exp(kappa (cos - 1)) (not used)."""
    lam = np.linspace(0.0, np.pi, 2001)
    gauss = fm.rbf(lam, 0.8)
    kappa = minimize_scalar(
        lambda k: np.abs(np.exp(k * (np.cos(lam) - 1)) - gauss).max(), bounds=(0.1, 10), method="bounded"
    ).x
    assert kappa == pytest.approx(1.83, abs=5e-3)
    np.testing.assert_allclose(
        np.exp(-kappa) * np.array([iv(0, kappa), 2 * iv(1, kappa)]), [0.326, 0.435], atol=2e-3
    )


def test_orientation_map_on_doubled_angle():
    gamma = fm.von_mises_coefficients(3)
    freqs = np.arange(3.0)
    rng = np.random.default_rng(1)
    theta, phi = rng.uniform(0, np.pi, 30), rng.uniform(0, np.pi, 20)
    a = fm.feature_map(2 * theta, freqs, np.sqrt(gamma))
    np.testing.assert_allclose(fm.feature_map(2 * (theta + np.pi), freqs, np.sqrt(gamma)), a, atol=1e-12)
    b = fm.feature_map(2 * phi, freqs, np.sqrt(gamma))
    expected = fm.kernel_approx(2 * (theta[:, None] - phi[None, :]), freqs, gamma)
    np.testing.assert_allclose(a @ b.T, expected, rtol=0, atol=1e-12)


def test_shipped_von_mises_coefficients_equal_computed_ones_and_spare_the_rotation_layout_scipy():
    """``data/von_mises.json`` holds what ``compute_von_mises_coefficients`` gives, for the presets and for the
    rotation descriptor's defaults, so building its layout (the detail panel's polar plot) imports no scipy."""
    import subprocess
    import sys

    from engine.featuremaps import compute_von_mises_coefficients, von_mises_coefficients

    for n, s in ((2, 0.8), (3, 0.8), (11, 0.3)):
        assert np.allclose(von_mises_coefficients(n, sigma=s), compute_von_mises_coefficients(n, sigma=s),
                           rtol=1e-9, atol=1e-12)
    code = ("import sys; from engine.rotation import PolarLayout; PolarLayout(); "
            "print(any(m.startswith('scipy') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
