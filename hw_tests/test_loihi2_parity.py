"""The parity suite on Loihi 2 (Loihi2HwCfg): the same graphs and oracles as sim_tests/test_lava_parity.py."""

from __future__ import annotations

import numpy as np
import pytest

from hw_tests.conftest import UNAVAILABLE
from ipvae.lava.network import build_fixed_network
from ipvae.lava.pipeline import rotating_inputs
from ipvae.lava.runner import LavaSimulation
from sim_tests.conftest import images, integer_model
from sim_tests.test_lava_parity import N_IMAGES, N_STEPS, assert_identical, reference_of

pytestmark = [pytest.mark.loihi, pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")]


@pytest.mark.parametrize("kind, seed", [("sparse", 0), ("sparse", 2**64 - 1), ("saturating", 12345)])
def test_static_images_bit_exact_on_loihi2(kind, seed, loihi2_run_config):
    model = integer_model(kind, seed=seed, n_steps=N_STEPS)
    x = images(N_IMAGES, seed=12)
    with LavaSimulation(build_fixed_network(model), progress=False, run_config=loihi2_run_config) as simulation:
        trajectory = simulation.run(x)
    assert_identical(trajectory, reference_of(model, x, N_STEPS))


def test_rotating_input_bit_exact_on_loihi2(loihi2_run_config):
    model = integer_model("sparse", seed=7, n_steps=16)
    frames = rotating_inputs(images(6, seed=21), 16, 5.0)
    with LavaSimulation(build_fixed_network(model), progress=False, run_config=loihi2_run_config) as simulation:
        trajectory = simulation.run(frames)
    assert_identical(trajectory, reference_of(model, frames, 16))


def test_reset_between_images_on_loihi2(loihi2_run_config):
    model = integer_model("saturating", seed=5, n_steps=12)
    a, b, c = images(3, seed=8)
    with LavaSimulation(build_fixed_network(model), progress=False, run_config=loihi2_run_config) as simulation:
        together = simulation.run(np.stack([a, b, c]))
    assert_identical(together, reference_of(model, np.stack([a, b, c]), 12))
