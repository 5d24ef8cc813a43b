"""Training: unrolled inference, loss averaged over steps, one backward pass (BPTT) per batch.

Schedules are pure functions of the optimisation step (``Schedules``); randomness comes from two
explicit generators (``data``: a fresh one per epoch seeded by (seed, epoch), so the batch order of
any epoch is reproducible on its own; ``sampling``: the relaxed-Poisson draws, saved in the train
state), which makes a resumed run bit-identical to an uninterrupted one on the same machine.

Under torchrun (``ipvae.train.distributed``) every process trains on its slice of each global batch of
``batch_size`` rows with DistributedDataParallel; rank 0 alone writes checkpoints and metrics, and the
saved state is the same whatever the number of processes, so ``--resume`` works across world sizes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ipvae.errors import CheckpointError, IpvaeError, TrainingDiverged
from ipvae.fileio import atomic_path
from ipvae.train.checkpoint import TrainState, load_run, load_train_state, save_run, save_train_state
from ipvae.train.config import RunConfig, TrainConfig
from ipvae.data import get_dataset
from ipvae.train.distributed import DataParallel, data_parallel_from_environment
from ipvae.train.distributions import BatchShard
from ipvae.train.model import LossTerms
from ipvae.train.registry import Model, build_model

METRICS_FILE = "metrics.jsonl"
METRIC_NAMES = ("loss", "nll", "kl", "mse_per_pixel", "zeros")
EPOCH_SEED_STRIDE = 1_000_003
WARM_START_SEED_OFFSET = 7_919  # separates the warm-start draws' seeds from the epoch orders'
METRIC_NAMES = ("loss", "nll", "kl", "mse_per_pixel", "zeros")


@dataclass(frozen=True)
class Schedules:
    """Learning rate (linear warm-up, then cosine), KL weight beta, relaxation temperature."""

    config: TrainConfig
    total_steps: int

    def learning_rate_factor(self, step: int) -> float:
        config = self.config
        warmup = max(1, round(config.warmup_fraction * self.total_steps))
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
        floor = config.learning_rate_min / config.learning_rate
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def beta(self, step: int) -> float:
        config = self.config
        hold = config.beta_hold_fraction * self.total_steps
        ramp = max(1.0, config.beta_ramp_fraction * self.total_steps)
        progress = min(1.0, max(0.0, (step - hold) / ramp))
        return config.beta_start + (config.beta - config.beta_start) * progress

    def temperature(self, step: int) -> float:
        config = self.config
        anneal = max(1.0, config.temperature_anneal_fraction * self.total_steps)
        progress = min(1.0, step / anneal)
        log_t = math.log(config.temperature_start) + progress * (
            math.log(config.temperature_end) - math.log(config.temperature_start)
        )
        return math.exp(log_t)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    steps: int
    epochs: int
    seconds: float
    last_epoch_metrics: dict
    rank: int = 0  # this process's rank under torchrun (0 when training alone)


def make_optimizer(model: Model, config: TrainConfig) -> torch.optim.Optimizer:
    optimizers = {"adamax": torch.optim.Adamax, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if config.optimizer not in optimizers:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; expected one of {sorted(optimizers)}")
    return optimizers[config.optimizer](
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


def warm_start_steps(config: TrainConfig, step: int) -> int:
    """The batch's warm-start length W ~ Uniform{0..warm_start_max}, a pure function of (seed, step)."""
    if config.warm_start_max == 0:
        return 0
    generator = torch.Generator().manual_seed(config.seed * EPOCH_SEED_STRIDE + step + WARM_START_SEED_OFFSET)
    return int(torch.randint(config.warm_start_max + 1, (), generator=generator))


def _epoch_order(n_samples: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch)
    return torch.randperm(n_samples, generator=generator)  # [N]


