"""Run directories: ``model.safetensors`` + ``config.json`` (+ ``train_state.safetensors`` while training).

Every file is written atomically (``ipvae.fileio``), so an interrupted save keeps the previous good
checkpoint. Loading validates what it reads and raises ``CheckpointError`` with one clear sentence
(missing file, corrupt file, tensors that do not match the config, NaN/Inf weights).

The train state is ONE file holding everything a resume needs (weights, optimizer, scheduler, the
sampling generator, the step and the epoch's running sums), so it is one atomic unit: a kill at any
moment leaves either the previous or the new state, never a pair from two steps. It holds no pickle:
tensors in safetensors, everything else as JSON in the safetensors header, so resuming a run
directory received from someone else cannot execute code. Nothing here reads a pickle, torch.load or
torch.jit.load: the ``train_state.pt`` of older toolkits is refused, not read (torch.load with
weights_only=True hands a TorchScript archive to torch.jit.load, which runs its code; torch < 2.6).

What is read is validated before use (``ipvae.train.validation``): config.json's sizes and types, every
weight's name, dtype and shape against the model its config builds, the train state against a fresh
optimizer and scheduler (structure, types, finite values, a step within the run's length), JSON with a
bounded size and depth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import save_file

from ipvae.errors import CheckpointError, one_line, shown
from ipvae.fileio import atomic_path, write_failure, write_json
from ipvae.limits import MAX_JSON_BYTES, check_memory, read_json_file, loads_bounded
from ipvae.train.config import RunConfig
from ipvae.train.registry import Model, build_model
from ipvae.train.validation import (
    OPTIMIZER_STATE_KEYS, check_config_limits, check_counter, check_tensor, same_structure,
)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.safetensors"
LEGACY_TRAIN_STATE_FILE = "train_state.pt"  # before the one-file format: refused, never read (it is a pickle)
TRAIN_STATE_FORMAT = "ipvae-train-state"
TRAIN_STATE_VERSION = 1
_MODEL_PREFIX = "model/"
_OPTIMIZER_PREFIX = "optimizer/"
_GENERATOR_KEY = "sampling_generator"
MAX_SAFETENSORS_HEADER_BYTES = 16 * 2**20  # a train state's header is a few kB (tensor table + our JSON)
SAFETENSORS_LENGTH_BYTES = 8  # the file starts with the header's length, a little-endian u64
WEIGHT_FILE_OVERHEAD = 2**20  # bytes a weights file may hold beyond its tensors (header, alignment)


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
    """Write config.json, then the weights (each atomic): a run directory never holds weights without config."""
    run_dir = Path(run_dir)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    metadata = {"kind": config.model.kind, "family": config.model.family}
    if step is not None:
        metadata["step"] = str(step)
    save_config(run_dir, config)
    with atomic_path(run_dir / WEIGHTS_FILE) as temporary:
        _save_safetensors(tensors, temporary, metadata, run_dir / WEIGHTS_FILE)


def save_config(run_dir: str | Path, config: RunConfig) -> None:
    write_json(Path(run_dir) / CONFIG_FILE, config.to_dict())


def _save_safetensors(tensors: dict[str, torch.Tensor], temporary: Path, metadata: dict[str, str], target: Path) -> None:
    """safetensors' save_file; its write errors (a full disk) as one OutputPathError line."""
    try:
        save_file(tensors, str(temporary), metadata=metadata)
    except SafetensorError as error:
        reason = OSError(28, "No space left on device") if "os error 28" in str(error) else OSError(0, str(error).splitlines()[0][:120])
        raise write_failure(target, reason) from None


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
    target = Path(run_dir) / TRAIN_STATE_FILE
    with atomic_path(target) as temporary:
        _save_safetensors(tensors, temporary, {"state": json.dumps(header, allow_nan=True)}, target)


