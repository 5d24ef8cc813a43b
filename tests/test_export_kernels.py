"""The compiled kernels of the integer reference (ipvae.export.kernels) against the plain functions they
replace: the Poisson neuron's int_step + int_sample (ipvae.export.neurons.poisson) with the stopped images
frozen, and Lava Dense's lateral product (ipvae.export.reference.dense_apply). Random states, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ipvae.export.kernels import lateral_input
from ipvae.export.neurons.base import IntegerNeuronParams
from ipvae.export.neurons.poisson import POISSON
from ipvae.export.quantize import quantize_matrix
from ipvae.export.reference import dense_apply
from ipvae.export.rng import absorb, key_prefix, uniform24_from_prefix
from ipvae.export.sampler import build_cdf_table
from ipvae.export.spec import MAX_LEAK_SHIFT, FixedPointSpec

SEEDS = range(12)
BATCH, LATENTS = 6, 41


def random_case(seed: int):
    """A spec, neuron parameters and a population state drawn at random (u anywhere in [u_min, u_max])."""
    rng = np.random.default_rng(seed)
    spec = FixedPointSpec.create(u_min=-float(rng.integers(4, 10)), u_max=float(rng.integers(2, 6)),
                                 sampler_frac_bits=int(rng.integers(2, 7)), max_spike_count=int(rng.integers(1, 32)),
                                 seed=int(rng.integers(0, 2**63)))
    params = IntegerNeuronParams(
        bias=rng.integers(-3000, 3000, LATENTS).astype(np.int64),
        u_prior=rng.integers(spec.u_min_int, spec.u_max_int + 1, LATENTS).astype(np.int64),
        u_min=spec.u_min_int,
        u_max=spec.u_max_int,
        leak_shift=int(rng.choice([0, 1, 2, 7, MAX_LEAK_SHIFT])),
        # one exponent for all neurons, or one per neuron (the per-neuron layout), by the seed's parity
        ff_exponent=int(rng.integers(-6, 3)) if seed % 2 else rng.integers(-6, 3, LATENTS).astype(np.int64),
        cdf=build_cdf_table(spec).astype(np.int64),
        sampler_shift=spec.sampler_shift,
    )
    u = rng.integers(spec.u_min_int, spec.u_max_int + 1, (BATCH, LATENTS)).astype(np.int64)  # [B, K]
    drive = rng.integers(-200_000, 200_000, (BATCH, LATENTS)).astype(np.int64)  # [B, K] held row sums
    a_rec = rng.integers(-20_000, 20_000, (BATCH, LATENTS)).astype(np.int64)  # [B, K]
    active = rng.random(BATCH) < 0.7  # [B]
    prefixes = key_prefix(spec.seed, np.arange(BATCH, dtype=np.uint64) + np.uint64(rng.integers(0, 10**6)))[:, None]
    return params, u, drive, a_rec, active, prefixes, int(rng.integers(0, 64))


@pytest.mark.parametrize("integrate", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_the_compiled_neuron_step_equals_the_plain_functions(seed, integrate):
    params, u, drive, a_rec, active, prefixes, step = random_case(seed)
    neurons = np.arange(LATENTS, dtype=np.uint64)[None, :]  # [1, K]
    stepped = POISSON.int_step(u, drive, a_rec, params) if integrate else u  # [B, K]
    counts = POISSON.int_sample(stepped, uniform24_from_prefix(prefixes, step, neurons), params)  # [B, K]
    expected_u = np.where(active[:, None], stepped, u)  # stopped images keep u and send nothing
    expected_z = np.where(active[:, None], counts, 0)

    compiled_u, compiled_z = u.copy(), np.full((BATCH, LATENTS), -1, dtype=np.int16)
    step_states = absorb(prefixes[:, 0], np.uint64(step))  # [B]
    POISSON.fused_int_step(compiled_u, drive, a_rec, params, active, step_states, integrate, compiled_z)
    assert np.array_equal(compiled_u, expected_u)
    assert np.array_equal(compiled_z, expected_z)
    assert expected_z.max() > 0  # the sampler ran on live images, not only zeros


@pytest.mark.parametrize("seed", SEEDS)
def test_the_compiled_lateral_product_equals_lavas_dense(seed):
    rng = np.random.default_rng(100 + seed)
    matrix = quantize_matrix(rng.normal(0.0, 2.0 ** rng.uniform(-4, 8), size=(LATENTS, LATENTS)), int(rng.integers(4, 9)))
    z = rng.integers(0, 32, (BATCH, LATENTS)).astype(np.int16) * (rng.random((BATCH, LATENTS)) < 0.3)  # sparse counts
    out = np.zeros((BATCH, LATENTS), dtype=np.int64)
    lateral_input(z.astype(np.int16), np.ascontiguousarray(matrix.mantissa.T, dtype=np.int32), matrix.exponent, out)
    assert np.array_equal(out, dense_apply(matrix, z))