class _TrainingLoss(nn.Module):
    """The model's loss as a forward pass, the call DistributedDataParallel hooks its gradient averaging on."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def forward(
        self, x: Tensor, n_steps: int, beta: float, temperature: float, generator: torch.Generator,
        shard: BatchShard | None, warm_start_steps: int = 0, lateral_l1: float = 0.0, legacy_numerics: bool = False,
        warm_start_prior_kl: bool = False,
    ) -> LossTerms:
        # only the iterative VAE takes these options (check_training_options refuses the rest)
        options = {"shard": shard} if shard is not None else {}
        if warm_start_steps:
            options["warm_start_steps"] = warm_start_steps
        if lateral_l1:
            options["lateral_l1"] = lateral_l1
        if legacy_numerics:
            options["legacy_numerics"] = legacy_numerics
        if warm_start_prior_kl:
            options["warm_start_prior_kl"] = warm_start_prior_kl
        return self.model.loss(x, n_steps, beta=beta, temperature=temperature, generator=generator, **options)


def check_training_options(config: RunConfig, group: DataParallel) -> None:
    """Refuse, in one line, the combinations the loss functions do not support."""
    iterative = config.model.kind == "iterative"
    if config.train.warm_start_max and not iterative:
        raise IpvaeError(f"warm_start_max needs an iterative model, not kind {config.model.kind!r}")
    if group.world_size > 1 and not iterative:
        raise IpvaeError(f"data-parallel training (torchrun) supports the iterative models only, not {config.model.kind!r}")
    if config.train.lateral_l1 and not iterative:
        raise IpvaeError(f"lateral_l1 needs an iterative model, not kind {config.model.kind!r}")
    if config.train.warm_start_prior_kl and not config.train.warm_start_max:
        raise IpvaeError("warm_start_prior_kl changes the KL after a warm start: it needs warm_start_max > 0")
    if config.train.legacy_numerics and not iterative:
        raise IpvaeError(f"legacy_numerics applies to the iterative models only, not kind {config.model.kind!r}")
    if group.world_size > 1 and config.train.warm_start_max:
        raise IpvaeError("warm_start_max is single-process only: its exact draws are not sliced from a global draw")


def training_device(config: TrainConfig, group: DataParallel) -> torch.device:
    """The device a run trains on: the config's for a single process, the process group's under torchrun."""
    if group.world_size > 1:
        return group.device
    if config.device == "cuda" and not torch.cuda.is_available():
        raise IpvaeError("device 'cuda' was asked for, but torch sees no CUDA GPU here; train with --device cpu")
    return torch.device(config.device)


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Train a model described by ``config`` into ``run_dir`` (or continue it with ``resume``).

    ``max_steps`` stops (with a checkpoint) once the run has reached that many optimisation steps, so a
    long run can be done in slices: resuming is bit-identical to an uninterrupted run. Resuming with a
    config of another ``epochs`` recomputes the schedules for the new length from the saved step on.
    Under torchrun the processes share each global batch (see ``ipvae.train.distributed``).
    """
    with data_parallel_from_environment() as group:
        return _train(config, Path(run_dir), group, resume, show_progress, max_steps)


