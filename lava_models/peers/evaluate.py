"""One peer configuration on one image set: export, Lava run, reconstruction quality, counts, energy estimate,
NeuroBench metrics, the agreement with slayer's own forward pass, and the network priced conventionally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ipvae.export.fidelity import r2_per_image
from ipvae.lava.accounting.pricing import LOIHI_TABLE, NANOJOULES_PER_PICOJOULE
from ipvae.lava.peers.counting import conventional_autoencoder, neurobench, operation_counts
from ipvae.lava.peers.lava_run import lava_reconstruction, run_on_lava
from ipvae.lava.peers.nets import SIGMA_DELTA, export_hdf5, held, n_weights, reconstruction

FRAMEWORK = "lava-dl"
BACKEND = "lava"


def slayer_reconstruction(model: torch.nn.Module, images: np.ndarray, n_steps: int) -> np.ndarray:
    """slayer's forward pass on the images held for n_steps, read as lava-dl reads it; [N, M]."""
    with torch.no_grad():
        _, _, output = model(held(torch.as_tensor(images, dtype=torch.float32), n_steps))
    return reconstruction(model.config, output).numpy()


def energy_components_nj(counts) -> dict[str, float]:
    """What the estimate pays for, per inference (nJ), priced by the iP-VAE's table (the groups sum to the total)."""
    synop = LOIHI_TABLE.synaptic_op.picojoules * NANOJOULES_PER_PICOJOULE
    update = LOIHI_TABLE.neuron_update.picojoules * NANOJOULES_PER_PICOJOULE
    return {
        "feedforward synops": float(counts.synops_feedforward.sum() * synop),
        "readout synops": float(counts.synops_readout.sum() * synop),
        "neuron updates": float(counts.neuron_updates.sum() * update),
        "spike messages": float((counts.events + counts.input_events).sum() * LOIHI_TABLE.spike_message.picojoules
                                * NANOJOULES_PER_PICOJOULE),
    }


def evaluate_peer(model: torch.nn.Module, images: np.ndarray, n_steps: int, export_path: str | Path,
                  export: bool = True) -> dict:
    """The peer's point on ``images`` [N, M]: held for n_steps Lava timesteps (the window T)."""
    if export:
        export_hdf5(model, export_path)
    run = run_on_lava(export_path, model, images, n_steps)
    recon = lava_reconstruction(model.config.kind, run.output)  # [N, M]
    reference = slayer_reconstruction(model, images, n_steps)  # [N, M]
    counts = operation_counts(model.config.kind, run)
    totals = counts.per_inference()
    totals.pop("binary_synops_per_inference")  # a binary-spike count has no meaning beside graded deltas
    totals.pop("synops_lateral_per_inference")
    return {
        "name": model.config.name,
        "framework": FRAMEWORK,
        "loaded_with": run.loaded_with,
        "backend": BACKEND,
        "kind": model.config.kind,
        "hidden": model.config.hidden,
        "threshold_mantissa": round(model.config.threshold * 64) if model.config.kind == SIGMA_DELTA else None,
        "activity_l1": getattr(model.config, "activity_l1", None),
        "T": int(n_steps),
        "images": int(len(images)),
        "weights": n_weights(model),
        "r2": float(r2_per_image(images, recon).mean()),
        "r2_slayer": float(r2_per_image(images, reference).mean()),
        "lava_vs_slayer_max_abs_diff": float(np.abs(recon - reference).max()),
        "lava_vs_slayer_mean_abs_diff": float(np.abs(recon - reference).mean()),
        **totals,
        "energy_components_nj": energy_components_nj(counts),
        "neurobench": neurobench(model.config.kind, run).as_dict(),
        "conventional": conventional_autoencoder(run.weights),
    }
