"""The one table from a config's ``kind`` to its model, and the interface every model satisfies.

``ipvae train`` / ``ipvae eval``, the trainer, the checkpoint loader and the evaluation only use the
``Model`` protocol, so every baseline runs through the same commands and the same metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ipvae.train.baselines.amortized import AmortizedVAE
from ipvae.train.baselines.iterative_amortized import IterativeAmortizedVAE
from ipvae.train.baselines.predictive_coding import PredictiveCoding
from ipvae.train.baselines.sparse_coding import SparseCoder
from ipvae.train.config import ModelConfig
from ipvae.train.model import IterativeVAE, LossTerms, StepOutput, Trajectory


@runtime_checkable
class Model(Protocol):
    """What training and evaluation need from a model (an ``nn.Module`` owning its tensors).

    iterate(x [B, M], n_steps) yields StepOutput(u [B, K], z [B, K], recon [B, M], kl [B], state) for
    t = 1..n_steps; trajectory stacks them. loss(...) is the scalar objective of one batch.
    features(step) [B, K] are the probe features; mean_reconstruction(step) [B, M] decodes the
    posterior mean (or the code itself for deterministic codes). phi [M, K] is the linear dictionary;
    pixel_precision() [M] is D = 1/sigma^2 of the pixel likelihood (ones for energy-based models).
    project_parameters() applies constraints after each optimiser step (e.g. unit-norm atoms).
    """

    config: ModelConfig
    phi: Tensor

    @property
    def n_params(self) -> int: ...

    def iterate(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Iterator[StepOutput]: ...

    def trajectory(
        self, x: Tensor, n_steps: int, *, temperature: float = 0.0, generator: torch.Generator | None = None
    ) -> Trajectory: ...

    def loss(
        self, x: Tensor, n_steps: int, *, beta: float, temperature: float, generator: torch.Generator | None = None
    ) -> LossTerms: ...

    def features(self, step: StepOutput) -> Tensor: ...

    def mean_reconstruction(self, step: StepOutput) -> Tensor: ...

    def macs_per_inference(self, n_steps: int) -> int: ...

    def pixel_precision(self) -> Tensor: ...

    def project_parameters(self) -> None: ...


MODEL_BUILDERS: dict[str, Callable[..., Model]] = {
    "iterative": IterativeVAE,
    "amortized": AmortizedVAE,
    "sparse_coding": SparseCoder,
    "predictive_coding": PredictiveCoding,
    "iterative_amortized": IterativeAmortizedVAE,
}


def build_model(config: ModelConfig, generator: torch.Generator | None = None) -> Model:
    """The model a config describes, initialised from ``generator``."""
    return MODEL_BUILDERS[config.kind](config, generator=generator)