def _train(
    config: RunConfig,
    run_dir: Path,
    group: DataParallel,
    resume: bool,
    show_progress: bool | None,
    max_steps: int | None,
) -> TrainResult:
    tc = config.train
    check_training_options(config, group)
    device = training_device(tc, group)
    local_batch_size = group.local_batch_size(tc.batch_size)
    shard = group.shard(tc.batch_size)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    x_train, _ = get_dataset(tc.data, "train", data_dir=tc.data_dir, seed=tc.seed, limit=tc.train_limit)
    x_train = x_train.reshape(x_train.shape[0], -1).float()  # [N, M]
    if x_train.shape[1] != config.model.n_inputs:
        raise IpvaeError(
            f"dataset {tc.data!r} has {x_train.shape[1]} inputs, the model expects {config.model.n_inputs}"
        )
    if not torch.isfinite(x_train).all():
        raise IpvaeError(f"the training data {tc.data!r} contains NaN or Inf values")
    x_train = x_train.to(device)
    n_samples = x_train.shape[0]
    batches_per_epoch = n_samples // tc.batch_size
    if batches_per_epoch == 0:
        raise IpvaeError(f"batch size {tc.batch_size} exceeds the {n_samples} training samples")
    total_steps = batches_per_epoch * tc.epochs
    stop_step = total_steps if max_steps is None else min(total_steps, max_steps)
    schedules = Schedules(tc, total_steps)

    sampling = torch.Generator(device=device).manual_seed(tc.seed)  # draws where the tensors live
    model = build_model(config.model, generator=torch.Generator().manual_seed(tc.seed))
    model.to(device)
    optimizer = make_optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules.learning_rate_factor)
    step = 0
    if tc.init_from is not None and not resume:
        initial = load_run(tc.init_from)
        architecture = ("kind", "family", "n_inputs", "n_latents")
        if any(getattr(initial.config.model, name) != getattr(config.model, name) for name in architecture):
            raise IpvaeError(f"init_from {tc.init_from}: its {'/'.join(architecture)} differ from this run's")
        model.load_state_dict(initial.model.state_dict())
    # Kept in the train state so that a resumed epoch reports the same averages as an uninterrupted one.
    epoch_sums = dict.fromkeys(METRIC_NAMES, 0.0)
    epoch_lines: list[dict] = []
    if resume:
        state = load_train_state(run_dir)
        try:
            model.load_state_dict(state.model)
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
            sampling.set_state(state.sampling_generator)
            epoch_sums = {name: float(state.progress.get("epoch_sums", {}).get(name, 0.0)) for name in METRIC_NAMES}
            epoch_lines = list(state.progress.get("epoch_lines", []))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"the train state in {run_dir} does not fit this run ({type(error).__name__}: {str(error)[:200]})"
            ) from None
        step = state.step
    training_loss = group.wrap(_TrainingLoss(model))
    run_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:
        # Rank 0 writes. The train state (one atomic file) is what a resume reads; the weights file follows it.
        if not group.is_main:
            return
        save_train_state(
            run_dir,
            TrainState(
                step=step,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                sampling_generator=sampling.get_state(),
                progress={"epoch_sums": epoch_sums, "epoch_lines": epoch_lines},
            ),
        )
        save_run(run_dir, config, model, step=step)
        with atomic_path(run_dir / METRICS_FILE) as temporary:
            temporary.write_text("".join(json.dumps(line) + "\n" for line in epoch_lines))

    if show_progress is None:
        show_progress = sys.stderr.isatty()
    show_progress = show_progress and group.is_main
    started = time.perf_counter()
    epoch_metrics: dict = epoch_lines[-1] if epoch_lines else {}
    model.train()
    progress = tqdm(total=total_steps, initial=step, disable=not show_progress, unit="batch", dynamic_ncols=True)
    try:
        while step < stop_step:
            epoch, first_batch = divmod(step, batches_per_epoch)
            order = _epoch_order(n_samples, tc.seed, epoch)
            if first_batch == 0:
                epoch_sums = dict.fromkeys(METRIC_NAMES, 0.0)
            last_batch = min(batches_per_epoch, first_batch + stop_step - step)
            for batch_index in range(first_batch, last_batch):
                first_row = batch_index * tc.batch_size + group.rank * local_batch_size
                x = x_train[order[first_row : first_row + local_batch_size]]  # [B / world, M] this rank's rows
                try:
                    terms = training_loss(
                        x, tc.t_train, beta=schedules.beta(step), temperature=schedules.temperature(step),
                        generator=sampling, shard=shard, warm_start_steps=warm_start_steps(tc, step),
                        lateral_l1=tc.lateral_l1, legacy_numerics=tc.legacy_numerics,
                        warm_start_prior_kl=tc.warm_start_prior_kl,
                    )
                except ValueError as error:  # torch.distributions refuses a NaN rate: the state diverged
                    raise _diverged(step, epoch, run_dir, cause=error) from None
                optimizer.zero_grad(set_to_none=True)
                terms.objective.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                local_values = torch.stack(
                    [terms.total.detach(), terms.nll.detach(), terms.kl.detach(), terms.mse_per_pixel, terms.zeros]
                )  # [5] means over this rank's rows
                values = dict(zip(METRIC_NAMES, group.mean(local_values).tolist()))  # global-batch means
                if not (math.isfinite(values["loss"]) and torch.isfinite(grad_norm)):
                    raise _diverged(step, epoch, run_dir)
                optimizer.step()
                model.project_parameters()
                if not _parameters_finite(model):
                    raise _diverged(step, epoch, run_dir)
                scheduler.step()
                step += 1
                epoch_sums = {name: epoch_sums[name] + values[name] for name in METRIC_NAMES}
                progress.update(1)
                progress.set_postfix(
                    loss=f"{values['loss']:.1f}", mse=f"{values['mse_per_pixel']:.4f}", zeros=f"{values['zeros']:.2f}"
                )
                if step % tc.checkpoint_every_steps == 0 and last_batch - 1 != batch_index:
                    checkpoint()
            if last_batch == batches_per_epoch:  # a finished epoch gets its line; a slice's partial one waits
                epoch_metrics = {
                    "epoch": epoch + 1,
                    "step": step,
                    "seconds": round(time.perf_counter() - started, 2),
                    "beta": schedules.beta(step - 1),
                    "temperature": schedules.temperature(step - 1),
                    **{name: total / batches_per_epoch for name, total in epoch_sums.items()},
                }
                epoch_lines.append(epoch_metrics)
                if group.is_main and not show_progress:
                    print(json.dumps(epoch_metrics), flush=True)
            checkpoint()
    finally:
        progress.close()
    return TrainResult(
        run_dir=run_dir,
        steps=step,
        epochs=tc.epochs,
        seconds=time.perf_counter() - started,
        last_epoch_metrics=epoch_metrics,
        rank=group.rank,
    )


def _parameters_finite(model: Model) -> bool:
    return bool(torch.stack([torch.isfinite(parameter).all() for parameter in model.parameters()]).all())


def _diverged(step: int, epoch: int, run_dir: Path, cause: Exception | None = None) -> TrainingDiverged:
    detail = "" if cause is None else f" ({type(cause).__name__}: {str(cause).splitlines()[0][:120]})"
    return TrainingDiverged(
        f"loss, gradient or weights became NaN/Inf at step {step} (epoch {epoch}){detail}; "
        f"the last good checkpoint in {run_dir} is kept"
    )
