"""What `ipvae run`, `ipvae parity`, the demo and the benchmarks share: inputs, backends, the summary table."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipvae.export.events import STOP_TOLERANCE_SCALE, EventOptions, ReadoutSchedule, reconstruct, stop_steps
from ipvae.export.integer_model import IntegerModel
from ipvae.errors import IpvaeError
from ipvae.images import InputPreparation, LoadedInputs, is_file_source, load_file_inputs
from ipvae.lava.accounting.energy import Fanouts, OperationCounts, count_event_operations, count_operations
from ipvae.export.fidelity import r2_per_image
from ipvae.lava.accounting.metrics import step_targets, trajectory_metrics
from ipvae.lava.parity import ParityReport, compare_trajectories
from ipvae.lava.accounting.pricing import NonZeros, baseline_summary, table_as_dict
from ipvae.lava.runner import InputError, validate_images

BACKENDS = ("lava", "reference")
DEFAULT_SPLIT = "test"
DEFAULT_DATASET_IMAGES = 20
# Inputs are refused beyond this multiple of the export's calibrated range max|x| (beyond 1x they saturate).
INPUT_RANGE_FACTOR = 4.0
REFERENCE_CHUNK_IMAGES = 256  # the reference keeps [T+1, B, K] int32 potentials per call: bound B


@dataclass(frozen=True, eq=False)
class BackendRun:
    """Spike counts z [T+1, N, K] and potentials u [T+1, N, K] of one backend, with its wall time.

    options: the event-driven options it ran with; last_step [N]: each image's last step (T unless stopped).
    """

    backend: str
    z: np.ndarray
    u: np.ndarray | None
    seconds: float
    image_offset: int
    options: EventOptions = EventOptions()
    last_step: np.ndarray | None = None


def read_export(path: str | Path, seed: int | None = None) -> IntegerModel:
    """The validated integer model of an export file; ``seed`` replaces the file's generator key."""
    from ipvae.export.hdf5 import read_model

    return with_seed(read_model(path).model, seed, name="--seed")


def with_seed(model: IntegerModel, seed: int | None, *, name: str = "seed") -> IntegerModel:
    """The model with its generator key replaced by ``seed`` (None: unchanged); refused outside 0..2**64-1."""
    if seed is None:
        return model
    if isinstance(seed, bool) or not 0 <= int(seed) < 2**64:
        raise IpvaeError(f"{name} must be in 0..2**64-1, got {seed}")
    return dataclasses.replace(model, spec=dataclasses.replace(model.spec, seed=int(seed)))


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise IpvaeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def check_input_range(x: np.ndarray, model: IntegerModel) -> np.ndarray:
    """Refuse inputs far beyond the range the export was calibrated for (they would only saturate)."""
    calibrated = model.input_scale * model.spec.input_max  # max|x| an input spike can carry
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > INPUT_RANGE_FACTOR * calibrated:
        raise InputError(
            f"the inputs reach max|x| = {peak:.4g}, far beyond the export's input range max|x| = {calibrated:.4g} "
            f"(calibrated on its training data); scale them like that data, e.g. pixels in [0, 1]"
        )
    return x


def check_steps(n_steps: int) -> int:
    if n_steps is None or int(n_steps) < 1:
        raise IpvaeError(f"--steps must be a positive integer, got {n_steps}")
    return int(n_steps)


def load_inputs(data: str, n_images: int | None, n_inputs: int, *, split: str = DEFAULT_SPLIT, start: int = 0,
                rotate_degrees: float | None = None, n_steps: int = 1) -> np.ndarray:
    """Images [N, M] (or sequences [N, F, M]) from a data set name or a file source (see load_inputs_described)."""
    return load_inputs_described(data, n_images, n_inputs, split=split, start=start, rotate_degrees=rotate_degrees,
                                 n_steps=n_steps).x


def read_preparation(path: str | Path) -> InputPreparation | None:
    """How an export's training images were prepared (its metadata/input_preparation; None in older files)."""
    import json

    from ipvae.export.hdf5 import read_model

    stored = read_model(path).metadata.input_preparation
    return InputPreparation.from_dict(json.loads(stored)) if stored else None


