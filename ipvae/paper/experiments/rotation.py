"""Experiment 4: trained on upright MNIST, tested on digits rotated by 0, 15, ..., 180 degrees:
MSE, R^2, zeros and probe accuracy (probe fit on upright training digits) against the angle."""

from __future__ import annotations

import numpy as np

from ipvae.paper import format as fmt
from ipvae.paper.context import Context
from ipvae.paper.figures import new_figure, save_labelled
from ipvae.paper.measure import FEATURE_LABELS, code_features, reconstruction, summary
from ipvae.paper.zoo import ensure_trained
from ipvae.train.evaluate import probe_accuracy

NAME = "rotation"
TITLE = "Rotated MNIST (0 to 180 degrees)"
PROBE_FEATURE = "mean_counts"
METRICS = (("mse_per_pixel", "MSE / pixel"), ("mse_ratio", "MSE(angle) / MSE(0)"), ("r2", "R^2 from spikes"),
           ("zeros", "fraction of zeros"), ("probe", "probe accuracy"))


def _angles_run(ctx: Context, entry, seed: int, data) -> dict:
    from ipvae.data import rotate_images

    x_train, y_train, x_test, y_test = data
    budget = ctx.budget
    model = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log).model
    train_features = code_features(model, x_train, budget.t_test, seed + 1)[PROBE_FEATURE]
    curves = {metric: [] for metric, _ in METRICS}
    for angle in budget.rotation_angles:
        x = rotate_images(x_test, angle).clamp_(0.0, 1.0)  # [N, M]
        metrics, _ = reconstruction(model, x, budget.t_test, seed)
        features = code_features(model, x, budget.t_test, seed)[PROBE_FEATURE]
        for metric in ("mse_per_pixel", "r2", "zeros"):
            curves[metric].append(metrics[metric])
        curves["probe"].append(probe_accuracy(train_features, y_train, features, y_test, seed))
    curves["mse_ratio"] = [mse / curves["mse_per_pixel"][0] for mse in curves["mse_per_pixel"]]
    return curves


def run(ctx: Context) -> dict:
    from ipvae.paper.experiments.mnist import load

    budget = ctx.budget
    x_train, y_train = load("train", budget.probe_train_images)
    x_test, y_test = load("test", budget.rotation_images)
    data = (x_train, y_train, x_test, y_test)
    models = {}
    for entry in ctx.models:
        runs = [ctx.cached(NAME, f"{entry.name}-seed{seed}", lambda: _angles_run(ctx, entry, seed, data))
                for seed in budget.seeds]
        per_angle = {metric: [summary([run[metric][index] for run in runs]) for index in range(len(budget.rotation_angles))]
                     for metric, _ in METRICS}
        models[entry.name] = {"label": entry.label, "runs": runs, "per_angle": per_angle}
    result = {"name": NAME, "budget": budget.describe(), "device": ctx.device, "images": int(x_test.shape[0]),
              "angles": list(budget.rotation_angles), "probe_feature": PROBE_FEATURE, "models": models}
    result["figures"] = [_plot(ctx, result)]
    return result


def _plot(ctx: Context, result: dict) -> str:
    figure, axes = new_figure(len(METRICS), 3.4, 3.0)
    angles = result["angles"]
    for axis, (metric, label) in zip(axes, METRICS):
        for model in result["models"].values():
            means = np.array([point["mean"] for point in model["per_angle"][metric]])
            stds = np.array([point["std"] for point in model["per_angle"][metric]])
            line, = axis.plot(angles, means, "o-", ms=3, label=model["label"])
            axis.fill_between(angles, means - stds, means + stds, color=line.get_color(), alpha=0.2)
        axis.set_xlabel("rotation (degrees)")
        axis.set_xticks(angles[::3])
        axis.set_title(label, fontsize=9)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"rotated MNIST, {result['images']} test images; probe on {result['probe_feature']} fit on upright digits", y=1.04)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "rotation.png", ctx.device, ctx.budget.name)


def markdown(result: dict, prefix: str) -> str:
    angles = result["angles"]
    shown = [index for index, angle in enumerate(angles) if angle % 45 == 0] or list(range(len(angles)))
    header = ["model", "metric", *(f"{angles[index]:g}°" for index in shown)]
    rows = []
    for model in result["models"].values():
        for metric, label in METRICS:
            digits = 4 if metric == "mse_per_pixel" else 3
            rows.append([model["label"], label, *(fmt.spread(model["per_angle"][metric][index], digits) for index in shown)])
    lines = [f"{result['images']} MNIST test digits, each rotated by every angle {angles[0]:g}..{angles[-1]:g}° "
             f"(every {angles[1] - angles[0]:g}° in the figure and JSON; the table shows multiples of 45°). Probe feature: "
             f"{FEATURE_LABELS[result['probe_feature']]}, fit on upright training digits; "
             f"{fmt.over_seeds(result['budget']['seeds'])}.", "", fmt.table(header, rows), "",
             *(fmt.figure(name, "rotation", prefix) for name in result["figures"])]
    return "\n".join(lines)
