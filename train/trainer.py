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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ipvae.errors import CheckpointError, IpvaeError, TrainingDiverged
from ipvae.fileio import atomic_path
from ipvae.train.checkpoint import ResumeTemplate, TrainState, load_run, load_train_state, save_run, save_train_state
from ipvae.train.config import RunConfig, TrainConfig, phase_at
from ipvae.data import INPUT_FILE, get_dataset, run_preparation, run_split
from ipvae.fileio import write_json
from ipvae.images import is_file_source
from ipvae.train.distributed import DataParallel, data_parallel_from_environment
from ipvae.train.distributions import BatchShard
from ipvae.train.inference import poisson
from ipvae.train.model import LossTerms
from ipvae.train.reference_loss import legacy_loss
from ipvae.train.registry import Model, build_model

METRICS_FILE = "metrics.jsonl"
VALIDATION_IMAGES_MAX = 1000  # held-out rows scored after each epoch
VALIDATION_SEED = 0  # the validation inference's own generator: training draws are untouched
VALIDATION_METRICS = ("r2", "zeros", "mse_per_pixel")
METRIC_NAMES = ("loss", "nll", "kl", "mse_per_pixel", "zeros")
EPOCH_SEED_STRIDE = 1_000_003
WARM_START_SEED_OFFSET = 7_919  # separates the warm-start draws' seeds from the epoch orders'


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


def warm_start_steps(config: TrainConfig, step: int, maximum: int | None = None) -> int:
    """The batch's warm-start length W ~ Uniform{0..maximum} (default: warm_start_max), a pure function of
    (seed, step)."""
    maximum = config.warm_start_max if maximum is None else maximum
    if maximum == 0:
        return 0
    generator = torch.Generator().manual_seed(config.seed * EPOCH_SEED_STRIDE + step + WARM_START_SEED_OFFSET)
    return int(torch.randint(maximum + 1, (), generator=generator))


def _epoch_order(n_samples: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch)
    return torch.randperm(n_samples, generator=generator)  # [N]


class _TrainingLoss(nn.Module):
    """The model's loss as a forward pass, the call DistributedDataParallel hooks its gradient averaging on.
    ``legacy_numerics``: the iterative VAE's loss as runs trained before the fast path computed it."""

    def __init__(self, model: Model, legacy_numerics: bool = False):
        super().__init__()
        self.model = model
        self.loss_function = partial(legacy_loss, model) if legacy_numerics else model.loss

    def forward(
        self, x: Tensor, n_steps: int, beta: float, temperature: float, generator: torch.Generator,
        shard: BatchShard | None, warm_start_steps: int = 0, lateral_l1: float = 0.0,
        warm_start_prior_kl: bool = False,
    ) -> LossTerms:
        # only the iterative VAE takes these options (check_training_options refuses the rest)
        options = {"shard": shard} if shard is not None else {}
        if warm_start_steps:
            options["warm_start_steps"] = warm_start_steps
        if lateral_l1:
            options["lateral_l1"] = lateral_l1
        if warm_start_prior_kl:
            options["warm_start_prior_kl"] = warm_start_prior_kl
        return self.loss_function(x, n_steps, beta=beta, temperature=temperature, generator=generator, **options)


def check_training_options(config: RunConfig, group: DataParallel) -> None:
    """Refuse, in one line, the combinations the loss functions do not support."""
    iterative = config.model.kind == "iterative"
    phases = config.train.phases
    if any(phase.warm_start_max or phase.lateral_l1 for phase in phases) and not iterative:
        raise IpvaeError(f"the phases' warm start and lateral L1 need an iterative model, not kind {config.model.kind!r}"
                         " (train it with --recipe plain)")
    if group.world_size > 1 and any(phase.warm_start_max for phase in phases):
        raise IpvaeError("a phase with warm_start_max is single-process only: its exact draws are not sliced")
    if config.train.warm_start_max and not iterative:
        raise IpvaeError(f"warm_start_max needs an iterative model, not kind {config.model.kind!r}")
    if group.world_size > 1 and not iterative:
        raise IpvaeError(f"data-parallel training (torchrun) supports the iterative models only, not {config.model.kind!r}")
    if config.train.lateral_l1 and not iterative:
        raise IpvaeError(f"lateral_l1 needs an iterative model, not kind {config.model.kind!r}")
    if config.train.warm_start_prior_kl and not (config.train.warm_start_max
                                                 or any(phase.warm_start_max for phase in phases)):
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


