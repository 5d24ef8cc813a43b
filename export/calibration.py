"""Calibration probes for the quantizer: input payloads and the float model's own spike counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.export.integer_model import FloatParams
from ipvae.export.quantize import quantize_input
from ipvae.export.reference import run_float_reference

DEFAULT_SPIKE_IMAGES = 200  # images whose float trajectories supply the lateral probes


@dataclass(frozen=True, eq=False)
class CalibrationProbes:
    """ff [N, M]: input payloads x_int (float64); rec [N * (T+1), K]: spike counts z_t, t = 0..T."""

    ff: np.ndarray
    rec: np.ndarray


def calibration_probes(
    params: FloatParams,
    images: np.ndarray,
    input_scale: float,
    input_bits: int,
    n_steps: int,
    *,
    seed: int,
    spike_images: int = DEFAULT_SPIKE_IMAGES,
) -> CalibrationProbes:
    """Probes from calibration images [N, M]: their payloads, and z of the float-u reference on the first few."""
    payloads = quantize_input(images, input_scale, input_bits).astype(np.float64)  # [N, M]
    trajectory = run_float_reference(params, images[:spike_images], n_steps, seed=seed, clamp=params.float_clamp)
    spikes = trajectory.z.reshape(-1, params.n_latents).astype(np.float64)  # [n (T+1), K]
    return CalibrationProbes(ff=payloads, rec=spikes)
