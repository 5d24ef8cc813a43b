"""Experiment 6: the learned dictionaries and a compositionality measure.

Measure (per model, on MNIST test digits at t = T, and on unseen Hershey glyphs):
- effective atoms per image: the participation ratio (sum c)^2 / sum c^2 of the atoms' contributions
  c_k = |z_k| * ||phi_k|| to the reconstruction Phi z (1 when one atom draws the image, K when all
  contribute equally). A compositional code builds each image from a few parts: small, but above 1.
- atom locality: the fraction of an atom's squared norm in its 10% strongest pixels, averaged over
  atoms weighted by their use; a stroke-like (part) atom concentrates its energy, a global template or
  noise does not. The chance level is that of random Gaussian atoms of the same size (computed).
- reconstruction of unseen glyphs (R^2 on Hershey glyphs, from experiment 5's protocol): whether
  parts learned from digits compose characters never seen.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ipvae.paper import format as fmt
from ipvae.paper.context import Context
from ipvae.paper.figures import new_grid, save_labelled
from ipvae.paper.measure import reconstruction, summarise_runs
from ipvae.paper.zoo import ensure_trained

NAME = "features"
TITLE = "Learned features and compositionality"
TOP_PIXEL_FRACTION = 0.10
ATOMS_SHOWN = 64
CHANCE_ATOMS = 4096
CHANCE_SEED = 0
SIDE = 28
GRID_COLUMNS = 4


def atom_locality(phi: torch.Tensor) -> torch.Tensor:
    """Fraction of each atom's squared norm in its top TOP_PIXEL_FRACTION pixels, [K] (phi [M, K])."""
    energy = phi.square()  # [M, K]
    n_top = max(1, math.ceil(TOP_PIXEL_FRACTION * phi.shape[0]))
    top = energy.topk(n_top, dim=0).values.sum(0)  # [K]
    return top / energy.sum(0).clamp_min(torch.finfo(phi.dtype).tiny)


def participation_ratio(contributions: torch.Tensor) -> torch.Tensor:
    """(sum c)^2 / sum c^2 per row of non-negative contributions [N, K]: n for n equal non-zero entries."""
    squares = contributions.square().sum(1).clamp_min(torch.finfo(contributions.dtype).tiny)  # [N]
    return contributions.sum(1).square() / squares


def chance_locality(n_pixels: int) -> float:
    """atom_locality of random Gaussian atoms (no structure), averaged over CHANCE_ATOMS draws."""
    generator = torch.Generator().manual_seed(CHANCE_SEED)
    return float(atom_locality(torch.randn(n_pixels, CHANCE_ATOMS, generator=generator, dtype=torch.float64)).mean())


@torch.no_grad()
def composition_stats(model, x: torch.Tensor, n_steps: int, seed: int) -> dict:
    """Effective and active atoms per image at t = n_steps, usage [K], use-weighted atom locality."""
    generator = torch.Generator().manual_seed(seed)
    for step in model.iterate(x, n_steps, generator=generator):
        pass
    z = step.z  # [N, K]
    phi = model.phi.detach()  # [M, K]
    contributions = z.abs() * phi.norm(dim=0)  # [N, K]
    total = contributions.sum(1)  # [N]
    ratio = participation_ratio(contributions)  # [N]
    usage = z.abs().mean(0)  # [K]
    weights = usage / usage.sum().clamp_min(torch.finfo(z.dtype).tiny)  # [K]
    return {
        "effective_atoms": float(ratio[total > 0].mean()) if bool((total > 0).any()) else 0.0,
        "active_atoms": float((z != 0).float().sum(1).mean()),
        "atom_locality": float((weights * atom_locality(phi)).sum()),
        "usage": usage.tolist(),
    }


def _run(ctx: Context, entry, seed: int, x_digits, x_glyphs) -> dict:
    budget = ctx.budget
    trained = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log)
    stats = composition_stats(trained.model, x_digits, budget.t_test, seed)
    glyph_metrics, _ = reconstruction(trained.model, x_glyphs, budget.t_test, seed)
    return {**stats, "glyph_r2": glyph_metrics["r2"], "run_dir": str(trained.run_dir)}