@dataclass
class _Progress:
    """Where a run stands: optimisation steps done, the running epoch's metric sums (kept in the train
    state, so a resumed epoch reports the same averages as an uninterrupted one) and the finished epochs'
    lines of metrics.jsonl."""

    step: int = 0
    epoch_sums: dict = field(default_factory=lambda: dict.fromkeys(METRIC_NAMES, 0.0))
    epoch_lines: list = field(default_factory=list)


@dataclass(frozen=True)
class _Session:
    """Everything one training invocation works with, built by ``_start_session``."""

    config: RunConfig
    run_dir: Path
    group: DataParallel
    local_batch_size: int  # this rank's rows of each global batch
    shard: BatchShard | None  # which rows they are (None when training alone)
    x_train: Tensor  # [N, M] on the training device
    batches_per_epoch: int
    schedules: Schedules
    model: Model
    training_loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampling: torch.Generator
    x_validation: Tensor | None  # [V, M] held-out rows scored after each epoch (a user's own set), or None


def _train(
    config: RunConfig,
    run_dir: Path,
    group: DataParallel,
    resume: bool,
    show_progress: bool | None,
    max_steps: int | None,
) -> TrainResult:
    check_training_options(config, group)
    session, progress = _start_session(config, run_dir, group, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    if group.is_main and not (run_dir / INPUT_FILE).exists():
        write_json(run_dir / INPUT_FILE, run_preparation(config.train).to_dict())
    total_steps = session.schedules.total_steps
    stop_step = total_steps if max_steps is None else min(total_steps, max_steps)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    show_progress = show_progress and group.is_main
    started = time.perf_counter()
    session.model.train()
    bar = tqdm(total=total_steps, initial=progress.step, disable=not show_progress, unit="batch", dynamic_ncols=True)
    try:
        while progress.step < stop_step:
            _run_epoch_until(session, progress, stop_step, bar, started, print_lines=group.is_main and not show_progress)
            _checkpoint(session, progress)
    finally:
        bar.close()
    return TrainResult(
        run_dir=run_dir,
        steps=progress.step,
        epochs=config.train.epochs,
        seconds=time.perf_counter() - started,
        last_epoch_metrics=progress.epoch_lines[-1] if progress.epoch_lines else {},
        rank=group.rank,
    )


def _start_session(config: RunConfig, run_dir: Path, group: DataParallel, resume: bool) -> tuple[_Session, _Progress]:
    """The data on the device, the schedules, and the model with its optimiser, all from the config's seed,
    then the weights of init_from or, resuming, the saved train state; the model is wrapped for
    data-parallel training last, once its weights are final."""
    tc = config.train
    device = training_device(tc, group)
    local_batch_size, shard = group.local_batch_size(tc.batch_size), group.shard(tc.batch_size)
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    x_train = _training_data(config, device)  # [N, M]
    x_validation = _validation_data(config, device)  # [V, M] or None
    batches_per_epoch = x_train.shape[0] // tc.batch_size
    if batches_per_epoch == 0:
        raise IpvaeError(f"batch size {tc.batch_size} exceeds the {x_train.shape[0]} training samples")
    schedules = Schedules(tc, batches_per_epoch * tc.epochs)
    sampling = torch.Generator(device=device).manual_seed(tc.seed)  # draws where the tensors live
    model = build_model(config.model, generator=torch.Generator().manual_seed(tc.seed))
    model.to(device)
    optimizer = make_optimizer(model, tc)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules.learning_rate_factor)
    if tc.init_from is not None and not resume:
        _initialise_from(model, config)
    progress = _restore(run_dir, model, optimizer, scheduler, sampling, schedules.total_steps) if resume else _Progress()
    training_loss = group.wrap(_TrainingLoss(model, legacy_numerics=tc.legacy_numerics))
    session = _Session(config, run_dir, group, local_batch_size, shard, x_train, batches_per_epoch, schedules, model, training_loss, optimizer,
                       scheduler, sampling, x_validation)
    return session, progress


def _training_data(config: RunConfig, device: torch.device) -> Tensor:
    """The training images as [N, M] floats on ``device``; a wrong size or a NaN is refused in one line."""
    tc = config.train
    if is_file_source(tc.data):  # the user's own images (ipvae.data.user_sets)
        x_train = run_split(tc, "train")  # [N, M]
    else:
        x_train, _ = get_dataset(tc.data, "train", data_dir=tc.data_dir, seed=tc.seed, limit=tc.train_limit)
        x_train = x_train.reshape(x_train.shape[0], -1).float()  # [N, M]
    if x_train.shape[1] != config.model.n_inputs:
        raise IpvaeError(
            f"dataset {tc.data!r} has {x_train.shape[1]} inputs, the model expects {config.model.n_inputs}"
        )
    if not torch.isfinite(x_train).all():
        raise IpvaeError(f"the training data {tc.data!r} contains NaN or Inf values")
    return x_train.to(device)


