"""Does inference keep converging long after T_train, on the training distribution and off it?

The paper's dynamic claim is that iP-VAE inference is a descent on the free energy that can run far
beyond the T_train steps it was trained on: quality rises and then holds, and the code gets sparser.
This module measures that on a trained model with exact integer spike draws:

    sets        MNIST test digits (in distribution), the same digits rotated by 90 degrees, and
                Fashion-MNIST when it is installed (novel images)
    checkpoints R^2 from spikes, zeros, precision-weighted error sum D (x - Phi z_t)^2, fraction of
                counts at the cap and of potentials pinned near the soft clamp u_max, at t = 16 ... 1000

``stability_verdict`` compares a late window with an early one; the windows are averaged over steps
so that one step's Poisson noise does not decide the verdict.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from ipvae.errors import DatasetUnavailable
from ipvae.train.evaluate import EvalSettings, run_inference
from ipvae.train.model import IterativeVAE

CHECKPOINTS = (16, 64, 256, 1000)
ROTATION_DEGREES = 90.0
WINDOW = 16  # steps averaged on each side of a comparison


def stability_sets(n_images: int) -> dict[str, Tensor]:
    """{name: x [n, 784]}: MNIST test, MNIST test rotated 90 degrees, Fashion-MNIST test if installed."""
    from ipvae.data import load_fashion_mnist, load_mnist, rotated_mnist

    sets = {
        "mnist": load_mnist("test")[0][:n_images].reshape(n_images, -1).float(),  # [n, 784]
        "mnist_rot90": rotated_mnist(ROTATION_DEGREES, "test", n=n_images)[0],  # [n, 784]
    }
    try:
        fashion = load_fashion_mnist("test")[0][:n_images]
    except DatasetUnavailable:
        return sets  # not installed: the report says which sets it covers
    sets["fashion_mnist"] = fashion.reshape(n_images, -1).float()  # [n, 784]
    return sets


def long_run_curves(model: IterativeVAE, x: Tensor, n_steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-step curves (ipvae.train.evaluate definitions) for t = 1..n_steps on x [N, M]."""
    settings = EvalSettings(
        t_test=n_steps, batch_size=max(1, x.shape[0]), seed=seed, curve_steps=n_steps, decode_rates=False
    )
    _, curves, _ = run_inference(model, x, settings)
    return curves


def window_mean(curve: np.ndarray, end_step: int, window: int = WINDOW) -> float:
    """Mean of curve over steps end_step - window + 1 .. end_step (1-based steps)."""
    start = max(0, end_step - window)
    return float(np.mean(curve[start:end_step]))


def at_checkpoints(curves: dict[str, np.ndarray], checkpoints=CHECKPOINTS) -> dict[int, dict[str, float]]:
    names = ("r2", "zeros", "precision_weighted_error", "at_cap", "near_u_max")
    n_steps = len(curves["step"])
    return {t: {name: float(curves[name][t - 1]) for name in names} for t in checkpoints if t <= n_steps}


@dataclass(frozen=True)
class StabilityVerdict:
    """Late window (ending at ``late``) against the early one (ending at ``early``), window-averaged."""

    early: int
    late: int
    r2_early: float
    r2_late: float
    zeros_early: float
    zeros_late: float
    error_ratio: float  # precision-weighted error, late / early
    at_cap_early: float
    at_cap_late: float
    near_u_max_early: float
    near_u_max_late: float

    @property
    def r2_change(self) -> float:
        return self.r2_late - self.r2_early

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "r2_change": self.r2_change}


def stability_verdict(curves: dict[str, np.ndarray], early: int = 64, late: int | None = None) -> StabilityVerdict:
    late = len(curves["step"]) if late is None else late
    if not WINDOW <= early < late <= len(curves["step"]):
        raise ValueError(f"need {WINDOW} <= early < late <= {len(curves['step'])}, got {early}, {late}")
    error = curves["precision_weighted_error"]
    return StabilityVerdict(
        early=early,
        late=late,
        r2_early=window_mean(curves["r2"], early),
        r2_late=window_mean(curves["r2"], late),
        zeros_early=window_mean(curves["zeros"], early),
        zeros_late=window_mean(curves["zeros"], late),
        error_ratio=window_mean(error, late) / max(window_mean(error, early), math.ulp(1.0)),
        at_cap_early=window_mean(curves["at_cap"], early),
        at_cap_late=window_mean(curves["at_cap"], late),
        near_u_max_early=window_mean(curves["near_u_max"], early),
        near_u_max_late=window_mean(curves["near_u_max"], late),
    )
