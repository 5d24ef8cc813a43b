"""An imported model as a run directory, and the deployable settings chosen from its own dynamics.

The run's config selects the authors' dynamics for float inference (``ModelConfig.dynamics = "authors"``:
their clamps, no count cap), so ``ipvae eval`` reproduces their inference. The integer spec cannot express
two things of it, and the import chooses the nearest deployable setting from data, recorded in the config
(what ``ipvae export`` reads) and explained in ``import.json``:

- no count cap: the spec sends graded spikes of 1..8 bits, a cap c = 2**b - 1. The import runs their dynamics
  on ``calibration_images`` training images for ``calibration_steps`` steps and takes the smallest such c
  whose capped counts lose at most ``SPIKE_LOSS_TOLERANCE`` of the spikes, sum(max(z - c, 0)) / sum(z);
  it records that loss and the fraction of counts above c.
- the soft ceiling: the spec saturates u at u_max. u_max stays their ceiling c_u, so the deployed clamp is
  min(y, c_u) where theirs is c_u - softplus(c_u - y); the two differ by more than 0.01 only within
  ``SOFT_CLAMP_BAND`` = log(100) below c_u, and the import records the fraction of their potentials there.
  Their clamp on du has no counterpart either: the fraction of raw steps it changes by more than 0.01 is
  recorded too (below the floor, or within the band of the ceiling).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ipvae.errors import CheckpointError, OutputPathError, shown
from ipvae.fileio import prepare_output_dir, write_json
from ipvae.train.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_run
from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
from ipvae.train.importers.authors import THEIR_LOG_SIGMA_BOUND, AuthorsModel, read_authors_checkpoint
from ipvae.train.inference import authors_poisson, reconstruction_drive
from ipvae.train.registry import build_model

IMPORT_FILE = "import.json"
CAP_CHOICES = tuple(2**bits - 1 for bits in range(1, 9))  # graded-spike payloads of 1..8 bits
SPIKE_LOSS_TOLERANCE = 1e-3  # the cap may drop at most this fraction of their spikes
SOFT_CLAMP_BAND = math.log(100.0)  # softplus(d) > 0.01 for d < log(100): where soft and hard ceilings differ
DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_CALIBRATION_STEPS = 64


@dataclass(frozen=True)
class Activity:
    """Their dynamics on calibration images: counts [T, N, K], potentials [T, N, K], raw du [T, N, K]."""

    counts: np.ndarray
    potentials: np.ndarray
    raw_du: np.ndarray


def run_config(model: AuthorsModel, max_spike_count: int) -> RunConfig:
    """The toolkit config of an imported model: their dynamics in float, the deployable clamp and cap."""
    return RunConfig(
        model=ModelConfig(kind="iterative", family="poisson", n_inputs=model.n_inputs, n_latents=model.n_latents,
                          max_spike_count=max_spike_count, u_min=model.floor, u_max=model.ceiling,
                          hard_upper_clamp=True, dynamics="authors", log_sigma_bound=THEIR_LOG_SIGMA_BOUND),
        train=TrainConfig(data=model.data, t_train=model.t_train, seed=model.seed),
    )


def toolkit_model(model: AuthorsModel, config: RunConfig):
    """The IterativeVAE holding their weights (eval mode)."""
    network = build_model(config.model)
    tensors = {"phi": model.phi, "log_sigma": model.log_sigma, "log_lr": model.log_lr, "u_prior": model.u_prior,
               "log_b": model.log_b}
    network.load_state_dict({name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in tensors.items()})
    return network.eval()


@torch.no_grad()
def their_activity(network, images: np.ndarray, n_steps: int, seed: int) -> Activity:
    """Their dynamics (authors_poisson) on images [N, M] for n_steps, recording what the choices need."""
    params = network.inference_params()
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))  # [N, M]
    generator = torch.Generator().manual_seed(seed)
    state = authors_poisson.initial_state(params, x.shape[0])
    counts, potentials, raw = [], [], []
    for _ in range(n_steps):
        latent = authors_poisson.sample(state, params, 0.0, generator)
        drive = reconstruction_drive(x, latent.recon, params)  # [N, K]
        raw.append((params.step_size * (drive - params.bias)).numpy())
        counts.append(latent.z.numpy())
        state = authors_poisson.update(state, latent, drive, params)
        potentials.append(state.u.numpy())
    return Activity(counts=np.stack(counts), potentials=np.stack(potentials), raw_du=np.stack(raw))


def choose_cap(counts: np.ndarray) -> dict:
    """The smallest payload cap losing at most SPIKE_LOSS_TOLERANCE of the spikes (see the module doc)."""
    total = float(counts.sum())
    table = []
    for cap in CAP_CHOICES:
        lost = float(np.maximum(counts - cap, 0).sum()) / total if total else 0.0
        table.append({"cap": cap, "spikes_lost": lost, "counts_above": float(np.mean(counts > cap))})
    chosen = next((row for row in table if row["spikes_lost"] <= SPIKE_LOSS_TOLERANCE), table[-1])
    return {"rule": f"smallest 2**b - 1 losing at most {SPIKE_LOSS_TOLERANCE} of the spikes",
            "max_spike_count": chosen["cap"], "spikes_lost": chosen["spikes_lost"],
            "counts_above": chosen["counts_above"], "largest_count": int(counts.max()), "candidates": table}


def clamp_report(activity: Activity, ceiling: float, floor: float) -> dict:
    """How often their clamps act where the deployed ones differ from them by more than 0.01."""
    potentials, raw = activity.potentials, activity.raw_du
    return {
        "u_max": ceiling,
        "u_min": floor,
        "rule": "u_max = their ceiling; the spec saturates (min(y, u_max)) where theirs is soft",
        "potentials_in_soft_band": float(np.mean(potentials > ceiling - SOFT_CLAMP_BAND)),
        "potential_quantiles": {str(q): float(np.quantile(potentials, q)) for q in (0.5, 0.99, 0.999)},
        "du_steps_clamped": float(np.mean((raw < floor) | (raw > ceiling - SOFT_CLAMP_BAND))),
    }


def deployment_choices(network, model: AuthorsModel, images: np.ndarray, n_steps: int, seed: int) -> dict:
    activity = their_activity(network, images, n_steps, seed)
    return {"calibration": {"images": int(len(images)), "steps": int(n_steps), "seed": int(seed)},
            "cap": choose_cap(activity.counts), "clamp": clamp_report(activity, model.ceiling, model.floor)}


def training_images(data: str, count: int, *, data_dir: str | None, seed: int) -> np.ndarray:
    """The first ``count`` training images [N, M] of a data set (fewer if the split is smaller)."""
    from ipvae.data import get_dataset

    images, _labels = get_dataset(data, "train", data_dir=data_dir, seed=seed, limit=count)
    return np.asarray(images[:count], dtype=np.float32)


def check_run_dir(out: Path, force: bool) -> None:
    prepare_output_dir(out)
    existing = [name for name in (CONFIG_FILE, WEIGHTS_FILE, IMPORT_FILE) if (out / name).exists()]
    if existing and not force:
        raise OutputPathError(f"{shown(out)} already holds a run ({existing[0]}); give another --out, or --force")


def import_checkpoint(checkpoint: str | Path, out: str | Path, *, use_ema: bool = False, force: bool = False,
                      max_spike_count: int | None = None, calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
                      calibration_steps: int = DEFAULT_CALIBRATION_STEPS, data_dir: str | None = None,
                      images: np.ndarray | None = None) -> dict:
    """Read their checkpoint, choose the deployable settings, write the run directory; returns import.json.

    images: calibration images [N, M] to use instead of the first ``calibration_images`` training images.
    """
    out = Path(out)
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint {shown(checkpoint)} does not exist")
    check_run_dir(out, force)
    if max_spike_count is not None and max_spike_count not in CAP_CHOICES:
        raise CheckpointError(f"--max-spike-count must be one of {CAP_CHOICES} (a graded-spike payload), got {max_spike_count}")
    if calibration_images < 1 or calibration_steps < 1:
        raise CheckpointError("--calibration and --calibration-steps must be positive")
    model = read_authors_checkpoint(checkpoint, use_ema=use_ema)
    provisional = run_config(model, CAP_CHOICES[-1])
    network = toolkit_model(model, provisional)
    if images is None:
        images = training_images(model.data, calibration_images, data_dir=data_dir, seed=model.seed)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 2 or images.shape[1] != model.n_inputs or not np.all(np.isfinite(images)):
        raise CheckpointError(f"calibration images must be finite [N, {model.n_inputs}], got shape {images.shape}")
    choices = deployment_choices(network, model, images, calibration_steps, model.seed)
    if max_spike_count is not None:
        choices["cap"].update(max_spike_count=max_spike_count, rule="given by --max-spike-count")
    config = dataclasses.replace(provisional, model=dataclasses.replace(
        provisional.model, max_spike_count=choices["cap"]["max_spike_count"]))
    record = {"source": "hadivafaii/IterativeVAE", **model.provenance, "deployment": choices}
    save_run(out, config, toolkit_model(model, config))
    write_json(out / IMPORT_FILE, record)
    return record


def deployed_config(config: RunConfig) -> RunConfig:
    """The same model under the toolkit's dynamics with the chosen hard clamp and cap (what the export runs)."""
    return dataclasses.replace(config, model=dataclasses.replace(config.model, dynamics="toolkit"))
