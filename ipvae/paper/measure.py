"""Measurements shared by the experiments, built on ipvae.train.evaluate (run_inference, probe_accuracy)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ipvae.train.evaluate import EvalSettings, probe_accuracy, run_inference

EVAL_BATCH = 500
PROBE_SEED_OFFSET = 1  # the probe's training features use their own Poisson draws
FEATURE_KINDS = ("rates", "mean_counts")
FEATURE_LABELS = {
    "rates": "the model's features at t = T: rates exp(u_T) for Poisson posteriors, posterior means for "
             "Gaussian ones, the codes of sparse and predictive coding",
    "mean_counts": "codes z_t averaged over t = 1..T (spike counts for Poisson models, samples or codes otherwise)",
    "pixels": "raw pixels",
}


def reconstruction(model, x: Tensor, n_steps: int, seed: int, curve_steps: int = 0) -> tuple[dict, dict]:
    """ipvae.train.evaluate.run_inference on x [N, M]: (metrics at t = n_steps, per-step curves as lists)."""
    settings = EvalSettings(t_test=n_steps, batch_size=EVAL_BATCH, seed=seed, curve_steps=curve_steps)
    metrics, curves, _ = run_inference(model, x, settings)
    return metrics, {name: np.asarray(values).tolist() for name, values in curves.items()}


@torch.no_grad()
def final_codes(model, x: Tensor, n_steps: int, seed: int) -> Tensor:
    """The codes z at t = n_steps of x [N, M], [N, K]: the ones ``reconstruction`` decodes for its R^2 (same
    seed, batches and draws): spike counts, Gaussian samples, sparse or predictive codes; for amortized models
    a sample of the encoder's posterior."""
    generator = torch.Generator().manual_seed(seed)
    codes = []
    for start in range(0, x.shape[0], EVAL_BATCH):
        for step in model.iterate(x[start : start + EVAL_BATCH], n_steps, generator=generator):
            pass
        codes.append(step.z)  # [B, K]
    return torch.cat(codes)


@torch.no_grad()
def code_features(model, x: Tensor, n_steps: int, seed: int) -> dict[str, Tensor]:
    """Probe features of x [N, M] at t = n_steps: rates [N, K] and spike counts averaged over steps [N, K]."""
    generator = torch.Generator().manual_seed(seed)
    rates, mean_counts = [], []
    for start in range(0, x.shape[0], EVAL_BATCH):
        count_sum = None
        for step in model.iterate(x[start : start + EVAL_BATCH], n_steps, generator=generator):
            count_sum = step.z if count_sum is None else count_sum + step.z  # [B, K]
        rates.append(model.features(step))  # [B, K]
        mean_counts.append(count_sum / n_steps)  # [B, K]
    return {"rates": torch.cat(rates), "mean_counts": torch.cat(mean_counts)}


def probe_scores(model, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, n_steps: int,
                 seed: int) -> dict[str, float]:
    """Logistic-probe accuracy on each feature kind (fit on train, scored on test)."""
    train_features = code_features(model, x_train, n_steps, seed + PROBE_SEED_OFFSET)
    test_features = code_features(model, x_test, n_steps, seed)
    return {kind: probe_accuracy(train_features[kind], y_train, test_features[kind], y_test, seed) for kind in FEATURE_KINDS}


def summary(values: list[float]) -> dict:
    """Mean, sample std (0 for one value) and count of a list of per-seed numbers."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": int(array.size)}


def summarise_runs(runs: list[dict]) -> dict:
    """{metric: summary over runs} for every numeric metric the runs share."""
    keys = [key for key in runs[0] if all(isinstance(run.get(key), (int, float)) and not isinstance(run.get(key), bool)
                                         for run in runs)]
    return {key: summary([run[key] for run in runs]) for key in keys if all(math.isfinite(run[key]) for run in runs)}


def rate_distortion_distance(r2: float, zeros: float) -> float:
    """The paper's d = sqrt((1 - R^2)^2 + (1 - zeros)^2); lower is better."""
    return math.hypot(1.0 - r2, 1.0 - zeros)
