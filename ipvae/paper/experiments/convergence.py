"""Experiment 3: convergence beyond training, metrics at every inference step up to t = curve_steps
(1000 at the full budget) for the MNIST models trained with T_train = 16."""

from __future__ import annotations

import numpy as np

from ipvae.paper import format as fmt
from ipvae.paper.context import Context
from ipvae.paper.figures import new_figure, save_labelled
from ipvae.paper.measure import reconstruction, summary
from ipvae.paper.zoo import ensure_trained

NAME = "convergence"
TITLE = "Convergence beyond training (metrics at every step, far past T_train)"
METRICS = (("r2", "R^2 from spikes"), ("r2_rate", "R^2 from rates"), ("zeros", "fraction of zeros"),
           ("mse_per_pixel", "MSE / pixel"))
REPORTED_STEPS = (1, 4, 16, 64, 256, 1000)
STORED_POINTS = 80  # log-spaced steps kept in the JSON (the whole curve is computed)


def _stored_steps(n_steps: int) -> list[int]:
    steps = np.unique(np.round(np.geomspace(1, n_steps, STORED_POINTS)).astype(int))
    return sorted(set(steps.tolist()) | {step for step in REPORTED_STEPS if step <= n_steps} | {n_steps})


def _curves(ctx: Context, entry, seed: int, x) -> dict:
    budget = ctx.budget
    trained = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log)
    _, curves = reconstruction(trained.model, x, budget.t_test, seed, curve_steps=budget.curve_steps)
    keep = [step - 1 for step in _stored_steps(budget.curve_steps)]
    return {name: [curves[name][index] for index in keep] for name in ("step", *(metric for metric, _ in METRICS))}


def run(ctx: Context) -> dict:
    from ipvae.paper.experiments.mnist import load

    budget = ctx.budget
    x, _ = load("test", budget.curve_images)
    models = {}
    for entry in ctx.models:
        runs = [ctx.cached(NAME, f"{entry.name}-seed{seed}", lambda: _curves(ctx, entry, seed, x)) for seed in budget.seeds]
        steps = runs[0]["step"]
        at = {}
        for step in [s for s in REPORTED_STEPS if s in steps] + ([steps[-1]] if steps[-1] not in REPORTED_STEPS else []):
            index = steps.index(step)
            at[str(step)] = {metric: summary([run[metric][index] for run in runs]) for metric, _ in METRICS}
        models[entry.name] = {"label": entry.label, "runs": runs, "at_step": at}
    result = {"name": NAME, "budget": budget.describe(), "device": ctx.device, "images": int(x.shape[0]),
              "t_train": budget.t_train, "t_end": budget.curve_steps, "models": models}
    result["figures"] = [_plot(ctx, result)]
    return result


def _plot(ctx: Context, result: dict) -> str:
    figure, axes = new_figure(len(METRICS))
    for axis, (metric, label) in zip(axes, METRICS):
        for model in result["models"].values():
            values = np.array([run[metric] for run in model["runs"]])  # [S, steps]
            steps = model["runs"][0]["step"]
            line, = axis.plot(steps, values.mean(0), label=model["label"])
            if len(values) > 1:
                axis.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
        axis.axvline(result["t_train"], color="k", ls="--", lw=0.8)
        axis.set_xscale("log")
        axis.set_xlabel("inference step t")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"MNIST, {result['images']} test images; dashed: T_train = {result['t_train']}; band: min-max over seeds", y=1.04)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "convergence.png", ctx.device, ctx.budget.name)


def markdown(result: dict, prefix: str) -> str:
    first = next(iter(result["models"].values()))
    steps = list(first["at_step"])
    header = ["model", "metric", *(f"t = {step}" for step in steps)]
    rows = []
    for model in result["models"].values():
        for metric, label in METRICS:
            digits = 4 if metric == "mse_per_pixel" else 3
            rows.append([model["label"], label, *(fmt.spread(model["at_step"][step][metric], digits) for step in steps)])
    lines = [f"{result['images']} MNIST test images; models trained with T_train = {result['t_train']}, run to "
             f"t = {result['t_end']}; {fmt.over_seeds(result['budget']['seeds'])}.", "", fmt.table(header, rows), "",
             *(fmt.figure(name, "convergence", prefix) for name in result["figures"])]
    return "\n".join(lines)
