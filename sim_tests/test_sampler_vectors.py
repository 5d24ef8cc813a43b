"""The fixed_pt model's sampler against the worked example and test vectors of docs/fixed_point.md, section 5."""

from __future__ import annotations

import numpy as np

from ipvae.export.quantize import spec_for
from ipvae.export.sampler import build_cdf_table
from ipvae.export.synthetic import SyntheticConfig, random_float_params
from ipvae.lava.proc.poisson.models import PyPoissonNeuronModelFixed

# docs/fixed_point.md section 5.2: (seed, image, step, neuron) -> U
RNG_VECTORS = [
    (0, 0, 0, 0, 2175092),
    (0, 0, 0, 1, 2772753),
    (0, 0, 1, 0, 14282487),
    (0, 1, 0, 0, 13746215),
    (1, 0, 0, 0, 14844309),
    (12345, 678, 9, 511, 9434296),
    (2**64 - 1, 9999, 128, 4095, 10943772),
]
WORKED_U = -1234  # section 5.2's worked sample: idx 246, U = 14282487 -> z = 2
WORKED_Z = 2


def neuron_model(seed: int, n_neurons: int, cdf, spec, n_steps: int = 4, image_offset: int = 0):
    params = {
        "shape": (n_neurons,),
        "n_steps": n_steps,
        "max_spike_count": spec.max_spike_count,
        "seed": seed,
        "image_offset": image_offset,
        "u_min": spec.u_min_int,
        "u_max": spec.u_max_int,
        "u_frac_bits": spec.u_frac_bits,
        "sampler_frac_bits": spec.sampler_frac_bits,
        "num_message_bits": 4,
    }
    model = PyPoissonNeuronModelFixed(params)
    model.cdf = np.asarray(cdf, dtype=np.int64)
    return model


def default_spec():
    params = random_float_params(SyntheticConfig())
    return spec_for(params, u_min=-8.0, u_max=4.0)


def test_uniforms_match_the_spec_vectors():
    spec = default_spec()
    table = build_cdf_table(spec)
    for seed, image, step, neuron, expected in RNG_VECTORS:
        model = neuron_model(seed, neuron + 1, table, spec)
        assert int(model.uniforms(image, step)[neuron]) == expected


def test_worked_sample_gives_two_spikes():
    spec = default_spec()
    model = neuron_model(0, 1, build_cdf_table(spec), spec)
    draws = model.uniforms(0, 1)
    z = model.sample(np.array([WORKED_U], dtype=np.int64), draws)
    assert int(z[0]) == WORKED_Z


def test_window_position_maps_timesteps_to_images_and_steps():
    spec = default_spec()
    model = neuron_model(0, 1, build_cdf_table(spec), spec, n_steps=3, image_offset=10)
    positions = []
    for time_step in range(1, 10):
        model.time_step = time_step
        positions.append(model.window_position())
    # windows of T + 1 = 4 timesteps: (step, image)
    assert positions == [(0, 10), (1, 10), (2, 10), (3, 10), (0, 11), (1, 11), (2, 11), (3, 11), (0, 12)]