def load_config(run_dir: str | Path) -> RunConfig:
    """config.json of a run directory, validated (types, ranges, sizes); CheckpointError in one line."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {shown(run_dir)} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{shown(path)} is missing (is {shown(run_dir)} a run directory?)")
    try:
        data = read_json_file(path)
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{shown(path)} is not valid JSON ({type(error).__name__}: {one_line(error, 100)})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(name), dict) for name in ("model", "train")):
        raise CheckpointError(f"{shown(path)} is invalid: expected an object with 'model' and 'train' objects")
    config = RunConfig.from_dict(data)
    try:
        check_config_limits(config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{shown(path)} is invalid: {error}") from None
    return config


def _read_checked_tensors(path: Path, expected: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose names start with ``prefix``, each checked (name, dtype, shape)
    against ``expected`` BEFORE it is read, then for finite values; ValueError naming the tensor otherwise."""
    with safe_open(str(path), framework="pt") as handle:
        names = [key for key in handle.keys() if key.startswith(prefix)]
        missing = sorted(set(expected) - {name[len(prefix):] for name in names})
        unexpected = sorted({name[len(prefix):] for name in names} - set(expected))
        if missing or unexpected:
            raise ValueError(f"its tensors do not match the config's model (missing {shown(missing[:5])}, "
                             f"unexpected {shown(unexpected[:5])})")
        tensors = {}
        for name in names:
            key = name[len(prefix):]
            declared = handle.get_slice(name)
            shape, dtype = tuple(declared.get_shape()), declared.get_dtype()
            if shape != tuple(expected[key].shape):
                raise ValueError(f"tensor {shown(key)} has shape {shape}, the config implies {tuple(expected[key].shape)}")
            if dtype != _SAFETENSORS_DTYPES.get(expected[key].dtype):
                raise ValueError(f"tensor {shown(key)} has dtype {shown(dtype)}, the config's model has "
                                 f"{str(expected[key].dtype).replace('torch.', '')}")
            tensors[key] = handle.get_tensor(name)
            check_tensor(f"tensor {shown(key)}", tensors[key], expected[key])
    return tensors


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
                       torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                       torch.bool: "BOOL"}


def load_run(run_dir: str | Path) -> LoadedRun:
    """A run directory's config and model; every weight checked by name, dtype and shape against the model
    the config builds (no conversion: an int32 or float16 tensor is refused), and for NaN/Inf."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    weights_path = run_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{shown(weights_path)} is missing")
    check_memory(_model_bytes(config), f"the model of {shown(run_dir / CONFIG_FILE)}")
    model = build_model(config.model)
    expected = model.state_dict()
    try:
        size = weights_path.stat().st_size
        if size > sum(t.numel() * t.element_size() for t in expected.values()) + WEIGHT_FILE_OVERHEAD:
            raise ValueError(f"it holds {size} bytes, far more than the config's model needs")
        _check_header_size(weights_path)
        tensors = _read_checked_tensors(weights_path, expected)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{shown(weights_path)} is corrupt or not a safetensors file ({type(error).__name__})") from None
    except ValueError as error:
        raise CheckpointError(f"{shown(weights_path)} does not match config.json: {error}") from None
    model.load_state_dict(tensors)
    model.eval()
    return LoadedRun(config=config, model=model, run_dir=run_dir)


def _check_header_size(path: Path) -> None:
    """ValueError if the safetensors header is longer than any this toolkit writes (read before parsing it)."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(SAFETENSORS_LENGTH_BYTES), "little")
    if length > MAX_SAFETENSORS_HEADER_BYTES:
        raise ValueError(f"its header claims {length} bytes (at most {MAX_SAFETENSORS_HEADER_BYTES} expected)")


def _model_bytes(config: RunConfig) -> int:
    """A lower bound of the model's float32 weights: Phi [M, K] (every kind has a dictionary)."""
    from ipvae.limits import FLOAT32_BYTES, product

    return product(config.model.n_inputs, config.model.n_latents, FLOAT32_BYTES)


@dataclass(frozen=True, eq=False)
class ResumeTemplate:
    """What a train state must fit: the fresh model, optimizer, scheduler and generator of the run's config
    (built by the trainer), and the run's length in steps."""

    model: Model
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampling: torch.Generator
    total_steps: int


