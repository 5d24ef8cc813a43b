"""Run directories: ``model.safetensors`` + ``config.json`` (+ ``train_state.safetensors`` while training).

Every file is written atomically (``ipvae.fileio``), so an interrupted save keeps the previous good
checkpoint. Loading validates what it reads and raises ``CheckpointError`` with one clear sentence
(missing file, corrupt file, tensors that do not match the config, NaN/Inf weights).

The train state is ONE file holding everything a resume needs (weights, optimizer, scheduler, the
sampling generator, the step and the epoch's running sums), so it is one atomic unit: a kill at any
moment leaves either the previous or the new state, never a pair from two steps. It holds no pickle:
tensors in safetensors, everything else as JSON in the safetensors header, so resuming a run
directory received from someone else cannot execute code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ipvae.errors import CheckpointError
from ipvae.fileio import atomic_path, write_json
from ipvae.train.config import RunConfig
from ipvae.train.registry import Model, build_model

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.safetensors"
LEGACY_TRAIN_STATE_FILE = "train_state.pt"  # before the one-file format; read with weights_only=True
TRAIN_STATE_FORMAT = "ipvae-train-state"
TRAIN_STATE_VERSION = 1
_MODEL_PREFIX = "model/"
_OPTIMIZER_PREFIX = "optimizer/"
_GENERATOR_KEY = "sampling_generator"


@dataclass(frozen=True)
class LoadedRun:
    config: RunConfig
    model: Model
    run_dir: Path


@dataclass(frozen=True, eq=False)
class TrainState:
    """Everything a resume needs, as of the end of optimisation step ``step``.

    model: the weights (state_dict).  optimizer / scheduler: their state_dicts.
    sampling_generator: torch.Generator.get_state() (uint8).  progress: JSON values the trainer keeps
    across a resume (the running sums of the current epoch, the finished epochs' metrics lines).
    """

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    sampling_generator: torch.Tensor
    progress: dict[str, Any] = field(default_factory=dict)


def save_run(run_dir: str | Path, config: RunConfig, model: Model, *, step: int | None = None) -> None:
    run_dir = Path(run_dir)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    metadata = {"kind": config.model.kind, "family": config.model.family}
    if step is not None:
        metadata["step"] = str(step)
    with atomic_path(run_dir / WEIGHTS_FILE) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    write_json(run_dir / CONFIG_FILE, config.to_dict())


def save_train_state(run_dir: str | Path, state: TrainState) -> None:
    """Write the whole train state as one safetensors file (atomic; no pickle)."""
    tensors = {_MODEL_PREFIX + name: tensor.detach().contiguous().cpu().clone() for name, tensor in state.model.items()}
    optimizer_values: dict[str, dict[str, Any]] = {}
    for index, values in state.optimizer["state"].items():
        optimizer_values[str(index)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIMIZER_PREFIX}{index}/{key}"] = value.detach().contiguous().cpu().clone()
            else:
                optimizer_values[str(index)][key] = value
    tensors[_GENERATOR_KEY] = state.sampling_generator.contiguous().clone()
    header = {
        "format": TRAIN_STATE_FORMAT,
        "version": TRAIN_STATE_VERSION,
        "step": int(state.step),
        "optimizer_param_groups": state.optimizer["param_groups"],
        "optimizer_values": optimizer_values,
        "scheduler": state.scheduler,
        "progress": state.progress,
    }
    with atomic_path(Path(run_dir) / TRAIN_STATE_FILE) as temporary:
        save_file(tensors, str(temporary), metadata={"state": json.dumps(header, allow_nan=True)})


def load_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing (is {run_dir} a run directory?)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from None
    return RunConfig.from_dict(data)


def load_run(run_dir: str | Path) -> LoadedRun:
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    weights_path = run_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} is corrupt or not a safetensors file ({error})") from None
    model = build_model(config.model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights_path} does not match config.json (missing {missing or 'none'}, unexpected {unexpected or 'none'})"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{weights_path}: tensor '{name}' has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{weights_path}: tensor '{name}' contains NaN or Inf")
    model.load_state_dict(tensors)
    model.eval()
    return LoadedRun(config=config, model=model, run_dir=run_dir)


def load_train_state(run_dir: str | Path) -> TrainState:
    """The saved train state, validated; CheckpointError (one line) if missing, damaged or incomplete."""
    run_dir = Path(run_dir)
    path = run_dir / TRAIN_STATE_FILE
    if not path.is_file():
        if (run_dir / LEGACY_TRAIN_STATE_FILE).is_file():
            return _load_legacy_train_state(run_dir)
        raise CheckpointError(f"{path} is missing: nothing to resume")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header_text = (handle.metadata() or {}).get("state")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({type(error).__name__})") from None
    if header_text is None:
        raise CheckpointError(f"{path} has no train-state header")
    try:
        header = json.loads(header_text)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: the train-state header is not valid JSON") from None
    try:
        return _train_state_from(header, tensors)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path} is incomplete or damaged ({type(error).__name__}: {str(error)[:200]})") from None


def _train_state_from(header: dict, tensors: dict[str, torch.Tensor]) -> TrainState:
    if header.get("format") != TRAIN_STATE_FORMAT or header.get("version") != TRAIN_STATE_VERSION:
        raise ValueError(f"not an {TRAIN_STATE_FORMAT} version {TRAIN_STATE_VERSION} header")
    step = header["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step {step!r} is not a non-negative integer")
    model = {key[len(_MODEL_PREFIX):]: value for key, value in tensors.items() if key.startswith(_MODEL_PREFIX)}
    optimizer_state: dict[int, dict[str, Any]] = {}
    for index, values in header["optimizer_values"].items():
        optimizer_state[int(index)] = dict(values)
    for key, value in tensors.items():
        if key.startswith(_OPTIMIZER_PREFIX):
            index, name = key[len(_OPTIMIZER_PREFIX):].split("/", 1)
            optimizer_state.setdefault(int(index), {})[name] = value
    for name, value in model.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"weight '{name}' contains NaN or Inf")
    param_groups = header["optimizer_param_groups"]
    if not isinstance(param_groups, list) or not all(isinstance(group, dict) for group in param_groups):
        raise TypeError("optimizer_param_groups must be a list of objects")
    if not isinstance(header["scheduler"], dict) or not isinstance(header["progress"], dict):
        raise TypeError("scheduler and progress must be objects")
    return TrainState(
        step=step,
        model=model,
        optimizer={"state": optimizer_state, "param_groups": param_groups},
        scheduler=header["scheduler"],
        sampling_generator=tensors[_GENERATOR_KEY],
        progress=header["progress"],
    )


def _load_legacy_train_state(run_dir: Path) -> TrainState:
    """A ``train_state.pt`` of an older toolkit: loaded with weights_only=True (no code runs)."""
    path = run_dir / LEGACY_TRAIN_STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return TrainState(
            step=int(state["step"]),
            model=load_run(run_dir).model.state_dict(),
            optimizer=state["optimizer"],
            scheduler=state["scheduler"],
            sampling_generator=state["sampling_generator"],
        )
    except CheckpointError:
        raise
    except Exception as error:  # torch.load raises many types for a damaged or hostile file
        raise CheckpointError(f"{path} is corrupt, incomplete or not a plain tensor file ({type(error).__name__})") from None
