"""The models the experiments compare: one entry each in :data:`MODELS`, trained once and reused.

Adding a model is one ``ModelEntry``: its ``preset`` names a model configuration of
``ipvae.train.baselines.presets.MODEL_PRESETS`` (any model ``ipvae train`` accepts); ``model_overrides`` /
``train_overrides`` change its ModelConfig / TrainConfig beyond the shared budget; ``sweep`` names the
knob the natural-patch rate-distortion sweep turns (the KL weight beta, or sparse coding's lambda). Runs live in ``RESULTS/models/DATA/NAME[-beta B]/seed S`` and are
reused when complete (a ``done.json`` marker) or resumed when interrupted (``train_state.safetensors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ipvae.paper.budget import Budget
from ipvae.errors import IpvaeError
from ipvae.fileio import write_json

DONE_FILE = "done.json"
MODELS_DIR = "models"


@dataclass(frozen=True)
class Sweep:
    """The natural-patch sweep's knob: the field ``name`` of the TrainConfig (section "train") or of the
    model's options (section "options", e.g. sparse coding's lambda) set to ``scale`` times each of the
    budget's natural_betas."""

    section: str
    name: str
    scale: float = 1.0


BETA_SWEEP = Sweep("train", "beta")
LAMBDA_SWEEP = Sweep("options", "sparsity", scale=0.1)  # lambda = 0.1 (the presets' value) at the sweep's beta = 1


@dataclass(frozen=True)
class ModelEntry:
    """A model of the comparison.  paper_key: its row in ipvae.paper.published (None: not in the paper)."""

    name: str
    label: str
    preset: str
    paper_key: str | None = None
    exportable: bool = False  # the integer export and Lava path exist for this model
    model_overrides: dict = field(default_factory=dict)
    train_overrides: dict = field(default_factory=dict)
    sweep: Sweep = BETA_SWEEP


MODELS: tuple[ModelEntry, ...] = (
    # The shipped model's fixes (pretrained/README.md): the clamp at u = 4 near log(15 counts), hard as the integer
    # export saturates, and warm-start training that scores steps W+1..W+T_train (W <= 64) of the unrolled loop.
    ModelEntry("ipvae", "iP-VAE", "ip_vae", paper_key="ipvae", exportable=True,
               model_overrides=dict(u_max=4.0, hard_upper_clamp=True), train_overrides=dict(warm_start_max=64)),
    ModelEntry("igvae", "iG-VAE", "ig_vae", paper_key="igvae"),
    ModelEntry("igrelu", "iG_relu-VAE", "ig_relu_vae", paper_key="igrelu"),
    ModelEntry("pvae_conv", "amortized P-VAE (conv)", "amortized_poisson_conv", paper_key="pvae_conv"),
    ModelEntry("gvae_conv", "amortized G-VAE (conv)", "amortized_gaussian_conv", paper_key="gvae_conv"),
    ModelEntry("lca", "LCA sparse coding", "lca", paper_key="lca", sweep=LAMBDA_SWEEP),
    ModelEntry("pc", "predictive coding", "predictive_coding", paper_key="pc", sweep=LAMBDA_SWEEP),
    ModelEntry("iai", "iterative amortized (Marino)", "iterative_amortized"),
)

MODELS_BY_NAME = {entry.name: entry for entry in MODELS}


def select_models(names: list[str] | None) -> tuple[ModelEntry, ...]:
    if not names:
        return MODELS
    unknown = [name for name in names if name not in MODELS_BY_NAME]
    if unknown:
        raise IpvaeError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS_BY_NAME)}")
    return tuple(MODELS_BY_NAME[name] for name in names)


@dataclass(frozen=True)
class TrainedModel:
    entry: ModelEntry
    seed: int
    run_dir: Path
    model: object  # ipvae.train.model.IterativeVAE
    config: object  # ipvae.train.config.RunConfig
    train_seconds: float