def _validation_data(config: RunConfig, device: torch.device) -> Tensor | None:
    """The held-out rows of a user's own set (the first VALIDATION_IMAGES_MAX), or None for a named set."""
    if not is_file_source(config.train.data):
        return None
    x_validation = run_split(config.train, "test", limit=VALIDATION_IMAGES_MAX)  # [V, M]
    if x_validation.shape[0] == 0:
        return None
    if x_validation.shape[1] != config.model.n_inputs or not torch.isfinite(x_validation).all():
        raise IpvaeError(f"the validation data has {x_validation.shape[1]} inputs or NaN/Inf values; the model "
                         f"expects {config.model.n_inputs} finite inputs")
    return x_validation.to(device)


def _validation_metrics(session: _Session) -> dict:
    """R^2, zeros and MSE of the held-out rows after T_train exact inference steps (their own generator)."""
    from ipvae.train.evaluate import EvalSettings, run_inference

    if session.x_validation is None:
        return {}
    settings = EvalSettings(t_test=session.config.train.t_train, seed=VALIDATION_SEED, decode_rates=False)
    session.model.eval()
    try:
        with torch.no_grad():
            metrics, _, _ = run_inference(session.model, session.x_validation.cpu(), settings)
    finally:
        session.model.train()
    return {f"val_{name}": metrics[name] for name in VALIDATION_METRICS}


def _initialise_from(model: Model, config: RunConfig) -> None:
    """TrainConfig.init_from: start from another run's weights (same architecture), with a fresh optimiser."""
    init_from = config.train.init_from
    initial = load_run(init_from)
    architecture = ("kind", "family", "n_inputs", "n_latents")
    if any(getattr(initial.config.model, name) != getattr(config.model, name) for name in architecture):
        raise IpvaeError(f"init_from {init_from}: its {'/'.join(architecture)} differ from this run's")
    model.load_state_dict(initial.model.state_dict())
    tc = config.train
    if tc.init_start_u is not None or tc.init_leak_target_offset != 0.0:
        _move_start(model, config)


def _move_start(model: Model, config: RunConfig) -> None:
    """TrainConfig.init_start_u / init_leak_target_offset: rewrite u_prior and b of the initial weights."""
    if config.model.kind != "iterative" or config.model.family != "poisson" or not config.model.leak:
        raise IpvaeError("init_start_u / init_leak_target_offset need an iterative Poisson model with a leak")
    with torch.no_grad():
        try:
            u_prior, bias = poisson.moved_start(model.inference_params(), config.train.init_start_u,
                                                config.train.init_leak_target_offset)  # [K], [K]
        except ValueError as error:
            raise IpvaeError(f"init_start_u / init_leak_target_offset: {error}") from None
        model.u_prior.copy_(u_prior)
        model.log_b.copy_(bias.log())


def _restore(run_dir: Path, model: Model, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LambdaLR, sampling: torch.Generator, total_steps: int) -> _Progress:
    """Continue the run in ``run_dir``: weights, optimiser, schedule, sampling generator, progress (each
    validated against this run's fresh ones and its length first)."""
    state = load_train_state(run_dir, ResumeTemplate(model, optimizer, scheduler, sampling, total_steps))
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
    return _Progress(step=state.step, epoch_sums=epoch_sums, epoch_lines=epoch_lines)


def _run_epoch_until(session: _Session, progress: _Progress, stop_step: int, bar: tqdm, started: float,
                     print_lines: bool) -> None:
    """The batches of the current epoch up to ``stop_step`` (checkpoints every checkpoint_every_steps on the
    way); a finished epoch appends its line of metrics."""
    tc, group, batches_per_epoch = session.config.train, session.group, session.batches_per_epoch
    epoch, first_batch = divmod(progress.step, batches_per_epoch)
    order = _epoch_order(session.x_train.shape[0], tc.seed, epoch)
    if first_batch == 0:
        progress.epoch_sums = dict.fromkeys(METRIC_NAMES, 0.0)
    last_batch = min(batches_per_epoch, first_batch + stop_step - progress.step)
    local_batch_size = session.local_batch_size
    for batch_index in range(first_batch, last_batch):
        first_row = batch_index * tc.batch_size + group.rank * local_batch_size
        x = session.x_train[order[first_row : first_row + local_batch_size]]  # [B / world, M] this rank's rows
        values = _train_batch(session, x, progress.step, epoch)
        progress.step += 1
        progress.epoch_sums = {name: progress.epoch_sums[name] + values[name] for name in METRIC_NAMES}
        bar.update(1)
        bar.set_postfix(loss=f"{values['loss']:.1f}", mse=f"{values['mse_per_pixel']:.4f}", zeros=f"{values['zeros']:.2f}")
        if progress.step % tc.checkpoint_every_steps == 0 and last_batch - 1 != batch_index:
            _checkpoint(session, progress)
    if last_batch == batches_per_epoch:  # a finished epoch gets its line; a slice's partial one waits
        line = _epoch_line(session, progress, epoch, time.perf_counter() - started)
        progress.epoch_lines.append(line)
        if print_lines:
            print(json.dumps(line), flush=True)


