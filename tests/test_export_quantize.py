"""Quantizer and spec: closed-form properties of the mantissa/exponent choice, input payloads and bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvae.export.quantize import (
    LAYOUT_SHARED,
    LAYOUTS,
    MAX_CLIP_STEPS,
    accumulator_bounds,
    calibrate_input_scale,
    quantize,
    quantize_input,
    quantize_matrix,
    spec_for,
)
from ipvae.export.reference import dense_apply
from ipvae.export.spec import MAX_EXPONENT, FixedPointSpec, SpecError
from ipvae.export.synthetic import SyntheticConfig, random_float_params


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(4, 16), log_scale=st.floats(-20.0, 20.0), seed=st.integers(0, 2**31))
def test_quantize_matrix_uses_the_smallest_fitting_exponent(bits, log_scale, seed):
    target = np.random.default_rng(seed).normal(0.0, 2.0**log_scale, size=(5, 7))
    quantized = quantize_matrix(target, bits)
    limit = 2 ** (bits - 1) - 1
    peak = np.abs(target).max()
    assert np.abs(quantized.mantissa).max() <= limit
    assert peak <= limit * 2.0**quantized.exponent * (1 + 1e-12)  # it fits ...
    if quantized.exponent > -MAX_EXPONENT:  # ... and one exponent less would not (the spec's floor aside)
        assert peak > limit * 2.0 ** (quantized.exponent - 1)
    assert np.max(np.abs(quantized.dequantize() - target)) <= 2.0 ** (quantized.exponent - 1) * (1 + 1e-9)


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_quantize_matrix_clamps_a_tiny_matrix_to_the_spec_exponent_floor(bits):
    """A peak far below 2**-MAX_EXPONENT: the exponent stops at the floor the file format allows, and the
    mantissas still hold the weights to within half a step."""
    target = np.array([[3.0e-15, -1.0e-15], [2.0e-16, 0.0]])
    quantized = quantize_matrix(target, bits)
    assert quantized.exponent == -MAX_EXPONENT
    assert np.max(np.abs(quantized.dequantize() - target)) <= 2.0 ** (-MAX_EXPONENT - 1)


def test_calibrated_exponent_clips_an_outlier_that_the_probes_never_drive():
    """Closed form: column 0 holds one huge weight but every probe has s_0 = 0, so clipping it costs nothing,
    while the max-abs exponent (set by that outlier) rounds all the small weights to zero."""
    rng = np.random.default_rng(0)
    target = rng.uniform(-1.0, 1.0, size=(4, 6))
    target[2, 0] = 1000.0
    probes = rng.uniform(0.0, 1.0, size=(50, 6))
    probes[:, 0] = 0.0
    by_max = quantize_matrix(target, 8)
    calibrated = quantize_matrix(target, 8, probes)
    assert by_max.exponent == math.ceil(math.log2(1000.0 / 127))
    assert calibrated.exponent == by_max.exponent - MAX_CLIP_STEPS  # the finest candidate resolves the rest
    def output_error(q):
        return np.sum((probes @ (q.dequantize() - target).T) ** 2)
    assert output_error(calibrated) < output_error(by_max)
    assert np.max(np.abs(calibrated.dequantize() - target)[:, 1:]) <= 2.0 ** (calibrated.exponent - 1)


def test_calibrated_exponent_keeps_max_abs_when_every_weight_matters():
    """Probes that drive the largest weight hard: clipping it would dominate the error, so e stays e_max."""
    target = np.array([[100.0, 1.0, -1.0], [0.5, -0.25, 2.0]])
    probes = np.array([[10.0, 0.0, 0.0], [5.0, 1.0, 1.0]])
    assert quantize_matrix(target, 8, probes).exponent == quantize_matrix(target, 8).exponent


def test_zero_matrix_and_non_finite_input():
    assert quantize_matrix(np.zeros((2, 3)), 8).mantissa.max() == 0
    with pytest.raises(SpecError):
        quantize_matrix(np.array([[np.nan]]), 8)


def test_input_payloads_closed_form():
    x = np.array([[0.0, 0.5, 1.0, -1.0, 2.0, 0.25 / 127]])
    scale = calibrate_input_scale(np.array([[0.0, 1.0]]), 8)
    assert scale == 1.0 / 127
    # 0.5 * 127 = 63.5 rounds half to even -> 64; 0.25 rounds to 0; 2.0 saturates at 127
    assert quantize_input(x, scale, 8).tolist() == [[0, 64, 127, -127, 127, 0]]
    with pytest.raises(SpecError):
        calibrate_input_scale(np.zeros((2, 2)), 8)


def test_spec_derived_constants():
    spec = FixedPointSpec()
    assert (spec.u_min_int, spec.u_max_int) == (-32768, 16384)
    assert spec.n_sampler_bins == 385 and spec.sampler_shift == 7 and spec.spike_message_bits == 4
    assert spec.input_max == 127 and spec.weight_max == 127 and spec.lava_compatible
    assert FixedPointSpec.create(u_min=-8.0, u_max=4.0) == spec
    assert not FixedPointSpec(weight_bits=12).lava_compatible


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"weight_bits": 3}, "weight_bits"),
        ({"weight_bits": 17}, "weight_bits"),
        ({"sampler_frac_bits": 13}, "sampler_frac_bits"),
        ({"u_min_int": -(2**23) - 1}, "u_min_int"),  # outside the 24-bit state
        ({"u_max_int": -40000}, "u_max_int"),  # not above u_min_int
        ({"seed": -1}, "seed"),
        ({"u_bits": 25}, "u_bits"),
    ],
)
def test_spec_rejects_bad_fields(fields, field):
    with pytest.raises(SpecError) as info:
        FixedPointSpec(**fields)
    assert info.value.field == field


@pytest.mark.parametrize("layout", LAYOUTS)
def test_accumulator_bounds_are_attained_by_extreme_inputs(layout):
    params = random_float_params(SyntheticConfig(seed=2))
    spec = spec_for(params)
    model = quantize(params, spec, 1.0 / 127, n_steps=4, layout=layout)
    bounds = accumulator_bounds(model)
    held = model.self_inhibition
    ff_out = rec_out = 0
    for sign in (1, -1):  # floor makes the negative extreme one LSB larger in magnitude
        worst_input = sign * np.sign(model.ff.mantissa) * spec.input_max  # row i's worst payload, [K, M]
        worst_spikes = sign * np.sign(model.lateral_synapses()) * spec.max_spike_count  # [K, K] (signed: a bound only)
        ff_out = max([ff_out] + [abs(int(dense_apply(model.ff, worst_input)[i, i])) for i in range(model.n_latents)])
        for i in range(model.n_latents):
            lateral = int(dense_apply(model.rec, worst_spikes)[i, i])
            if held is not None:  # the neuron's own count of row i's worst pattern, through the diagonal held apart
                lateral += int(held.term(worst_spikes[i:i + 1])[0, i])
            rec_out = max(rec_out, abs(lateral))
    assert ff_out == bounds["ff_out"] and rec_out == bounds["rec_out"]


def test_quantized_model_targets(tmp_path):
    params = random_float_params(SyntheticConfig(seed=4))
    spec = spec_for(params, weight_bits=8)
    scale = 1.0 / 127
    a_matrix = params.step_size * params.phi.T * params.precision[None, :]  # lr Phi^T D, [K, M]
    l_matrix = a_matrix @ params.phi  # [K, K]
    shared = quantize(params, spec, scale, n_steps=4, layout=LAYOUT_SHARED)
    assert np.allclose(shared.ff.dequantize(), a_matrix * scale * 4096, atol=2.0 ** (shared.ff.exponent - 1))
    assert np.allclose(shared.rec.dequantize(), -l_matrix * 4096, atol=2.0 ** (shared.rec.exponent - 1))
    model = quantize(params, spec, scale, n_steps=4)  # per-neuron: every entry within half of its own LSB
    half_lsb = np.exp2(model.ff.row_exponents - 1.0)[:, None]  # [K, 1]
    assert np.all(np.abs(model.ff.dequantize() - a_matrix * scale * 4096) <= half_lsb * (1 + 1e-12))
    whole_lateral = model.rec.dequantize() + np.diag(model.self_inhibition.dequantize())
    lsb = np.where(np.eye(model.n_latents, dtype=bool), 2.0**model.self_inhibition.exponent, 2.0**model.rec.exponent)
    assert np.all(np.abs(whole_lateral - (-l_matrix * 4096)) <= lsb / 2 * (1 + 1e-12))
    # the max-abs rule: the largest entry of each row / of the diagonal / off the diagonal uses the top mantissas
    limit = 127
    assert np.all(np.abs(model.ff.mantissa).max(axis=1) > limit // 2)
    assert np.abs(model.self_inhibition.mantissa).max() > limit // 2 and np.abs(model.rec.mantissa).max() > limit // 2
    assert not np.any(np.diag(model.rec.mantissa))
    assert np.array_equal(model.u_prior, np.rint(params.u_prior * 4096).astype(np.int32))
    assert math.isclose(model.bias[0], -params.step_size * params.bias[0] * 4096, abs_tol=0.5)


def test_reconstruction_search_keeps_the_pair_with_the_least_calibration_error():
    from ipvae.export.calibration import (
        RECONSTRUCTION_MIN_STEPS,
        RECONSTRUCTION_SEARCH_STEPS,
        choose_exponents_by_reconstruction,
        reconstruction_error,
    )

    params = random_float_params(SyntheticConfig(seed=4))
    images = np.random.default_rng(5).uniform(0.0, 1.0, size=(40, params.n_inputs))
    model = quantize(params, spec_for(params, weight_bits=6), 1.0 / 127, n_steps=4, layout=LAYOUT_SHARED)
    choice = choose_exponents_by_reconstruction(model, params, images, n_steps=4)
    steps = range(RECONSTRUCTION_SEARCH_STEPS + 1)
    assert set(choice.errors) == {(model.ff.exponent - i, model.rec.exponent - j) for i in steps for j in steps}
    best = min(choice.errors, key=choice.errors.get)
    assert (choice.model.ff.exponent, choice.model.rec.exponent) == best
    # the stored error is what the chosen model reconstructs, recomputed independently (same generator key)
    payloads = quantize_input(images, model.input_scale, model.spec.input_bits)
    assert reconstruction_error(choice.model, payloads, images, RECONSTRUCTION_MIN_STEPS) == choice.errors[best]
    # each candidate is the target re-rounded at its exponent, not the old mantissas shifted
    target_ff = params.feedforward() * model.input_scale * float(model.spec.u_scale)
    expected = np.clip(np.rint(target_ff / 2.0 ** choice.model.ff.exponent), -31, 31)
    assert np.array_equal(choice.model.ff.mantissa, expected)


def test_reconstruction_search_keeps_the_coarser_exponent_on_a_tie():
    from ipvae.export.calibration import choose_exponents_by_reconstruction

    params = random_float_params(SyntheticConfig(seed=6))
    images = np.zeros((10, params.n_inputs))  # no input: ff never acts, so every ff exponent ties
    model = quantize(params, spec_for(params), 1.0 / 127, n_steps=4, layout=LAYOUT_SHARED)
    choice = choose_exponents_by_reconstruction(model, params, images, n_steps=4)
    assert choice.model.ff.exponent == model.ff.exponent