def load_train_state(run_dir: str | Path, template: ResumeTemplate | None = None) -> TrainState:
    """The saved train state, validated; CheckpointError (one line) if missing, damaged, incomplete or (with a
    ``template``) not a state of this run: wrong names, dtypes or shapes, wrong structure or types, a step
    beyond the run's length or counters that disagree with it."""
    run_dir = Path(run_dir)
    path = run_dir / TRAIN_STATE_FILE
    if not path.is_file():
        if (run_dir / LEGACY_TRAIN_STATE_FILE).exists():
            raise CheckpointError(
                f"{shown(run_dir / LEGACY_TRAIN_STATE_FILE)} is a train state of an older toolkit (a pickle); it is "
                f"not read, because loading it could run code: start the run again, or resume it with the toolkit that wrote it"
            )
        raise CheckpointError(f"{shown(path)} is missing: nothing to resume")
    try:
        _check_header_size(path)
        with safe_open(str(path), framework="pt") as handle:
            header_text = (handle.metadata() or {}).get("state")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{shown(path)} is corrupt or not a safetensors file ({type(error).__name__}: "
                              f"{one_line(error, 100)})") from None
    if header_text is None:
        raise CheckpointError(f"{shown(path)} has no train-state header")
    try:
        header = loads_bounded(header_text, MAX_JSON_BYTES)
    except ValueError as error:
        raise CheckpointError(f"{shown(path)}: the train-state header is not valid JSON ({one_line(error, 100)})") from None
    try:
        expected = _expected_tensors(template) if template is not None else None
        tensors = _read_state_tensors(path, expected)
        state = _train_state_from(header, tensors)
        if template is not None:
            _check_against(state, header, template)
        return state
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CheckpointError(f"{shown(path)} is corrupt or not a safetensors file ({type(error).__name__})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{shown(path)} is incomplete or damaged ({type(error).__name__}: {one_line(error, 160)})") from None


def _expected_tensors(template: ResumeTemplate) -> dict[str, torch.Tensor]:
    """Every tensor a train state of this run holds, by its name in the file: the weights, each parameter's
    optimizer moments (the parameter's shape and dtype; ``step`` a float32 scalar) and the generator state."""
    expected = {_MODEL_PREFIX + name: tensor for name, tensor in template.model.state_dict().items()}
    parameters = [parameter for group in template.optimizer.param_groups for parameter in group["params"]]
    for index, parameter in enumerate(parameters):
        for key in OPTIMIZER_STATE_KEYS:
            expected[f"{_OPTIMIZER_PREFIX}{index}/{key}"] = (
                torch.zeros((), dtype=torch.float32) if key == "step" else parameter.detach().cpu()
            )
    expected[_GENERATOR_KEY] = template.sampling.get_state()
    return expected


def _read_state_tensors(path: Path, expected: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """The train state's tensors; with ``expected``, each name, dtype and shape is checked before it is read
    (an optimizer moment may be absent: torch creates it on the first step)."""
    with safe_open(str(path), framework="pt") as handle:
        tensors = {}
        for name in handle.keys():
            if expected is not None:
                if name not in expected:
                    raise ValueError(f"unexpected tensor {shown(name)}")
                declared = handle.get_slice(name)
                shape, dtype = tuple(declared.get_shape()), declared.get_dtype()
                if shape != tuple(expected[name].shape) or dtype != _SAFETENSORS_DTYPES.get(expected[name].dtype):
                    raise ValueError(f"tensor {shown(name)} is {dtype} {shape}, the run's config implies "
                                     f"{_SAFETENSORS_DTYPES.get(expected[name].dtype)} {tuple(expected[name].shape)}")
            tensors[name] = handle.get_tensor(name)
            if expected is not None:
                check_tensor(f"tensor {shown(name)}", tensors[name], expected[name])
    if expected is not None:
        missing = sorted(name for name in expected if name.startswith(_MODEL_PREFIX) and name not in tensors)
        if missing or _GENERATOR_KEY not in tensors:
            raise ValueError(f"missing tensors {shown((missing + [_GENERATOR_KEY])[:5])}")
    return tensors


def _train_state_from(header: dict, tensors: dict[str, torch.Tensor]) -> TrainState:
    if not isinstance(header, dict):
        raise TypeError("the header must be a JSON object")
    if header.get("format") != TRAIN_STATE_FORMAT or header.get("version") != TRAIN_STATE_VERSION:
        raise ValueError(f"not an {TRAIN_STATE_FORMAT} version {TRAIN_STATE_VERSION} header")
    step = header["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step {shown(step, 40)} is not a non-negative integer")
    model = {key[len(_MODEL_PREFIX):]: value for key, value in tensors.items() if key.startswith(_MODEL_PREFIX)}
    optimizer_state: dict[int, dict[str, Any]] = {}
    if not isinstance(header["optimizer_values"], dict):
        raise TypeError("optimizer_values must be an object")
    for index, values in header["optimizer_values"].items():
        if not isinstance(values, dict):
            raise TypeError("optimizer_values must hold objects")
        optimizer_state[int(index)] = dict(values)
    for key, value in tensors.items():
        if key.startswith(_OPTIMIZER_PREFIX):
            index, name = key[len(_OPTIMIZER_PREFIX):].split("/", 1)
            if name in optimizer_state.get(int(index), {}):
                raise ValueError(f"optimizer state {index}/{shown(name)} is both a tensor and a JSON value")
            optimizer_state.setdefault(int(index), {})[name] = value
    for name, value in model.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"weight {shown(name)} contains NaN or Inf")
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


