"""Shared fixtures of the Lava simulator tests: small synthetic iP-VAE models, images, export files.

The models are random (ipvae.export.synthetic) so the tests never wait for a trained run: a "sparse" one in
the trained model's regime (about 15 % non-zero counts, u rarely at a bound) and a "saturating" one
(counts often at the cap, u often at both saturation bounds) that exercises the edges of the spec.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ipvae.export.hdf5 import ExportMetadata, write_model
from ipvae.export.quantize import LAYOUT_PER_NEURON, quantize, spec_for
from ipvae.export.synthetic import SyntheticConfig, random_float_params, random_images

N_INPUTS = 64  # 8 x 8 images: square, so they can rotate
N_LATENTS = 32
MNIST_PIXELS = 784
INPUT_SCALE = 1.0 / 127  # images in [0, 1], 8-bit payloads

MODEL_CONFIGS = {
    "sparse": SyntheticConfig(n_inputs=N_INPUTS, n_latents=N_LATENTS, phi_std=0.1, sigma=1.0, step_size=0.2, seed=11),
    "saturating": SyntheticConfig(n_inputs=N_INPUTS, n_latents=N_LATENTS, seed=11),
}


def float_params(kind: str, leak: float = 0.0):
    """The float parameters of a model kind; ``leak``: the fraction of u - u_prior removed per step (0: none)."""
    return dataclasses.replace(random_float_params(MODEL_CONFIGS[kind]), leak=leak)


def integer_model(kind: str, *, seed: int, n_steps: int, weight_bits: int = 8, leak: float = 0.0,
                  layout: str = LAYOUT_PER_NEURON):
    params = float_params(kind, leak)
    return quantize(params, spec_for(params, seed=seed, weight_bits=weight_bits), INPUT_SCALE, n_steps, layout=layout)


def images(n_images: int, seed: int, n_inputs: int = N_INPUTS) -> np.ndarray:
    return random_images(n_images, n_inputs, seed=seed).astype(np.float64)  # [N, M] in [0, 1]


def write_export(path, model) -> None:
    metadata = ExportMetadata(
        source="synthetic (sim_tests)",
        source_checkpoint_sha256="0" * 64,
        calibration="fixed --input-max",
        calibration_images=0,
        input_max=1.0,
        float_step_size=0.2,
    )
    write_model(path, model, metadata)


@pytest.fixture(scope="session")
def mnist_sized_export(tmp_path_factory):
    """An export with MNIST's 784 inputs and 48 neurons (fast), written with the export side's writer."""
    params = random_float_params(SyntheticConfig(n_inputs=MNIST_PIXELS, n_latents=48, phi_std=0.05, sigma=1.0, seed=5))
    model = quantize(params, spec_for(params, seed=4), INPUT_SCALE, n_steps=8)
    path = tmp_path_factory.mktemp("export") / "model.h5"
    write_export(path, model)
    return path
