"""A second neuron model plugs in by one module (sim_tests/toy_neuron.py: a Bernoulli neuron that resets to
u_prior above u_max) and runs on the export file, the integer and float references and both Lava graphs.

Oracles: a direct step-by-step computation of the toy's dynamics written here (not the toy's functions), and
bit-exact agreement of the Lava graphs with the references (the same comparison as the Poisson parity tests).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ipvae.export.events import EventOptions
from ipvae.export.hdf5 import read_model
from ipvae.export.quantize import quantize, quantize_input, spec_for
from ipvae.export.reference import dense_accumulate, run_float_reference, run_reference
from ipvae.export.rng import uniform24
from sim_tests.conftest import INPUT_SCALE, float_params, images, write_export
from sim_tests.toy_neuron import TOY

U_TOLERANCE = 1e-9  # float64, the Lava float graph sums the same terms in the same order
N_STEPS = 12


def toy_params():
    return dataclasses.replace(float_params("saturating"), max_spike_count=1, neuron=TOY.name)


def toy_model(seed: int = 7):
    params = toy_params()
    return quantize(params, spec_for(params, seed=seed), INPUT_SCALE, N_STEPS)


def direct_toy_dynamics(model, x_int: np.ndarray, n_steps: int):
    """The toy's integer dynamics written out per step: z [T+1, B, K], u [T+1, B, K] (static images, no stopping)."""
    spec = model.spec
    batch, n_latents = x_int.shape[0], model.n_latents
    drive = dense_accumulate(model.ff, x_int)  # [B, K] row sums of the image, sent once at step 0
    exponents = model.ff.row_exponents[None, :]  # [1, K] one exponent per neuron
    feedforward = np.where(exponents >= 0, drive << np.maximum(exponents, 0), drive >> np.maximum(-exponents, 0))
    held = model.self_inhibition  # the lateral diagonal held apart (None: inside rec)
    u = np.tile(model.u_prior.astype(np.int64), (batch, 1))  # [B, K]
    z_steps, u_steps = [], []
    z = np.zeros((batch, n_latents), dtype=np.int64)
    for t in range(n_steps + 1):
        if t > 0:
            lateral = dense_accumulate(model.rec, z)
            lateral = lateral << model.rec.exponent if model.rec.exponent >= 0 else lateral >> -model.rec.exponent
            if held is not None:
                own = z * held.mantissa.astype(np.int64)  # [B, K] the neuron's own last count
                lateral = lateral + (own << held.exponent if held.exponent >= 0 else own >> -held.exponent)
            total = u + feedforward + lateral + model.bias.astype(np.int64)
            u = np.where(total > spec.u_max_int, model.u_prior.astype(np.int64), np.maximum(total, spec.u_min_int))
        rows = np.clip((u - spec.u_min_int) >> spec.sampler_shift, 0, spec.n_sampler_bins - 1)  # [B, K]
        draws = np.stack([uniform24(spec.seed, b, t, np.arange(n_latents, dtype=np.uint64)) for b in range(batch)])
        z = (draws.astype(np.int64) >= model.cdf[rows, 0].astype(np.int64)).astype(np.int64)  # [B, K]
        z_steps.append(z)
        u_steps.append(u)
    return np.stack(z_steps), np.stack(u_steps)


def test_the_toy_neuron_travels_through_the_export_by_name(tmp_path):
    model = toy_model()
    assert model.neuron == TOY.name and model.cdf.shape[1] == 1
    write_export(tmp_path / "toy.h5", model)
    loaded = read_model(tmp_path / "toy.h5").model
    assert loaded.neuron == TOY.name
    assert np.array_equal(loaded.cdf, model.cdf)
    payload = quantize_input(images(4, seed=3), INPUT_SCALE, model.spec.input_bits)
    assert np.array_equal(run_reference(loaded, payload, 6).z, run_reference(model, payload, 6).z)


def test_the_integer_reference_runs_the_toy_dynamics():
    model = toy_model()
    payload = quantize_input(images(6, seed=4), INPUT_SCALE, model.spec.input_bits)  # [B, M]
    result = run_reference(model, payload, N_STEPS)
    z, u = direct_toy_dynamics(model, payload, N_STEPS)
    assert np.array_equal(result.z, z) and np.array_equal(result.u, u)
    assert set(np.unique(result.z)) == {0, 1}
    # the reset fired: some neuron went from above u_prior to exactly u_prior in one step, where Poisson saturates
    jumped = (result.u[1:] == model.u_prior) & (result.u[:-1] > model.u_prior + model.bias.max())
    assert jumped.any()
    poisson = run_reference(dataclasses.replace(model, neuron="POISSON", cdf=model.cdf), payload, N_STEPS)
    assert not np.array_equal(poisson.u, result.u)


@pytest.mark.lava
@pytest.mark.parametrize("options", [EventOptions(), EventOptions(input_threshold=1, stop_window=3, stop_tolerance=64)])
def test_the_fixed_graph_runs_the_toy_neuron_bit_exactly(options):
    from ipvae.lava.network import build_fixed_network
    from ipvae.lava.runner import LavaSimulation

    model = toy_model()
    x = images(6, seed=5)
    with LavaSimulation(build_fixed_network(model, N_STEPS, options=options), progress=False) as simulation:
        trajectory = simulation.run(x)
    payload = quantize_input(x, INPUT_SCALE, model.spec.input_bits)
    reference = run_reference(model, payload, N_STEPS, options=options)
    assert np.array_equal(trajectory.z, reference.z)
    assert np.array_equal(trajectory.u, reference.u)


@pytest.mark.lava
def test_the_float_graph_runs_the_toy_neuron():
    from ipvae.lava.network import build_float_network
    from ipvae.lava.runner import LavaSimulation

    params = toy_params()
    x = images(6, seed=6)
    with LavaSimulation(build_float_network(params, N_STEPS, seed=3), progress=False) as simulation:
        trajectory = simulation.run(x)
    reference = run_float_reference(params, x, N_STEPS, seed=3)
    assert np.array_equal(trajectory.z, reference.z)
    assert np.max(np.abs(trajectory.u - reference.u)) < U_TOLERANCE
    assert set(np.unique(reference.z)) == {0, 1}