def _train_batch(session: _Session, x: Tensor, step: int, epoch: int) -> dict[str, float]:
    """One optimisation step on this rank's rows x [B / world, M]; the global-batch means of METRIC_NAMES.
    A NaN/Inf loss, gradient or weight stops the run (TrainingDiverged), the last checkpoint kept."""
    tc, schedules, model = session.config.train, session.schedules, session.model
    phase = phase_at(tc, step, schedules.total_steps)
    try:
        terms = session.training_loss(
            x, tc.t_train, beta=schedules.beta(step), temperature=schedules.temperature(step),
            generator=session.sampling, shard=session.shard,
            warm_start_steps=warm_start_steps(tc, step, phase.warm_start_max), lateral_l1=phase.lateral_l1,
            warm_start_prior_kl=tc.warm_start_prior_kl,
        )
    except ValueError as error:  # torch.distributions refuses a NaN rate: the state diverged
        raise _diverged(step, epoch, session.run_dir, cause=error) from None
    session.optimizer.zero_grad(set_to_none=True)
    terms.objective.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    local_values = torch.stack(
        [terms.total.detach(), terms.nll.detach(), terms.kl.detach(), terms.mse_per_pixel, terms.zeros]
    )  # [5] means over this rank's rows
    values = dict(zip(METRIC_NAMES, session.group.mean(local_values).tolist()))  # global-batch means
    if not (math.isfinite(values["loss"]) and torch.isfinite(grad_norm)):
        raise _diverged(step, epoch, session.run_dir)
    session.optimizer.step()
    model.project_parameters()
    if not _parameters_finite(model):
        raise _diverged(step, epoch, session.run_dir)
    session.scheduler.step()
    return values


def _epoch_line(session: _Session, progress: _Progress, epoch: int, seconds: float) -> dict:
    """The finished epoch's line of metrics.jsonl: schedules at its last step, metric means over its batches."""
    schedules, step = session.schedules, progress.step
    return {
        "epoch": epoch + 1,
        "step": step,
        "seconds": round(seconds, 2),
        "beta": schedules.beta(step - 1),
        "temperature": schedules.temperature(step - 1),
        **{name: total / session.batches_per_epoch for name, total in progress.epoch_sums.items()},
        **({"phase": _phase_index(session.config.train, step - 1, schedules.total_steps)} if session.config.train.phases else {}),
        **_validation_metrics(session),
    }


def _phase_index(config: TrainConfig, step: int, total_steps: int) -> int:
    return config.phases.index(phase_at(config, step, total_steps))


def _checkpoint(session: _Session, progress: _Progress) -> None:
    """Rank 0 writes. The train state (one atomic file) is what a resume reads; the weights file follows it."""
    if not session.group.is_main:
        return
    run_dir = session.run_dir
    save_train_state(
        run_dir,
        TrainState(
            step=progress.step,
            model=session.model.state_dict(),
            optimizer=session.optimizer.state_dict(),
            scheduler=session.scheduler.state_dict(),
            sampling_generator=session.sampling.get_state(),
            progress={"epoch_sums": progress.epoch_sums, "epoch_lines": progress.epoch_lines},
        ),
    )
    save_run(run_dir, session.config, session.model, step=progress.step)
    with atomic_path(run_dir / METRICS_FILE) as temporary:
        temporary.write_text("".join(json.dumps(line) + "\n" for line in progress.epoch_lines))


def _parameters_finite(model: Model) -> bool:
    return bool(torch.stack([torch.isfinite(parameter).all() for parameter in model.parameters()]).all())


def _diverged(step: int, epoch: int, run_dir: Path, cause: Exception | None = None) -> TrainingDiverged:
    detail = "" if cause is None else f" ({type(cause).__name__}: {str(cause).splitlines()[0][:120]})"
    return TrainingDiverged(
        f"loss, gradient or weights became NaN/Inf at step {step} (epoch {epoch}){detail}; "
        f"the last good checkpoint in {run_dir} is kept"
    )