def load_inputs_described(data: str, n_images: int | None, n_inputs: int, *, split: str = DEFAULT_SPLIT,
                          start: int = 0, rotate_degrees: float | None = None, n_steps: int = 1,
                          preparation: InputPreparation | None = None) -> LoadedInputs:
    """Inputs and one line saying where they came from and what was done to them.

    ``data``: a data set name (ipvae.data.get_dataset; ``n_images`` None: DEFAULT_DATASET_IMAGES of them) or a
    file source of ipvae.images (an image file, folder or glob, prepared like MNIST; a .npy/.npz array of images
    or frame sequences; ``n_images`` None: all). With ``rotate_degrees`` each image becomes a sequence
    [N, T, M] turning by that many degrees per frame.
    """
    if n_images is not None and n_images < 1:
        raise IpvaeError(f"-n must be a positive number of images, got {n_images}")
    if start < 0:
        raise IpvaeError(f"--start must be non-negative, got {start}")
    if is_file_source(data):
        loaded = load_file_inputs(data, n_inputs, preparation)  # image files prepared as the training images were
        images, description, names = loaded.x, loaded.description, loaded.names
        n_images = images.shape[0] - start if n_images is None else n_images
    else:
        from ipvae.data import get_dataset

        n_images = DEFAULT_DATASET_IMAGES if n_images is None else n_images
        tensor, _ = get_dataset(data, split, limit=start + n_images)
        images = tensor.reshape(tensor.shape[0], -1).numpy()
        description, names = f"{data} {split} images {start}..{start + n_images - 1}", ()
    images = images[start : start + n_images]
    if n_images < 1 or images.shape[0] < n_images:
        raise IpvaeError(f"{data} has only {images.shape[0]} images from index {start}, asked for {n_images}")
    images = validate_images(images, n_inputs, n_steps)
    if rotate_degrees is None:
        return LoadedInputs(images, description, names[start : start + n_images])
    if images.ndim == 3:
        raise IpvaeError("--rotate turns still images; these inputs are already frame sequences")
    return LoadedInputs(rotating_inputs(images, n_steps, rotate_degrees),
                        f"{description}; each rotating by {rotate_degrees:g} degrees per step")


def rotating_inputs(images: np.ndarray, n_frames: int, degrees_per_frame: float) -> np.ndarray:
    """[N, T, M] sequences: each image turning by degrees_per_frame per frame (ipvae.data.rotating_sequence)."""
    import torch

    from ipvae.data import rotating_sequence

    side = int(round(np.sqrt(images.shape[1])))
    if side * side != images.shape[1]:
        raise InputError(f"rotation needs square images, got {images.shape[1]} pixels")
    frames = [rotating_sequence(torch.from_numpy(image).float(), n_frames, degrees_per_frame, side=side).numpy()
              for image in images]
    return np.stack(frames).astype(np.float64)  # [N, T, M]


def run_backend(model: IntegerModel, x: np.ndarray, n_steps: int, backend: str, *, image_offset: int = 0,
                progress: bool | None = None, record_u: bool = True, options: EventOptions = EventOptions(),
                batch: int | None = None) -> BackendRun:
    """Run images x ([N, M] or [N, F, M] floats) through the Lava fixed_pt graph or the integer reference.

    options: the event-driven options (ipvae.export.events); batch: Lava images side by side (default:
    ipvae.lava.runner.balanced_batch).
    """
    check_backend(backend)
    x = validate_images(x, model.n_inputs, n_steps)
    if backend == "lava":
        from ipvae.lava.network import build_fixed_network
        from ipvae.lava.runner import LavaSimulation, balanced_batch

        batch = balanced_batch(x.shape[0]) if batch is None else batch
        network = build_fixed_network(model, n_steps, image_offset=image_offset, batch=batch, options=options)
        with LavaSimulation(network, progress=progress) as simulation:
            trajectory = simulation.run(x, record_u=record_u)
        return BackendRun("lava", trajectory.z, trajectory.u, trajectory.seconds, image_offset, options,
                          stop_steps(trajectory.z, options))
    from ipvae.export.quantize import quantize_input
    from ipvae.export.reference import run_reference

    payload = quantize_input(x, model.input_scale, model.spec.input_bits)  # [N, M] or [N, F, M]
    started = time.perf_counter()
    z_chunks, u_chunks, last_chunks = [], [], []
    for first in range(0, payload.shape[0], REFERENCE_CHUNK_IMAGES):
        chunk = payload[first : first + REFERENCE_CHUNK_IMAGES]
        if chunk.ndim == 3:
            chunk = chunk.transpose(1, 0, 2)  # the reference takes frames as [T, B, M]
        result = run_reference(model, chunk, n_steps, image_offset=image_offset + first, options=options,
                               with_recon=False)
        z_chunks.append(result.z)
        last_chunks.append(result.last_step)
        if record_u:
            u_chunks.append(result.u)
    z = np.concatenate(z_chunks, axis=1)  # [T+1, N, K]
    u = np.concatenate(u_chunks, axis=1) if record_u else None
    return BackendRun("reference", z, u, time.perf_counter() - started, image_offset, options,
                      np.concatenate(last_chunks))


