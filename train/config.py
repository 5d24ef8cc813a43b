"""Frozen configuration dataclasses, saved as ``config.json`` beside every checkpoint.

Configs are plain values: they never touch the disk or seed anything themselves. ``RunConfig`` is the
pair (model, training) that fully describes a run; ``to_dict``/``from_dict`` round-trip it through
JSON and reject unknown or missing fields with a clear message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ipvae.errors import CheckpointError

FAMILIES = ("poisson", "gaussian", "gaussian_relu")
# Model kinds: the keys of train.registry.MODEL_BUILDERS (kept here so configs validate without torch models).
KINDS = ("iterative", "amortized", "sparse_coding", "predictive_coding", "iterative_amortized")
ENCODERS = ("linear", "mlp", "conv")
SPARSE_ALGORITHMS = ("lca", "ista", "fista")


@dataclass(frozen=True)
class ModelConfig:
    """The iterative VAE's architecture and initialisation.

    kind: which model (one of KINDS): "iterative" (iP-VAE and its Gaussian relatives, the default),
        "amortized" (encoder network, one pass), "sparse_coding" (LCA / ISTA / FISTA),
        "predictive_coding" (Rao & Ballard; incremental PC), "iterative_amortized" (Marino et al.).
    family: "poisson" (iP-VAE), "gaussian" (iG-VAE) or "gaussian_relu" (iG_relu-VAE); for
        "amortized" the posterior family of the encoder; ignored by the other kinds.
    n_inputs: M, pixels per image.  n_latents: K, neurons.
    max_spike_count: cap on a neuron's spike count per step (the graded-spike payload on hardware;
        the relaxed sampler draws this many arrival times).
    u_min / u_max: hard lower clamp / soft upper clamp of the membrane potential u = log rate.
    log_sigma_bound: log sigma is soft-clamped to +-bound by bound * tanh(s / bound).
    init_log_lr: initial log step size; None derives it from init_lateral_gain, the initial
        self-inhibition lr * W_kk = lr * M * init_phi_std^2 / sigma_0^2, so that the iteration starts
        stable (well below 1) whatever the input size: -4.06 for MNIST's M = 784.

    Baseline fields (ignored by the kinds that do not use them):
    encoder: "linear", "mlp" or "conv" (amortized).  hidden_size: width of the MLP encoder's hidden
        layers and of the iterative-amortized refiner.  conv_channels: channels of the conv encoder's
        first layer (doubled at each of its two stride-2 layers).
    sparse_algorithm: "lca", "ista" or "fista".  sparsity: lambda, the L1 weight of sparse coding (and
        the L1 prior weight of predictive coding).  nonnegative: codes >= 0 (else signed).
    inference_rate: step size of sparse coding / predictive coding inference as a fraction of the
        stable step 1/L, L = ||Phi||_2^2 (+ prior precision); LCA: dt/tau.
    prior_precision: Gaussian prior precision of predictive coding's latents.
    incremental: predictive coding only; update the dictionary at every inference step (iPC).
    incremental_rate: iPC's per-step dictionary learning rate.
    """

    kind: str = "iterative"
    family: str = "poisson"
    n_inputs: int = 784
    n_latents: int = 512
    max_spike_count: int = 15
    u_min: float = -8.0
    u_max: float = 10.0
    log_sigma_bound: float = 3.45
    init_phi_std: float = 0.05
    init_log_sigma: float = -1.0
    init_log_b: float = -3.0
    init_log_lr: float | None = None
    init_lateral_gain: float = 0.25
    init_u_prior_low: float = -6.0
    init_u_prior_high: float = -4.0
    encoder: str = "linear"
    hidden_size: int = 512
    conv_channels: int = 32
    sparse_algorithm: str = "lca"
    sparsity: float = 0.1
    nonnegative: bool = True
    inference_rate: float = 0.5
    prior_precision: float = 0.0
    incremental: bool = False
    incremental_rate: float = 1e-3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {KINDS}")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; expected one of {FAMILIES}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; expected one of {ENCODERS}")
        if self.sparse_algorithm not in SPARSE_ALGORITHMS:
            raise ValueError(f"unknown sparse_algorithm {self.sparse_algorithm!r}; expected one of {SPARSE_ALGORITHMS}")
        if self.hidden_size <= 0 or self.conv_channels <= 0:
            raise ValueError("hidden_size and conv_channels must be positive")
        if self.sparsity < 0 or self.prior_precision < 0 or self.incremental_rate < 0:
            raise ValueError("sparsity, prior_precision and incremental_rate must be non-negative")
        if not 0 < self.inference_rate <= 2:
            raise ValueError("inference_rate must be in (0, 2] (a fraction of the stable step 1/L)")
        if self.n_inputs <= 0 or self.n_latents <= 0 or self.max_spike_count <= 0:
            raise ValueError("n_inputs, n_latents and max_spike_count must be positive")
        if not self.u_min < self.u_max:
            raise ValueError("u_min must be below u_max")


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe (defaults: the paper's MNIST recipe, shortened to fit a 2-core CPU budget).

    beta: KL weight, held at beta_start for beta_hold_fraction of the steps, then linear to beta
        over beta_ramp_fraction.  temperature: relaxed-Poisson temperature, annealed geometrically
        from temperature_start to temperature_end over temperature_anneal_fraction of the steps.
    """

    data: str = "mnist"
    data_dir: str | None = None
    train_limit: int | None = None
    epochs: int = 20
    batch_size: int = 100
    t_train: int = 16
    learning_rate: float = 3e-3
    learning_rate_min: float = 1e-5
    warmup_fraction: float = 0.005
    weight_decay: float = 0.0
    optimizer: str = "adamax"
    grad_clip: float = 3000.0
    beta: float = 1.0
    beta_start: float = 1e-4
    beta_hold_fraction: float = 0.001
    beta_ramp_fraction: float = 0.1
    temperature_start: float = 1.0
    temperature_end: float = 0.01
    temperature_anneal_fraction: float = 0.5
    seed: int = 0
    checkpoint_every_steps: int = 200
    num_threads: int | None = None


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        try:
            return cls(model=_build(ModelConfig, data["model"]), train=_build(TrainConfig, data["train"]))
        except KeyError as error:
            raise CheckpointError(f"config.json lacks the section {error}") from None
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"config.json is invalid: {error}") from None


def _build(config_type: type, values: Any):
    if not isinstance(values, dict):
        raise TypeError(f"{config_type.__name__} must be a JSON object")
    known = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"{config_type.__name__} has no field(s) {', '.join(unknown)}")
    return config_type(**values)


def replace(config, **changes):
    """dataclasses.replace that ignores ``None`` values (handy for CLI overrides)."""
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
