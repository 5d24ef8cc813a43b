"""The one table from a config's ``kind`` to the module that defines that model, and the interface every
model satisfies.

Each model module defines three names: ``MODEL`` (the ``nn.Module`` class, built as
``MODEL(config, generator=...)``), ``OPTIONS`` (the frozen dataclass of its own settings, carried in
``ModelConfig.options``, or None where the shared fields are all it needs) and ``PRESETS`` (named
configurations for side-by-side comparisons, ``ipvae.train.baselines.presets``). Adding a baseline is
that module plus one line in :data:`MODEL_MODULES`.

This module imports no torch: the command line lists the kinds without loading the models, and a kind's
module is imported the first time a config of that kind is built.

``ipvae train`` / ``ipvae eval``, the trainer, the checkpoint loader and the evaluation only use the
``Model`` protocol, so every baseline runs through the same commands and the same metrics.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing the registry must not import torch
    import torch
    from torch import Tensor

    from ipvae.train.config import ModelConfig
    from ipvae.train.model import LossTerms, StepOutput, Trajectory

# kind -> the module defining MODEL, OPTIONS and PRESETS (the order is the order of the preset table)
MODEL_MODULES: dict[str, str] = {
    "iterative": "ipvae.train.model",  # iP-VAE, iG-VAE, iG_relu-VAE
    "amortized": "ipvae.train.baselines.amortized",  # P-VAE / G-VAE with linear, MLP or conv encoders
    "sparse_coding": "ipvae.train.baselines.sparse_coding",  # LCA, ISTA, FISTA
    "predictive_coding": "ipvae.train.baselines.predictive_coding",  # Rao & Ballard; incremental PC
    "iterative_amortized": "ipvae.train.baselines.iterative_amortized",  # Marino et al. 2018
}


def kinds() -> tuple[str, ...]:
    """The model kinds, in the table's order."""
    return tuple(MODEL_MODULES)


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


def model_module(kind: str) -> ModuleType:
    """The module that defines ``kind`` (ValueError for a kind not in the table)."""
    if kind not in MODEL_MODULES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {kinds()}")
    return importlib.import_module(MODEL_MODULES[kind])


def options_type(kind: str) -> type | None:
    """The frozen dataclass of ``kind``'s own settings, or None where it has none."""
    return model_module(kind).OPTIONS


def build_model(config: ModelConfig, generator: torch.Generator | None = None) -> Model:
    """The model a config describes, initialised from ``generator``."""
    return model_module(config.kind).MODEL(config, generator=generator)