def run_config(entry: ModelEntry, budget: Budget, seed: int, data: str, beta: float | None = None):
    """The RunConfig of one model, data set and seed under the budget (``beta``: the sweep's value)."""
    from ipvae.train.baselines.presets import MODEL_PRESETS
    from ipvae.train.config import ModelConfig, RunConfig, TrainConfig
    from ipvae.data import image_shape

    height, width = image_shape(data)
    is_natural = data == "natural_patches"
    train_values = dict(
        data=data,
        epochs=budget.natural_epochs if is_natural else budget.epochs,
        batch_size=budget.batch_size,
        t_train=budget.t_train,
        train_limit=budget.natural_train_limit if is_natural else budget.train_limit,
        seed=seed,
        **entry.train_overrides,
    )
    if entry.preset not in MODEL_PRESETS:
        raise IpvaeError(f"model {entry.name!r}: unknown preset {entry.preset!r}")
    model_values = dict(MODEL_PRESETS[entry.preset], n_inputs=height * width, n_latents=budget.n_latents,
                        **entry.model_overrides)
    if beta is not None and entry.sweep.section == "train":
        train_values[entry.sweep.name] = entry.sweep.scale * beta
    elif beta is not None:
        model_values["options"] = {**model_values.get("options", {}), entry.sweep.name: entry.sweep.scale * beta}
    try:
        return RunConfig(model=ModelConfig.from_dict(model_values), train=TrainConfig(**train_values))
    except (TypeError, ValueError) as error:
        raise IpvaeError(f"model {entry.name!r}: invalid configuration ({error})") from None


def run_directory(results_dir: Path, entry: ModelEntry, seed: int, data: str, beta: float | None = None) -> Path:
    name = entry.name if beta is None else f"{entry.name}-{entry.sweep.name}{entry.sweep.scale * beta:g}"
    return Path(results_dir) / MODELS_DIR / data / name / f"seed{seed}"


def ensure_trained(results_dir: Path, entry: ModelEntry, budget: Budget, seed: int, *, data: str = "mnist",
                   beta: float | None = None, log=print) -> TrainedModel:
    """Load the model if its run is complete, resume it if interrupted, else train it."""
    from ipvae.train.checkpoint import TRAIN_STATE_FILE, load_config, load_run
    from ipvae.train.trainer import train

    config = run_config(entry, budget, seed, data, beta)
    run_dir = run_directory(results_dir, entry, seed, data, beta)
    done_path = run_dir / DONE_FILE
    started_before = (run_dir / "config.json").is_file()
    if started_before and load_config(run_dir) != config:
        raise IpvaeError(f"{run_dir} holds a run with another configuration (another budget?); "
                         "use another --out or delete that directory")
    if not done_path.is_file():
        resume = (run_dir / TRAIN_STATE_FILE).is_file()
        log(f"{'resuming' if resume else 'training'} {entry.label} on {data} (seed {seed}) in {run_dir}")
        train(config, run_dir, resume=resume, show_progress=False)
        write_json(done_path, {"train_seconds": training_seconds(run_dir)})
    seconds = float(json.loads(done_path.read_text())["train_seconds"])
    loaded = load_run(run_dir)
    return TrainedModel(entry, seed, run_dir, loaded.model, loaded.config, seconds)


def training_seconds(run_dir: Path) -> float:
    """Wall seconds of a run's training, summed over its invocations (an interrupted run resumed).

    Each line of metrics.jsonl holds the seconds since its invocation started, so an invocation ends
    where the next line's seconds drop; the time lost after an interruption's last epoch is not counted.
    """
    from ipvae.train.trainer import METRICS_FILE

    seconds = [json.loads(line)["seconds"] for line in (run_dir / METRICS_FILE).read_text().splitlines() if line]
    ends = [value for value, following in zip(seconds, seconds[1:] + [0.0]) if following <= value]
    return float(sum(ends))