def run(ctx: Context) -> dict:
    from ipvae.paper.experiments.mnist import load
    from ipvae.data.glyphs import hershey_glyphs

    budget = ctx.budget
    x_digits, _ = load("test", budget.test_images)
    x_glyphs, _ = hershey_glyphs("test")
    models = {}
    for entry in ctx.models:
        runs = [ctx.cached(NAME, f"{entry.name}-seed{seed}", lambda: _run(ctx, entry, seed, x_digits, x_glyphs))
                for seed in budget.seeds]
        numbers = [{key: value for key, value in run.items() if key != "usage"} for run in runs]
        models[entry.name] = {"label": entry.label, "runs": numbers, "summary": summarise_runs(numbers),
                              "usage_seed0": runs[0]["usage"], "run_dir_seed0": runs[0]["run_dir"]}
    result = {"name": NAME, "budget": budget.describe(), "device": ctx.device, "images": int(x_digits.shape[0]),
              "glyphs": int(x_glyphs.shape[0]), "t_test": budget.t_test, "chance_locality": chance_locality(SIDE * SIDE),
              "models": models}
    result["figures"] = [_plot_dictionaries(ctx, result)]
    return result


def _plot_dictionaries(ctx: Context, result: dict) -> str:
    """The ATOMS_SHOWN most used atoms of each model (seed 0), one panel per model."""
    from ipvae.train.checkpoint import load_run

    figure, axes = new_grid(len(result["models"]), GRID_COLUMNS)
    for axis, model in zip(axes, result["models"].values()):
        phi = load_run(model["run_dir_seed0"]).model.phi.detach().numpy()  # [M, K]
        order = np.argsort(-np.asarray(model["usage_seed0"]))[:ATOMS_SHOWN]
        side = math.ceil(math.sqrt(len(order)))
        n_rows = math.ceil(len(order) / side)
        tiles = np.zeros((n_rows * (SIDE + 1), side * (SIDE + 1)))
        for index, atom in enumerate(order):
            row, column = divmod(index, side)
            image = phi[:, atom].reshape(SIDE, SIDE)
            tiles[row * (SIDE + 1): row * (SIDE + 1) + SIDE, column * (SIDE + 1): column * (SIDE + 1) + SIDE] = (
                image / (np.abs(image).max() or 1.0))
        axis.imshow(tiles, cmap="RdBu_r", vmin=-1, vmax=1)
        axis.set_title(model["label"], fontsize=8)
        axis.axis("off")
    figure.suptitle(f"the {ATOMS_SHOWN} most used atoms of each model (seed {result['budget']['seeds'][0]})", y=1.04)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "dictionaries.png", ctx.device, ctx.budget.name)


def markdown(result: dict, prefix: str) -> str:
    header = ["model", "effective atoms / image", "active atoms / image", "atom locality", "R^2 on unseen glyphs"]
    rows = [[model["label"], fmt.spread(model["summary"].get("effective_atoms"), 1),
             fmt.spread(model["summary"].get("active_atoms"), 1), fmt.spread(model["summary"].get("atom_locality")),
             fmt.spread(model["summary"].get("glyph_r2"))] for model in result["models"].values()]
    rows.append(["random Gaussian atoms (chance)", "-", "-", fmt.value(result["chance_locality"]), "-"])
    lines = [f"{result['images']} MNIST test digits and {result['glyphs']} Hershey glyphs of fonts the probe never "
             f"saw, t = {result['t_test']}; {fmt.over_seeds(result['budget']['seeds'])}. Effective atoms: "
             "participation ratio of the atoms' contributions |z_k|·||phi_k|| to each reconstruction; atom locality: "
             f"share of an atom's energy in its top {TOP_PIXEL_FRACTION:.0%} pixels, weighted by use (random atoms give "
             "the chance row).", "", fmt.table(header, rows), "",
             *(fmt.figure(name, "dictionaries", prefix) for name in result["figures"])]
    return "\n".join(lines)