def _check_against(state: TrainState, header: dict, template: ResumeTemplate) -> None:
    """The JSON parts of the state against the fresh optimizer and scheduler; the step against the run."""
    if state.step > template.total_steps:
        raise ValueError(f"step {_number(state.step)} is beyond the run's {template.total_steps} steps")
    fresh_groups = template.optimizer.state_dict()["param_groups"]
    same_structure("optimizer_param_groups", state.optimizer["param_groups"], fresh_groups)
    for group in state.optimizer["param_groups"]:
        if not group["lr"] >= 0:
            raise ValueError(f"optimizer learning rate {group['lr']!r} is negative")
    n_parameters = sum(len(group["params"]) for group in fresh_groups)
    for index, values in state.optimizer["state"].items():
        if not 0 <= index < n_parameters or not set(values) <= OPTIMIZER_STATE_KEYS:
            raise ValueError(f"optimizer state {index} does not belong to this model's {n_parameters} parameters")
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                continue  # checked by name, dtype and shape when read
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"optimizer state {index}/{shown(key)} must be a tensor, a number or null")
        step_value = values.get("step")
        if step_value is not None and not 0 <= float(step_value) <= state.step:
            raise ValueError(f"optimizer state {index}/step is {float(step_value):g}, beyond the train state's step {state.step}")
    same_structure("scheduler", state.scheduler, template.scheduler.state_dict())
    check_counter("scheduler.last_epoch", state.scheduler["last_epoch"], state.step)
    check_counter("scheduler._step_count", state.scheduler["_step_count"], state.step + 1)
    _check_progress(state.progress, template)


def _check_progress(progress: dict, template: ResumeTemplate) -> None:
    """progress: {"epoch_sums": {metric: number}, "epoch_lines": [{key: number}, ...]} (the trainer's)."""
    from ipvae.train.trainer import METRIC_NAMES

    if set(progress) - {"epoch_sums", "epoch_lines"}:
        raise ValueError("progress has unknown keys")
    sums = progress.get("epoch_sums", {})
    same_structure("progress.epoch_sums", sums, dict.fromkeys(METRIC_NAMES, 0.0))
    lines = progress.get("epoch_lines", [])
    if not isinstance(lines, list) or len(lines) > template.total_steps:
        raise ValueError("progress.epoch_lines must be a list of at most one line per epoch")
    for index, line in enumerate(lines):
        if not isinstance(line, dict) or not all(isinstance(key, str) and len(key) <= 64 for key in line):
            raise ValueError(f"progress.epoch_lines[{index}] must be an object of metrics")
        for key, value in line.items():  # recorded metrics: numbers (NaN allowed: a metric may be undefined)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"progress.epoch_lines[{index}].{shown(key, 40)} must be a number")


def _number(value: int) -> str:
    """An integer for a message: itself, or its digit count when it is long."""
    text = str(value)
    return text if len(text) <= 24 else f"a {len(text)}-digit number"
