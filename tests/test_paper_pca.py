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
