"""The authors' iP-VAE checkpoints (hadivafaii/IterativeVAE) as a run directory of this toolkit.

Their trainer (``base/train_base.py``, ``BaseTrainer.save``) writes ``torch.save`` of
``{metadata, model, model_ema, optim, scheduler}`` as ``IPVAE+Trainer-XXXX_(date).pt``; their model config
``ConfigPoisVAE.json`` lies beside it (the released checkpoints) or one folder up (their training layout),
``ConfigTrain.json`` beside it. ``model`` is the state dict of their ``IPVAE``:

    layer.phi.weight [M, K]     Phi                      -> phi
    layer.dec_log_sigma [1, M]  log sigma (soft-clamped at +-3.45 by tanh, as ours)  -> log_sigma
    layer.log_lr.0 [1]          log step size            -> log_lr
    layer.log_bias [1, K]       log b                    -> log_b
    layer.u_init.0 [1, K]       initial potential u_0    -> u_prior
    layer.eps []                clamp schedule: ceiling c = 2 + eps (clamp_u - 2)  -> ModelConfig.u_max
    layer.temp, layer.beta_inner, layer.n_exp            training-time values, unused by their inference

The checkpoint is read by ``safe_torch_zip`` (nothing in it is executed); the JSON configs with the
toolkit's bounded JSON reader. Iterative Gaussian checkpoints (``ConfigGausVAE.json``: iG-VAE, iG_relu) are
refused: their update carries a second state (log sigma of the posterior) and their latents are not spikes,
so nothing of them could be exported or run on Lava.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ipvae.errors import CheckpointError, shown
from ipvae.limits import read_json_file
from ipvae.train.importers.safe_torch_zip import load_torch_zip

POISSON_CONFIG = "ConfigPoisVAE.json"
GAUSSIAN_CONFIGS = ("ConfigGausVAE.json", "ConfigLapVAE.json")
TRAIN_CONFIG = "ConfigTrain.json"
THEIR_FLOOR = -8.0  # main/layers.py PoissonLayer.softclamp: x.clamp_(min=-8.0)
THEIR_INITIAL_CEILING = 2.0  # _StochasticLayer.get_c: c_init = 2.0 for 'poisson'
THEIR_LOG_SIGMA_BOUND = 3.45  # _StochasticLayer.get_dec_log_sigma(c=3.45)
# their data set name -> the toolkit's data set of the same images and size (calibration, eval)
DATASETS = {"MNIST": "mnist", "FashionMNIST": "fashion_mnist", "vH16-wht": "natural_patches",
            "Kyoto16-wht": "natural_patches"}
UNUSED_BUFFERS = ("layer.temp", "layer.beta_inner", "layer.n_exp")


@dataclass(frozen=True, eq=False)
class AuthorsModel:
    """What their checkpoint and config say, in the toolkit's terms (float32 numpy arrays)."""

    phi: np.ndarray  # [M, K]
    log_sigma: np.ndarray  # [M]
    log_lr: np.ndarray  # []
    log_b: np.ndarray  # [K]
    u_prior: np.ndarray  # [K]
    ceiling: float  # c = 2 + eps (clamp_u - 2), their soft ceiling on u and du
    floor: float
    data: str  # the toolkit's data set of their images
    t_train: int
    seed: int
    provenance: dict[str, Any]  # their configs and checkpoint metadata (JSON values), for import.json

    @property
    def n_inputs(self) -> int:
        return self.phi.shape[0]

    @property
    def n_latents(self) -> int:
        return self.phi.shape[1]


def find_config(checkpoint: Path, name: str) -> Path | None:
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def _number(config: dict, key: str, path: Path) -> float:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointError(f"{shown(path)}: {key} must be a number, got {shown(value, 40)}")
    return float(value)


def read_model_config(checkpoint: Path) -> tuple[dict, Path]:
    """Their ConfigPoisVAE.json, checked for what the import supports; one line otherwise."""
    path = find_config(checkpoint, POISSON_CONFIG)
    if path is None:
        gaussian = next((find_config(checkpoint, name) for name in GAUSSIAN_CONFIGS if find_config(checkpoint, name)), None)
        if gaussian is not None:
            raise CheckpointError(f"{shown(gaussian)}: iterative Gaussian checkpoints (iG-VAE, iG_relu) are not imported: "
                                  "their latents are not spike counts, so they cannot be exported or run on Lava")
        raise CheckpointError(f"no {POISSON_CONFIG} beside {shown(checkpoint)} or one folder up (their trainer writes it)")
    try:
        config = read_json_file(path)
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{shown(path)} is not valid JSON ({type(error).__name__})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{shown(path)} is not a JSON object")
    expected = {"inf_type": "grad", "dec_type": "lin", "n_iters_inner": 1, "n_iters_outer": 1}
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise CheckpointError(f"{shown(path)}: {key} = {shown(config.get(key), 30)} is not supported "
                                  f"(only their {key} = {value!r}, the iP-VAE of the paper)")
    if config.get("latent_act") is not None:
        raise CheckpointError(f"{shown(path)}: latent_act {shown(config['latent_act'], 30)} is not supported")
    clamp_u, clamp_du = _number(config, "clamp_u", path), _number(config, "clamp_du", path)
    if clamp_u != clamp_du:
        raise CheckpointError(f"{shown(path)}: clamp_u {clamp_u} != clamp_du {clamp_du} is not supported "
                              "(every released and default linear-decoder config has them equal)")
    if config.get("dataset") not in DATASETS:
        raise CheckpointError(f"{shown(path)}: their data set {shown(config.get('dataset'), 30)} has no counterpart "
                              f"here (known: {', '.join(DATASETS)})")
    return config, path


