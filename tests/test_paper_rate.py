"""Bits per image (ipvae.paper.rate) against closed forms: uniform units, constant units, independent units,
Bernoulli units (scipy's entropy, within a tolerance derived from the number of images) and the upper bound on
the joint code length."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy

from ipvae.paper.rate import (
    QUANTIZATION_BITS,
    QUANTIZATION_LEVELS,
    bits_per_image,
    quantize_to_grid,
    round_to_grid,
    unit_entropies,
)

EXACT = 1e-9


def uniform_unit(bits: int, repeats: int, rng) -> np.ndarray:
    """Each of 2^bits integer values exactly ``repeats`` times, shuffled: an empirical entropy of exactly ``bits``."""
    return rng.permutation(np.repeat(np.arange(2**bits), repeats)).astype(np.float32)


@pytest.mark.parametrize("bits", [1, 3, 8, 10])
def test_a_count_unit_uniform_over_2_to_the_b_values_has_b_bits(bits):
    counts = uniform_unit(bits, 3, np.random.default_rng(bits))[:, None]  # [N, 1] whole numbers: not quantized
    assert bits_per_image(counts) == pytest.approx(bits, abs=EXACT)


@pytest.mark.parametrize("bits", [1, 4, QUANTIZATION_BITS])
def test_a_real_unit_uniform_over_2_to_the_b_evenly_spaced_values_has_b_bits(bits):
    values = 0.37 + 0.013 * uniform_unit(bits, 2, np.random.default_rng(bits))  # distinct grid points for b <= 8
    assert bits_per_image(values[:, None]) == pytest.approx(bits, abs=EXACT)


def test_a_gaussian_unit_on_the_grid_has_its_differential_entropy_minus_log2_of_the_step():
    n = 20_000
    values = np.random.default_rng(0).normal(size=(n, 1))  # far more distinct values than grid points
    step = float(values.max() - values.min()) / (QUANTIZATION_LEVELS - 1)
    expected = 0.5 * math.log2(2 * math.pi * math.e) - math.log2(step)  # h(N(0, 1)) - log2(step), fine grid
    # Plug-in bias below (m - 1) / (2 n ln 2) for m <= 256 occupied points; sampling std about 1 / sqrt(n) bits.
    tolerance = (QUANTIZATION_LEVELS - 1) / (2 * n * math.log(2)) + 5 / math.sqrt(n)
    bits = bits_per_image(values)
    assert bits == pytest.approx(expected, abs=tolerance)
    assert bits <= QUANTIZATION_BITS + EXACT


def test_constant_units_cost_nothing():
    for value in (0.0, 3.0, -1.25):
        assert bits_per_image(np.full((50, 4), value)) == 0.0


def test_the_rate_does_not_depend_on_a_real_unit_s_offset_or_scale():
    values = np.random.default_rng(1).random((500, 3)) ** 3  # [N, K]
    np.testing.assert_allclose(unit_entropies(values), unit_entropies(5.0 + 0.01 * values * math.pi), atol=EXACT)
    np.testing.assert_array_equal(quantize_to_grid(values).max(axis=0), [QUANTIZATION_LEVELS - 1] * 3)


def test_rounding_moves_a_value_by_at_most_half_a_grid_step_and_keeps_the_symbols():
    values = np.random.default_rng(6).normal(size=(1000, 5)) * np.arange(1, 6)  # [N, K] units of different spread
    rounded = round_to_grid(values)
    half_step = (values.max(axis=0) - values.min(axis=0)) / (2 * (QUANTIZATION_LEVELS - 1))  # [K]
    assert np.all(np.abs(rounded - values) <= half_step * (1 + 1e-9))
    np.testing.assert_array_equal(quantize_to_grid(rounded), quantize_to_grid(values))
    np.testing.assert_allclose(unit_entropies(rounded), unit_entropies(values), atol=EXACT)


def test_independent_units_add_and_equal_the_joint_entropy():
    rng = np.random.default_rng(2)
    a_bits, b_bits = 2, 3
    grid = np.stack(np.meshgrid(np.arange(2**a_bits), np.arange(2**b_bits), indexing="ij"), -1).reshape(-1, 2)
    codes = np.repeat(grid, 5, axis=0)[rng.permutation(len(grid) * 5)]  # every pair equally often: independent
    assert bits_per_image(codes) == pytest.approx(a_bits + b_bits, abs=EXACT)
    _, joint_counts = np.unique(codes, axis=0, return_counts=True)
    assert entropy(joint_counts, base=2) == pytest.approx(a_bits + b_bits, abs=EXACT)


def test_the_sum_over_units_bounds_the_joint_code_length_from_above():
    rng = np.random.default_rng(3)
    unit = rng.integers(0, 6, size=(4000, 1))
    codes = np.concatenate([unit, unit, (unit + rng.integers(0, 2, size=unit.shape)) % 6], axis=1)  # dependent
    _, joint_counts = np.unique(codes, axis=0, return_counts=True)
    joint = entropy(joint_counts, base=2)
    assert bits_per_image(codes) > joint + 2.0  # the copy is counted twice (about log2 6 bits more)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5])
def test_a_bernoulli_unit_has_the_binary_entropy_within_its_sampling_error(p):
    n = 20_000
    draws = (np.random.default_rng(4).random((n, 1)) < p).astype(np.float64)
    expected = entropy([p, 1 - p], base=2)
    # The frequency is p + d with |d| < 5 sqrt(p (1 - p) / n) (five standard deviations). Taylor: H moves by
    # H'(p) d + H''(p) d^2 / 2 at most, H'(p) = log2((1 - p) / p), |H''(p)| = 1 / (p (1 - p) ln 2); the second term
    # (alone at p = 0.5) is below 25 / (2 n ln 2). Plus the plug-in bias, below 1 / (2 n ln 2) for 2 values.
    first_order = 5 * math.sqrt(p * (1 - p) / n) * abs(math.log2((1 - p) / p))
    tolerance = first_order + 25 / (2 * n * math.log(2)) + 1 / (2 * n * math.log(2))
    assert bits_per_image(draws) == pytest.approx(expected, abs=tolerance)


def test_units_are_independent_of_each_other_in_the_sum():
    rng = np.random.default_rng(5)
    counts = rng.poisson(2.0, size=(300, 1)).astype(np.float64)
    reals = rng.normal(size=(300, 1))
    # A code mixing counts and reals is real-valued: both columns are quantized over their own range; the counts
    # span fewer than 256 grid points, so each count still lands on its own point and keeps its entropy.
    mixed = bits_per_image(np.concatenate([counts, reals], axis=1))
    assert mixed == pytest.approx(bits_per_image(counts) + bits_per_image(reals), abs=EXACT)


@pytest.mark.parametrize("codes, message", [
    (np.zeros((0, 3)), "N >= 1"),
    (np.zeros(5), "shape"),
    (np.array([[0.0, np.nan]]), "NaN"),
])
def test_bad_codes_are_refused(codes, message):
    with pytest.raises(ValueError, match=message):
        bits_per_image(codes)
