"""Quality-vs-energy points of the spiking deployment and of the float model (benchmarks/pruning.py,
benchmarks/energy.py): one evaluation = R^2 from spikes at t = T, the operation counts and the estimate."""

from __future__ import annotations

import numpy as np

from ipvae.export.fidelity import r2_per_image
from ipvae.lava.pipeline import run_backend, summarize

FLOAT_CHUNK_IMAGES = 250  # the float reference keeps [T+1, B, M] reconstructions: bound B
POINT_KEYS = ("r2", "zeros", "spikes_per_inference", "synops_per_inference", "synops_feedforward_per_inference",
              "synops_lateral_per_inference", "synops_readout_per_inference", "energy_estimate_nj")


def evaluate_integer(model, x: np.ndarray, n_steps: int) -> dict:
    """R^2, synapses and per-inference counts of an integer model (the integer reference, bit-exact to Lava)."""
    run = run_backend(model, x, n_steps, "reference", progress=False, record_u=False)
    table, _ = summarize(model, x, run)
    return {
        **{key: float(table[key]) for key in POINT_KEYS},
        "synapses_feedforward": int(np.count_nonzero(model.ff.mantissa)),
        "synapses_lateral": int(np.count_nonzero(model.lateral_synapses())),  # the self-inhibition included
        "synapses_self_inhibition": int(np.count_nonzero(np.diag(model.lateral_synapses()))),
    }


def float_r2(float_params, x: np.ndarray, n_steps: int, seed: int) -> float:
    """R^2 from spikes at t = T of the float dynamics (float64 weights, what a dense fp32 loop computes)."""
    from ipvae.export.reference import run_float_reference

    scores = []
    for first in range(0, len(x), FLOAT_CHUNK_IMAGES):
        chunk = x[first : first + FLOAT_CHUNK_IMAGES]  # [B, M]
        result = run_float_reference(float_params, chunk, n_steps, seed=seed, image_offset=first)
        scores.append(r2_per_image(chunk, result.recon[-1].astype(np.float64)))  # [B]
    return float(np.concatenate(scores).mean())
