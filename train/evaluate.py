"""Evaluation as the paper measures it: reconstruction, sparsity and a linear probe, per step.

Definitions (x [B, M] images, z_t [B, K] spike counts, u_t potentials, t = 1..T):
    mse_per_pixel  mean over images and pixels of (x - Phi z_T)^2
    r2             per-image 1 - sum (x - Phi z_T)^2 / sum (x - mean(x))^2, averaged over images
    r2_rate        the same, decoding the rates: Phi E[z_T] with E[z] = E[min(Poisson(exp(u)), cap)]
                   (Gaussian families: Phi times the code at the posterior mean; deterministic
                   codes such as sparse and predictive coding: the reconstruction itself), taken
                   from the model's ``mean_reconstruction``
    zeros          fraction of z_T entries equal to 0
    spikes_per_inference   sum of all spike counts over the T steps and K neurons, per image
    lifetime_sparsity / population_sparsity   Treves-Rolls sparseness of z_T, normalised to [0, 1]:
        S(r) = (1 - (mean r)^2 / mean(r^2)) / (1 - 1/n), over images per neuron (lifetime, averaged
        over neurons that fired) or over neurons per image (population, averaged over images)
    probe_accuracy logistic regression on the model's ``features`` at T (iP-VAE: firing rates exp(u_T);
                   Gaussian posteriors: means; sparse / predictive coding: the codes), fit on train
                   images, scored on test
    params, macs_per_inference   the model's parameter count and dense MACs of a T-step inference
    precision_weighted_error   mean over images of sum_pixels D (x - Phi z_t)^2, D = model.pixel_precision()
                   (1/sigma^2): the data term of the free energy that the dynamics descend
    at_cap         fraction of z_t entries at the spike-count cap (Poisson latents; 0 otherwise)
    near_u_max     fraction of potentials within 1 of the upper clamp u_max (Poisson latents)
Every model of ``ipvae.train.registry.MODEL_MODULES`` is measured the same way (the ``Model`` protocol).
Per-step curves hold the same reconstruction and sparsity metrics at every step t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from ipvae.train.registry import Model

PROBE_MAX_ITERATIONS = 1000
PROBE_REGULARISATION = 1.0
NEAR_CLAMP_MARGIN = 1.0  # a potential within this of u_max counts as pinned at the clamp


@dataclass(frozen=True)
class EvalSettings:
    t_test: int = 64
    batch_size: int = 500
    seed: int = 0
    curve_steps: int = 0  # 0: no per-step curves; else record t = 1..curve_steps (>= t_test)
    decode_rates: bool = True  # False skips r2_rate (NaN): the capped-mean recursion is the costliest part


def r2_per_image(x: Tensor, recon: Tensor) -> Tensor:
    """1 - SSE / sum (x - mean x)^2 for each image, [B]."""
    residual = (x - recon).square().sum(-1)  # [B]
    total = (x - x.mean(-1, keepdim=True)).square().sum(-1).clamp_min(torch.finfo(x.dtype).tiny)  # [B]
    return 1.0 - residual / total


def treves_rolls_sparsity(responses: Tensor, dim: int) -> Tensor:
    """Normalised Treves-Rolls sparseness along ``dim``; NaN where all responses are zero."""
    n = responses.shape[dim]
    mean = responses.mean(dim)
    mean_square = responses.square().mean(dim)
    activity_ratio = mean.square() / mean_square  # NaN where silent
    return (1.0 - activity_ratio) / (1.0 - 1.0 / n)


@dataclass
class _StepSums:
    """Running sums over images of the per-step metrics (host-side accumulation once per batch)."""

    squared_error: Tensor
    r2: Tensor
    r2_rate: Tensor
    zeros: Tensor
    spikes: Tensor
    precision_weighted_error: Tensor
    at_cap: Tensor
    near_u_max: Tensor

    @classmethod
    def empty(cls, n_steps: int) -> "_StepSums":
        return cls(*(torch.zeros(n_steps, dtype=torch.float64) for _ in range(8)))


@torch.no_grad()
def run_inference(
    model: Model, x: Tensor, settings: EvalSettings
) -> tuple[dict[str, float], dict[str, np.ndarray], Tensor]:
    """Stream inference over x [N, M]; return (final-step metrics, per-step curves, features [N, K])."""
    n_steps = max(settings.t_test, settings.curve_steps)
    generator = torch.Generator().manual_seed(settings.seed)
    config = model.config
    counts_are_capped = config.family == "poisson" and config.kind in ("iterative", "amortized")
    precision = model.pixel_precision()  # [M]
    n_images, n_pixels = x.shape
    sums = _StepSums.empty(n_steps)
    final_counts = []
    final_features = []
    final_squared_error = 0.0
    for start in range(0, n_images, settings.batch_size):
        batch = x[start : start + settings.batch_size]  # [B, M]
        for t, step in enumerate(model.iterate(batch, n_steps, generator=generator)):
            features = model.features(step)  # [B, K]
            squared_error = (batch - step.recon).square().sum()
            sums.squared_error[t] += squared_error
            sums.r2[t] += r2_per_image(batch, step.recon).sum()
            if settings.decode_rates:
                rate_recon = model.mean_reconstruction(step)  # [B, M]
                sums.r2_rate[t] += r2_per_image(batch, rate_recon).sum()
            else:
                sums.r2_rate[t] = float("nan")
            sums.zeros[t] += (step.z == 0).sum() / step.z.shape[1]
            sums.spikes[t] += step.z.sum()
            sums.precision_weighted_error[t] += ((batch - step.recon).square() * precision).sum()
            if counts_are_capped:
                sums.at_cap[t] += (step.z >= config.max_spike_count).sum() / step.z.shape[1]
                sums.near_u_max[t] += (step.u > config.u_max - NEAR_CLAMP_MARGIN).sum() / step.u.shape[1]
            if t + 1 == settings.t_test:
                final_counts.append(step.z)
                final_features.append(features)
                final_squared_error += float(squared_error)
    counts = torch.cat(final_counts)  # [N, K]
    features = torch.cat(final_features)  # [N, K]
    curves = {
        "step": np.arange(1, n_steps + 1),
        "mse_per_pixel": (sums.squared_error / (n_images * n_pixels)).numpy(),
        "r2": (sums.r2 / n_images).numpy(),
        "r2_rate": (sums.r2_rate / n_images).numpy(),
        "zeros": (sums.zeros / n_images).numpy(),
        "spikes_per_step": (sums.spikes / n_images).numpy(),
        "precision_weighted_error": (sums.precision_weighted_error / n_images).numpy(),
        "at_cap": (sums.at_cap / n_images).numpy(),
        "near_u_max": (sums.near_u_max / n_images).numpy(),
    }
    last = settings.t_test - 1
    lifetime = treves_rolls_sparsity(counts, dim=0)  # [K]
    population = treves_rolls_sparsity(counts, dim=1)  # [N]
    metrics = {
        "mse_per_pixel": final_squared_error / (n_images * n_pixels),
        "r2": float(curves["r2"][last]),
        "r2_rate": float(curves["r2_rate"][last]),
        "zeros": float(curves["zeros"][last]),
        "spikes_per_inference": float(curves["spikes_per_step"][: last + 1].sum()),
        "spikes_last_step": float(curves["spikes_per_step"][last]),
        "lifetime_sparsity": float(torch.nanmean(lifetime)),
        "population_sparsity": float(torch.nanmean(population)),
        "silent_neurons_fraction": float((counts.sum(0) == 0).double().mean()),
        "precision_weighted_error": float(curves["precision_weighted_error"][last]),
        "at_cap": float(curves["at_cap"][last]),
        "near_u_max": float(curves["near_u_max"][last]),
    }
    return metrics, curves, features


@torch.no_grad()
def final_features(model: Model, x: Tensor, settings: EvalSettings) -> Tensor:
    """Probe features (rates) at step t_test for x [N, M], [N, K]; no per-step metrics are computed."""
    generator = torch.Generator().manual_seed(settings.seed)
    features = []
    for start in range(0, x.shape[0], settings.batch_size):
        for step in model.iterate(x[start : start + settings.batch_size], settings.t_test, generator=generator):
            pass
        features.append(model.features(step))  # [B, K]
    return torch.cat(features)


def probe_accuracy(
    train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor, seed: int = 0
) -> float:
    """Accuracy of a standardised multinomial logistic-regression probe (fit on train, scored on test)."""
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=PROBE_MAX_ITERATIONS, C=PROBE_REGULARISATION, random_state=seed),
    )
    probe.fit(train_features.numpy(), train_labels.numpy())
    return float(probe.score(test_features.numpy(), test_labels.numpy()))


@dataclass(frozen=True)
class EvalReport:
    metrics: dict
    curves: dict[str, np.ndarray]


def evaluate_run(
    model: Model,
    data: str,
    settings: EvalSettings,
    *,
    data_dir: str | None = None,
    test_limit: int | None = None,
    probe_train_limit: int | None = 10_000,
) -> EvalReport:
    """Metrics of ``model`` on a dataset's test split (and the probe, where the dataset has labels)."""
    from ipvae.data import get_dataset  # local: keeps the metric functions importable without data

    model.eval()
    x_test, y_test = get_dataset(data, "test", data_dir=data_dir, seed=settings.seed, limit=test_limit)
    x_test = x_test.reshape(x_test.shape[0], -1).float()  # [N, M]
    metrics, curves, test_features = run_inference(model, x_test, settings)
    report = {"data": data, "images": int(x_test.shape[0]), "t_test": settings.t_test, **metrics}
    if y_test is not None and probe_train_limit != 0:
        x_train, y_train = get_dataset(data, "train", data_dir=data_dir, seed=settings.seed, limit=probe_train_limit)
        x_train = x_train.reshape(x_train.shape[0], -1).float()  # [N, M]
        probe_settings = EvalSettings(t_test=settings.t_test, batch_size=settings.batch_size, seed=settings.seed + 1)
        train_features = final_features(model, x_train, probe_settings)
        report["probe_accuracy"] = probe_accuracy(train_features, y_train, test_features, y_test, settings.seed)
        report["probe_train_images"] = int(x_train.shape[0])
    report["params"] = model.n_params
    report["macs_per_inference"] = model.macs_per_inference(settings.t_test)
    return EvalReport(metrics=report, curves=curves)
