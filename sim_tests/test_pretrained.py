"""The shipped pretrained model (pretrained/mnist_k512, K = 512) on Lava: parity on MNIST, float vs PyTorch.

Skipped, with the reason, while the pretrained checkpoint is not in the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ipvae.lava.network import build_fixed_network, build_float_network
from ipvae.lava.pipeline import load_inputs, models_from_run, rotating_inputs
from ipvae.lava.runner import LavaSimulation
from sim_tests.test_lava_float import STAT_STEPS, assert_same_mean, per_image_statistics
from sim_tests.test_lava_parity import assert_identical, reference_of

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "mnist_k512"
pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(not (PRETRAINED / "model.safetensors").is_file(), reason=f"no pretrained checkpoint in {PRETRAINED}"),
]
N_IMAGES = 20
N_STEPS = 64


@pytest.fixture(scope="module")
def pretrained():
    return models_from_run(PRETRAINED, seed=0)


def test_pretrained_parity_on_mnist(pretrained):
    model = pretrained.integer
    x = load_inputs("mnist", N_IMAGES, model.n_inputs, n_steps=N_STEPS)
    with LavaSimulation(build_fixed_network(model, N_STEPS), progress=False) as simulation:
        trajectory = simulation.run(x)
    assert_identical(trajectory, reference_of(model, x, N_STEPS))
    assert trajectory.z.sum() > 0


def test_pretrained_parity_on_rotating_digits(pretrained):
    model = pretrained.integer
    frames = rotating_inputs(load_inputs("mnist", 5, model.n_inputs, start=100, n_steps=32), 32, 4.0)
    with LavaSimulation(build_fixed_network(model, 32, image_offset=100), progress=False) as simulation:
        trajectory = simulation.run(frames)
    assert_identical(trajectory, reference_of(model, frames, 32, image_offset=100), image_offset=100)


def test_pretrained_float_graph_matches_pytorch(pretrained):
    n_images = 100
    x = load_inputs("mnist", n_images, pretrained.integer.n_inputs, n_steps=STAT_STEPS)
    with LavaSimulation(build_float_network(pretrained.float_params, STAT_STEPS, seed=3), progress=False) as simulation:
        lava = simulation.run(x, record_u=False).z[1:]
    from ipvae.train.checkpoint import load_run

    model = load_run(PRETRAINED).model
    with torch.no_grad():
        steps = list(model.iterate(torch.from_numpy(x).float(), STAT_STEPS, generator=torch.Generator().manual_seed(3)))
    reference = torch.stack([step.z for step in steps]).numpy().astype(np.int64)
    phi = pretrained.float_params.phi
    lava_spikes, lava_mse = per_image_statistics(lava, x, phi)
    torch_spikes, torch_mse = per_image_statistics(reference, x, phi)
    assert_same_mean(lava_spikes, torch_spikes, "spikes per inference")
    assert_same_mean(lava_mse, torch_mse, "MSE per pixel at T")