def sent_input_events(model: IntegerModel, x: np.ndarray, n_steps: int, options: EventOptions) -> np.ndarray:
    """The sigma-delta input events [T, N, M] the graph sends for images x (what the source computes)."""
    from ipvae.export.quantize import quantize_input
    from ipvae.export.reference import input_events

    payload = quantize_input(x, model.input_scale, model.spec.input_bits)
    if payload.ndim == 3:
        payload = payload.transpose(1, 0, 2)  # [T', N, M]
    return input_events(model, payload, n_steps, options.input_threshold)


def readout_quality(x: np.ndarray, z: np.ndarray, phi: np.ndarray, last_steps: np.ndarray,
                    schedule: ReadoutSchedule) -> dict[str, float]:
    """R^2 and MSE per pixel of the scheduled readout (the deployment's output) against the input of its step."""
    recon = reconstruct(z, phi, last_steps, schedule)  # [N, M]
    targets = step_targets(x, z.shape[0] - 1)[last_steps, np.arange(z.shape[1])]  # [N, M]
    return {
        "readout_r2": float(r2_per_image(targets, recon).mean()),
        "readout_mse_per_pixel": float(np.square(targets - recon).mean()),
        "mean_last_step": float(np.mean(last_steps)),
    }


@dataclass(frozen=True)
class RunCounts:
    """Both accounts of one run's spikes: event-driven (what is computed) and re-send-every-step."""

    event_driven: OperationCounts
    resend: OperationCounts
    input_events: np.ndarray  # [T, N, M] the input events the event-driven stage sends
    last_steps: np.ndarray  # [N] each image's last computed step (the stopping rule)


def run_counts(model: IntegerModel, x: np.ndarray, run: BackendRun,
               schedule: ReadoutSchedule = ReadoutSchedule()) -> RunCounts:
    from ipvae.export.quantize import quantize_input

    n_steps = run.z.shape[0] - 1
    payload = quantize_input(x, model.input_scale, model.spec.input_bits)
    fanouts = Fanouts.from_integer_model(model)
    last_steps = run.last_step if run.last_step is not None else stop_steps(run.z, run.options)
    events = sent_input_events(model, x, n_steps, run.options)
    return RunCounts(
        event_driven=count_event_operations(run.z, events, fanouts, last_steps, schedule),
        resend=count_operations(run.z, payload, fanouts),
        input_events=events,
        last_steps=last_steps,
    )


