"""PCA, the dense reference of the rate-distortion figure: exact on planted low-rank data, monotone in k, and
equal to a second computation (scikit-learn's PCA) on random data."""

from __future__ import annotations

import numpy as np
import pytest

from ipvae.paper.pca import pca_curve, principal_axes, projection_r2

RANK = 5


def test_k_at_the_planted_rank_reconstructs_exactly_and_fewer_do_not():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(RANK, 40))  # [RANK, M]
    x = rng.normal(size=(300, RANK)) @ basis + 0.3  # [N, M], rank RANK after centring
    curve = pca_curve(x[:200], x[200:], ks=(1, 2, RANK - 1, RANK, 10))
    r2 = dict(zip(curve["k"], curve["r2"]))
    assert r2[RANK] == pytest.approx(1.0, abs=1e-9) and r2[10] == pytest.approx(1.0, abs=1e-9)
    assert r2[1] < r2[2] < r2[RANK - 1] < 1.0 - 1e-3


def test_projection_matches_scikit_learn():
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(1)
    x_train, x_test = rng.random((120, 30)), rng.random((50, 30))
    mean, axes = principal_axes(x_train)
    reference = decomposition.PCA(n_components=7).fit(x_train)
    recon = reference.inverse_transform(reference.transform(x_test))
    sse = ((x_test - recon) ** 2).sum(axis=1)
    sst = ((x_test - x_test.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    assert projection_r2(mean, axes, x_test, 7) == pytest.approx(float(np.mean(1 - sse / sst)), abs=1e-9)


def test_k_beyond_the_training_set_is_left_out():
    rng = np.random.default_rng(2)
    assert pca_curve(rng.random((10, 30)), rng.random((5, 30)), ks=(4, 10, 20))["k"] == [4, 10]


def test_pca_bits_are_the_rate_of_scikit_learn_s_coordinates():
    decomposition = pytest.importorskip("sklearn.decomposition")
    from ipvae.paper.pca import pca_rates
    from ipvae.paper.rate import QUANTIZATION_BITS, unit_entropies

    rng = np.random.default_rng(3)
    x_train, x_test = rng.random((150, 30)), rng.random((400, 30))
    rates = pca_rates(x_train, x_test, ks=(2, 6))
    for k, bits in zip(rates["k"], rates["bits_per_image"]):
        coordinates = decomposition.PCA(n_components=k).fit(x_train).transform(x_test)  # [N', k], signs may differ
        assert bits == pytest.approx(float(unit_entropies(coordinates).sum()), abs=1e-9)
        assert 0.0 < bits <= QUANTIZATION_BITS * k


def test_rounding_pca_s_coordinates_costs_exactly_their_squared_rounding_error():
    # The rebuilt image stays in the k-dimensional subspace and the exact projection's residual is orthogonal to
    # it (Pythagoras): SSE(rounded) = SSE(exact) + |rounding error of the coordinates|^2, image by image.
    from ipvae.paper.pca import pca_rates, principal_coordinates
    from ipvae.paper.rate import round_to_grid

    rng = np.random.default_rng(4)
    x_train, x_test = rng.random((120, 20)), rng.random((60, 20))
    k = 5
    mean, axes = principal_axes(x_train)
    coordinates = principal_coordinates(mean, axes, x_test, k)  # [N', k]
    extra_sse = ((round_to_grid(coordinates) - coordinates) ** 2).sum(axis=1)  # [N']
    sst = ((x_test - x_test.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)  # [N']
    exact = projection_r2(mean, axes, x_test, k)
    rounded = pca_rates(x_train, x_test, ks=(k,))["r2_quantized"][0]
    assert rounded == pytest.approx(exact - float(np.mean(extra_sse / sst)), abs=1e-9)
    assert 0.0 < exact - rounded < 1e-3  # 2^8 levels: a small loss, never a gain
