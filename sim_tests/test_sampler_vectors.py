"""The fixed_pt model's sampler against the worked example and test vectors of docs/fixed_point.md, section 5."""

from __future__ import annotations

import numpy as np

from ipvae.export.quantize import spec_for
from ipvae.export.sampler import build_cdf_table
from ipvae.export.synthetic import SyntheticConfig, random_float_params
from ipvae.export.rng import uniform24
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


def neuron_model(seed: int, n_neurons: int, cdf, spec, n_steps: int = 4, image_offset: int = 0, batch: int = 1):
    params = {
        "shape": (batch, n_neurons),
        "n_steps": n_steps,
        "max_spike_count": spec.max_spike_count,
        "seed": seed,
        "image_offset": image_offset,
        "u_min": spec.u_min_int,
        "u_max": spec.u_max_int,
        "u_frac_bits": spec.u_frac_bits,
        "sampler_frac_bits": spec.sampler_frac_bits,
        "num_message_bits": 4,
        "ff_exponent": 0,
        "stop_window": 0,
        "stop_tolerance": 0,
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
        model = neuron_model(seed, neuron + 1, table, spec)  # one image per window: window n holds image n
        assert int(model.uniforms(image, step)[0, neuron]) == expected


def test_worked_sample_gives_two_spikes():
    spec = default_spec()
    model = neuron_model(0, 1, build_cdf_table(spec), spec)
    draws = model.uniforms(0, 1)  # [1, 1]
    z = model.sample(np.array([[WORKED_U]], dtype=np.int64), draws)
    assert int(z[0, 0]) == WORKED_Z


def test_window_position_maps_timesteps_to_images_and_steps():
    spec = default_spec()
    model = neuron_model(0, 1, build_cdf_table(spec), spec, n_steps=3, image_offset=10)
    positions = []
    for time_step in range(1, 10):
        model.time_step = time_step
        positions.append(model.window_position())
    # windows of T + 1 = 4 timesteps: (step, window)
    assert positions == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1), (0, 2)]


def test_rows_of_a_window_draw_with_their_global_image_index():
    """Window n, row b holds image image_offset + n B + b (docs/lava.md): its uniforms are that image's."""
    spec = default_spec()
    batch, n_neurons, offset = 3, 5, 10
    model = neuron_model(7, n_neurons, build_cdf_table(spec), spec, image_offset=offset, batch=batch)
    for window in (0, 2):
        images = offset + window * batch + np.arange(batch)
        expected = uniform24(7, images[:, None], 3, np.arange(n_neurons)[None, :])  # [B, K]
        assert np.array_equal(model.uniforms(window, 3), expected)
