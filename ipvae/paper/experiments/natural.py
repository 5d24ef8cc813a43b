"""Experiment 2: natural-image patches, the rate-distortion plane (R^2 from spikes vs fraction of zeros)
swept over the KL weight beta, and the paper's distance d = sqrt((1 - R^2)^2 + (1 - zeros)^2)."""

from __future__ import annotations

from ipvae.paper import format as fmt
from ipvae.paper.context import Context
from ipvae.paper.figures import new_figure, save_labelled
from ipvae.paper.measure import rate_distortion_distance, reconstruction
from ipvae.paper.published import NATURAL_DISTANCE
from ipvae.paper.zoo import ensure_trained

NAME = "natural"
TITLE = "Natural-image patches: rate-distortion sweep (beta / lambda)"
DATA = "natural_patches"
KNOB_SYMBOLS = {"beta": "β", "sparsity": "λ"}


def _point(ctx: Context, entry, beta: float, x) -> dict:
    budget = ctx.budget
    seed = budget.seeds[0]
    trained = ensure_trained(ctx.results_dir, entry, budget, seed, data=DATA, beta=beta, log=ctx.log)
    _, curves = reconstruction(trained.model, x, budget.t_test, seed, curve_steps=budget.curve_steps)
    at_test, at_end = budget.t_test - 1, len(curves["step"]) - 1
    point = {"beta": beta, "knob": entry.sweep.name, "value": entry.sweep.scale * beta, "seed": seed,
             "train_minutes": trained.train_seconds / 60.0}
    for suffix, index in (("t_test", at_test), ("t_end", at_end)):
        r2, zeros = curves["r2"][index], curves["zeros"][index]
        point.update({f"r2_{suffix}": r2, f"zeros_{suffix}": zeros, f"d_{suffix}": rate_distortion_distance(r2, zeros)})
    return point


def run(ctx: Context) -> dict:
    from ipvae.data import get_dataset

    budget = ctx.budget
    x, _ = get_dataset(DATA, "test", limit=budget.curve_images)  # held-out photographs
    x = x.reshape(x.shape[0], -1).float()  # [N, M]
    models = {}
    for entry in ctx.models:
        points = [ctx.cached(NAME, f"{entry.name}-beta{beta:g}", lambda: _point(ctx, entry, beta, x))
                  for beta in budget.natural_betas]
        best = min(points, key=lambda point: point["d_t_end"])
        models[entry.name] = {"label": entry.label, "paper_key": entry.paper_key, "points": points, "best": best}
    result = {"name": NAME, "budget": budget.describe(), "device": ctx.device, "images": int(x.shape[0]),
              "t_test": budget.t_test, "t_end": budget.curve_steps, "models": models}
    result["figures"] = [_plot(ctx, result)]
    return result


def _plot(ctx: Context, result: dict) -> str:
    figure, axes = new_figure(2, 4.2, 4.0)
    for axis, suffix, step in ((axes[0], "t_test", result["t_test"]), (axes[1], "t_end", result["t_end"])):
        for model in result["models"].values():
            zeros = [point[f"zeros_{suffix}"] for point in model["points"]]
            r2 = [point[f"r2_{suffix}"] for point in model["points"]]
            axis.plot(zeros, r2, "o-", label=model["label"])
            for point in model["points"]:
                axis.annotate(f"{KNOB_SYMBOLS.get(point['knob'], point['knob'])}={point['value']:g}", (point[f"zeros_{suffix}"], point[f"r2_{suffix}"]), fontsize=6)
        axis.set_xlabel("fraction of zero counts")
        axis.set_ylabel("R^2 from spikes")
        axis.set_xlim(-0.02, 1.02)
        axis.set_title(f"t = {step}")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"natural 16x16 patches ({result['images']} held-out), sweep over β / λ", y=1.04)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "natural.png", ctx.device, ctx.budget.name)


def markdown(result: dict, prefix: str) -> str:
    header = ["model", "knob", f"R^2 (t={result['t_test']})", f"zeros (t={result['t_test']})", f"d (t={result['t_test']})",
              f"R^2 (t={result['t_end']})", f"zeros (t={result['t_end']})", f"d (t={result['t_end']})", "paper best d"]
    rows = []
    for model in result["models"].values():
        for point in model["points"]:
            best = point is model["best"] or point == model["best"]
            paper = NATURAL_DISTANCE.get(model["paper_key"] or "")
            rows.append([model["label"] + (" (best)" if best else ""),
                         f"{KNOB_SYMBOLS.get(point['knob'], point['knob'])} = {point['value']:g}",
                         *(fmt.value(point[key]) for key in ("r2_t_test", "zeros_t_test", "d_t_test", "r2_t_end",
                                                             "zeros_t_end", "d_t_end")),
                         fmt.value(paper) if best and paper is not None else "-"])
    missing = [f"{key} {value:.3f}" for key, value in NATURAL_DISTANCE.items()
               if not any(model["paper_key"] == key for model in result["models"].values())]
    lines = [f"{result['images']} held-out whitened 16x16 patches (photographs never used for training), one seed "
             f"({result['budget']['seeds'][0]}) per point. The sweep turns the KL weight β (VAEs) or the sparsity weight "
             f"λ (sparse and predictive coding). Lower d is better; 'best' is the setting with the lowest d at "
             f"t = {result['t_end']}.", "", fmt.table(header, rows)]
    if missing:
        lines += ["", "Paper's best d for models not run here: " + ", ".join(missing) + "."]
    lines += ["", *(fmt.figure(name, "rate-distortion plane", prefix) for name in result["figures"])]
    return "\n".join(lines)
