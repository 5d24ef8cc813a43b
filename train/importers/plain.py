"""An iP-VAE defined in a user's own PyTorch code as a run directory (what ``ipvae.export_model`` takes).

The contract, a mapping of names to tensors (or numbers) or an ``nn.Module`` that holds them as attributes
(parameters, buffers or plain tensors) or returns them from an ``ipvae_parameters()`` method:

    phi           [M, K]  the dictionary (decoder weights): x ~ Phi z
    u_prior       [K]     the initial potential u_0 = log prior rate (or ``log_rate_prior``)
    bias          [K]     b > 0, the drive's constant term (or ``log_bias``: log b)
    step_size     []      lr > 0 (or ``log_step_size``)
    sigma         [M] or []  the decoder's noise scale, D = 1 / sigma^2 (or ``log_sigma``)
    optional: u_min (-8), u_max (10), max_spike_count (15), leak (0), hard_upper_clamp (True: the integer
    spec saturates u at u_max, so the float model matches the export)

and the dynamics they define, the toolkit's (ipvae.train.inference.poisson):

    z_t ~ min(Poisson(exp(u_t)), max_spike_count)
    u_{t+1} = clamp(u_t + lr (Phi^T D (x - Phi z_t) - b) - leak (u_t - u_prior), u_min, u_max)

An ``IterativeVAE`` of this toolkit is taken as it is. Everything is checked (names, shapes, finite values,
positive b, lr and sigma) and refused in one line (CheckpointError) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ipvae.errors import CheckpointError, shown
from ipvae.train.checkpoint import save_run
from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
from ipvae.train.registry import build_model

LOG_FORMS = {"bias": "log_bias", "step_size": "log_step_size", "sigma": "log_sigma"}
PRIOR_NAMES = ("u_prior", "log_rate_prior")
OPTIONAL = {"u_min": -8.0, "u_max": 10.0, "max_spike_count": 15, "leak": 0.0, "hard_upper_clamp": True}
DEFAULT_LOG_SIGMA_BOUND = 3.45
BOUND_HEADROOM = 2.0  # log_sigma_bound = max(default, headroom * max |log sigma|): atanh stays well inside (-1, 1)


def _array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckpointError(f"model parameter {shown(name)} is not a tensor or a number") from None
    if not np.all(np.isfinite(array)):
        raise CheckpointError(f"model parameter {shown(name)} has NaN or Inf values")
    return array


def parameters_of(source: Any) -> dict[str, Any]:
    """The contract's names from a mapping, or from an nn.Module's ipvae_parameters() / attributes."""
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, torch.nn.Module):
        if callable(getattr(source, "ipvae_parameters", None)):
            return dict(source.ipvae_parameters())
        names = ["phi", *PRIOR_NAMES, *OPTIONAL, *[name for pair in LOG_FORMS.items() for name in pair]]
        return {name: getattr(source, name) for name in names if getattr(source, name, None) is not None}
    raise CheckpointError(f"cannot export a {type(source).__name__}: give a run directory, an nn.Module or a dict of tensors")


def _linear(values: dict[str, Any], name: str) -> np.ndarray:
    if name in values:
        return _array(values[name], name)
    log_name = LOG_FORMS[name]
    if log_name in values:
        return np.exp(_array(values[log_name], log_name))
    raise CheckpointError(f"the model lacks {shown(name)} (or {shown(log_name)}); the contract: ipvae.train.importers.plain")


def run_config_and_model(source: Any, *, data: str = "mnist", n_steps: int = 16):
    """(RunConfig, IterativeVAE) of a user's model; an IterativeVAE of this toolkit is kept as it is."""
    from ipvae.train.model import IterativeVAE

    if isinstance(source, IterativeVAE):
        return RunConfig(model=source.config, train=TrainConfig(data=data, t_train=n_steps)), source
    values = parameters_of(source)
    if "phi" not in values:
        raise CheckpointError("the model lacks 'phi' [M, K]; the contract: ipvae.train.importers.plain")
    phi = _array(values["phi"], "phi")
    if phi.ndim != 2 or min(phi.shape) < 1:
        raise CheckpointError(f"phi must be [M, K], got shape {phi.shape}")
    n_inputs, n_latents = phi.shape
    prior_name = next((name for name in PRIOR_NAMES if name in values), None)
    if prior_name is None:
        raise CheckpointError("the model lacks 'u_prior' [K] (or 'log_rate_prior'); the contract: ipvae.train.importers.plain")
    u_prior = _array(values[prior_name], prior_name)
    bias, step_size, sigma = _linear(values, "bias"), _linear(values, "step_size"), _linear(values, "sigma")
    for name, array, shapes in (("u_prior", u_prior, [(n_latents,)]), ("bias", bias, [(n_latents,)]),
                                ("step_size", step_size, [()]), ("sigma", sigma, [(n_inputs,), ()])):
        if array.shape not in shapes and array.size != 1:
            raise CheckpointError(f"{name} must have shape {' or '.join(map(str, shapes))}, got {array.shape}")
    if np.any(bias <= 0) or np.any(step_size <= 0) or np.any(sigma <= 0):
        raise CheckpointError("bias, step_size and sigma must be positive")
    options = {name: values.get(name, default) for name, default in OPTIONAL.items()}
    log_sigma = np.log(np.broadcast_to(sigma, (n_inputs,)))
    bound = max(DEFAULT_LOG_SIGMA_BOUND, BOUND_HEADROOM * float(np.abs(log_sigma).max()))
    try:
        model_config = ModelConfig(
            n_inputs=int(n_inputs), n_latents=int(n_latents), max_spike_count=int(options["max_spike_count"]),
            u_min=float(options["u_min"]), u_max=float(options["u_max"]), leak=float(options["leak"]),
            hard_upper_clamp=bool(options["hard_upper_clamp"]), log_sigma_bound=bound)
        config = RunConfig(model=model_config, train=TrainConfig(data=data, t_train=n_steps))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the model's settings are invalid: {error}") from None
    network = build_model(config.model)
    tensors = {
        "phi": phi,
        "log_sigma": bound * np.arctanh(log_sigma / bound),  # sigma = exp(bound tanh(s / bound)) inverted
        "log_lr": np.log(float(np.reshape(step_size, -1)[0])),
        "u_prior": np.broadcast_to(u_prior, (n_latents,)),
        "log_b": np.log(np.broadcast_to(bias, (n_latents,))),
    }
    network.load_state_dict({name: torch.tensor(np.array(value), dtype=torch.float32) for name, value in tensors.items()})
    return config, network.eval()


def write_run(source: Any, run_dir: str | Path, *, data: str = "mnist", n_steps: int = 16) -> Path:
    """A run directory (model.safetensors + config.json) holding the user's model."""
    config, network = run_config_and_model(source, data=data, n_steps=n_steps)
    if not math.isfinite(float(network.log_lr)):
        raise CheckpointError("step_size must be positive and finite")
    save_run(run_dir, config, network)
    return Path(run_dir)