def summarize(model: IntegerModel, x: np.ndarray, run: BackendRun,
              schedule: ReadoutSchedule = ReadoutSchedule()) -> tuple[dict, dict]:
    """(the summary table as a dict, per-step curves) of a run on images x.

    The counts are the event-driven account (ipvae.lava.accounting.energy.count_event_operations: input events
    sent, readout on the schedule, stopped images idle); ``resend_*`` keys give the re-send-every-step
    account of the same spikes (count_operations) beside them.
    """
    n_window, n_images, _ = run.z.shape
    n_steps = n_window - 1
    both = run_counts(model, x, run, schedule)
    counts = both.event_driven
    resend = both.resend.per_inference()
    metrics = trajectory_metrics(x, run.z, model.decoder_phi)
    per_inference = counts.per_inference()
    table = {
        "images": n_images,
        "steps": n_steps,
        "backend": run.backend,
        "seed": int(model.spec.seed),
        "input": "sequence" if x.ndim == 3 else "static",
        "input_threshold": run.options.input_threshold,
        "stop_window": run.options.stop_window,
        "stop_eps": run.options.stop_tolerance / STOP_TOLERANCE_SCALE,
        "readout": schedule.mode.value,
        **per_inference,
        **{f"resend_{key}": value for key, value in resend.items()},
        **baseline_summary(model.n_inputs, model.n_latents, n_steps, per_inference["energy_estimate_nj"],
                           nonzeros=NonZeros.from_integer_model(model)),
        **metrics.final(),
        **readout_quality(x, run.z, model.decoder_phi, both.last_steps, schedule),
        "images_per_second": n_images / run.seconds if run.seconds > 0 else float("inf"),
        "ms_per_step": 1e3 * run.seconds / (n_images * n_window),
        "energy_table": table_as_dict(),
        "per_inference": f"one image = a window of T+1 = {n_window} timesteps (t = 0..T)",
    }
    curves = {
        "step": np.arange(n_window),
        "spikes": counts.spikes,
        "events": counts.events,
        "synops": counts.synops,
        "energy_nj": counts.energy_joules() * 1e9,
        "mse_per_pixel": metrics.mse_per_pixel,
        "r2": metrics.r2,
        "zeros": metrics.zeros,
    }
    return table, curves


def parity(model: IntegerModel, x: np.ndarray, n_steps: int, *, image_offset: int = 0,
           progress: bool | None = None, options: EventOptions = EventOptions(),
           batch: int | None = None) -> tuple[ParityReport, BackendRun, BackendRun]:
    """Lava fixed_pt vs the integer reference on the same images, seed, image indices and event options."""
    lava = run_backend(model, x, n_steps, "lava", image_offset=image_offset, progress=progress, options=options,
                       batch=batch)
    reference = run_backend(model, x, n_steps, "reference", image_offset=image_offset, options=options)
    report = compare_trajectories(lava.z, lava.u, reference.z, reference.u, image_offset=image_offset)
    return report, lava, reference


@dataclass(frozen=True, eq=False)
class ModelPair:
    """An integer model and the float parameters it was quantized from, with where they came from."""

    integer: IntegerModel
    float_params: object  # ipvae.export.integer_model.FloatParams
    label: str
    n_steps: int


def models_from_run(run_dir: str | Path, *, seed: int = 0) -> ModelPair:
    """Quantize a trained run in memory with the default export settings (what `ipvae export` writes)."""
    from ipvae.export.pipeline import ExportSettings, build_integer_model
    from ipvae.export.source import load_source

    source = load_source(run_dir)
    model, _ = build_integer_model(source, ExportSettings(seed=seed))
    return ModelPair(model, source.params, f"trained run {run_dir}", source.n_steps)


def models_for_benchmark(run_dir: str | Path, *, seed: int = 0) -> ModelPair:
    """The run's float and integer models, or a synthetic K = 512 pair where run_dir holds no model."""
    if Path(run_dir, "model.safetensors").is_file():
        return models_from_run(run_dir, seed=seed)
    return synthetic_models(seed=seed)


def synthetic_models(n_inputs: int = 784, n_latents: int = 512, *, seed: int = 0) -> ModelPair:
    """A random model of the given size (ipvae.export.synthetic) for when no trained run is available."""
    from ipvae.export.quantize import quantize, spec_for
    from ipvae.export.synthetic import SyntheticConfig, random_float_params

    params = random_float_params(SyntheticConfig(n_inputs=n_inputs, n_latents=n_latents, phi_std=0.05, sigma=1.0, seed=seed))
    model = quantize(params, spec_for(params, seed=seed), 1.0 / 127, n_steps=16)
    return ModelPair(model, params, f"synthetic random model (M={n_inputs}, K={n_latents})", 16)