def _tensor(state: dict, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    value = state.get(key)
    if not isinstance(value, np.ndarray):
        raise CheckpointError(f"{shown(path)}: the state dict has no tensor {shown(key)} (is it an iP-VAE of their code?)")
    if value.shape != shape:
        raise CheckpointError(f"{shown(path)}: tensor {shown(key)} has shape {value.shape}, expected {shape}")
    if value.dtype.kind != "f" or not np.all(np.isfinite(value)):
        raise CheckpointError(f"{shown(path)}: tensor {shown(key)} must hold finite floats")
    return value.astype(np.float32)


def read_authors_checkpoint(path: str | Path, *, use_ema: bool = False) -> AuthorsModel:
    """Their checkpoint and configs as an AuthorsModel; CheckpointError (one line) for anything unsupported."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {shown(path)} does not exist")
    config, config_path = read_model_config(path)
    saved = load_torch_zip(path)
    if not isinstance(saved, dict) or "model" not in saved:
        raise CheckpointError(f"{shown(path)} is not a checkpoint of their trainer (no 'model' entry)")
    which = "model_ema" if use_ema else "model"
    state = saved.get(which)
    if not isinstance(state, dict):
        raise CheckpointError(f"{shown(path)} holds no averaged weights (model_ema is empty); import without --ema"
                              if use_ema else f"{shown(path)}: 'model' is not a state dict")
    phi = state.get("layer.phi.weight")
    if not isinstance(phi, np.ndarray) or phi.ndim != 2:
        raise CheckpointError(f"{shown(path)}: the state dict has no 2-d tensor 'layer.phi.weight'")
    n_inputs, n_latents = phi.shape
    expected = {"layer.phi.weight", "layer.dec_log_sigma", "layer.log_lr.0", "layer.log_bias", "layer.u_init.0",
                "layer.eps", *UNUSED_BUFFERS}
    unexpected = sorted(set(state) - expected)
    if unexpected:
        raise CheckpointError(f"{shown(path)}: unexpected tensors {shown(unexpected[:3], 80)} (not their iP-VAE)")
    eps = float(_tensor(state, "layer.eps", (), path))
    ceiling = THEIR_INITIAL_CEILING + eps * (_number(config, "clamp_u", config_path) - THEIR_INITIAL_CEILING)
    if not ceiling > THEIR_FLOOR:
        raise CheckpointError(f"{shown(path)}: their ceiling {ceiling} is not above their floor {THEIR_FLOOR}")
    train_config_path = find_config(path, TRAIN_CONFIG)
    train_config = read_json_file(train_config_path) if train_config_path is not None else None
    metadata = saved.get("metadata") if isinstance(saved.get("metadata"), dict) else {}
    return AuthorsModel(
        phi=_tensor(state, "layer.phi.weight", (n_inputs, n_latents), path),
        log_sigma=_tensor(state, "layer.dec_log_sigma", (1, n_inputs), path)[0],
        log_lr=_tensor(state, "layer.log_lr.0", (1,), path)[0],
        log_b=_tensor(state, "layer.log_bias", (1, n_latents), path)[0],
        u_prior=_tensor(state, "layer.u_init.0", (1, n_latents), path)[0],
        ceiling=ceiling,
        floor=THEIR_FLOOR,
        data=DATASETS[config["dataset"]],
        t_train=int(_number(config, "t_train", config_path)),
        seed=int(_number(config, "seed", config_path)) if "seed" in config else 0,
        provenance={
            "checkpoint": path.name,
            "weights": which,
            "their_model_config": config,
            "their_train_config": train_config,
            "their_checkpoint": {key: _json_value(metadata.get(key)) for key in ("timestamp", "checkpoint", "global_step")},
            "eps": eps,
        },
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, (str, int, float, type(None))) else str(value)[:80]
