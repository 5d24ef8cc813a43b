"""Pruning the smallest lateral (and feed-forward) synapses of the exported integer model: synapses and
synaptic ops per inference against R^2 from spikes. Evaluated on the integer reference, bit-exact
to the Lava fixed_pt graph, so every point is what the chip would run.

    .venv/bin/python benchmarks/pruning.py [RUN_DIR] [--images 500] [--steps 64] [--fractions 0 0.25 ...] [--out out/bench/pruning]

RUN_DIR defaults to pretrained/mnist_k512, quantized in memory with the default export settings. Two
schedules: lateral only, and lateral + feed-forward at the same fraction. Writes pruning.json and
pruning.png; prints a table. Energies are estimates (ipvae.lava.accounting.pricing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipvae.lava.pipeline import load_inputs, models_for_benchmark  # noqa: E402
from ipvae.lava.accounting.pruning import prune_model  # noqa: E402
from ipvae.lava.tradeoff import evaluate_integer  # noqa: E402

DEFAULT_RUN = Path("pretrained/mnist_k512")
DEFAULT_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75)
SCHEDULES = {"lateral": dict(lateral=1.0, feedforward=0.0), "lateral+feedforward": dict(lateral=1.0, feedforward=1.0)}


def sweep(model, x: np.ndarray, n_steps: int, fractions) -> dict:
    """{schedule: [point per fraction]} with the R^2 loss against the unpruned model."""
    unpruned = evaluate_integer(model, x, n_steps)
    result = {}
    for schedule, weights in SCHEDULES.items():
        points = []
        for fraction in fractions:
            pruned = prune_model(model, lateral=weights["lateral"] * fraction, feedforward=weights["feedforward"] * fraction)
            point = unpruned if fraction == 0 else evaluate_integer(pruned, x, n_steps)
            points.append({"fraction": float(fraction), **point, "r2_loss": unpruned["r2"] - point["r2"]})
        result[schedule] = points
    return result


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for schedule, points in report["schedules"].items():
        fractions = [p["fraction"] for p in points]
        axes[0].plot(fractions, [p["r2"] for p in points], "o-", label=schedule)
        axes[1].plot(fractions, [p["synops_per_inference"] / 1e6 for p in points], "o-", label=schedule)
        axes[2].plot([p["energy_estimate_nj"] / 1e3 for p in points], [p["r2"] for p in points], "o-", label=schedule)
    axes[0].set(xlabel="fraction of synapses pruned", ylabel="R^2 from spikes (t = T)")
    axes[1].set(xlabel="fraction of synapses pruned", ylabel="synaptic ops per inference [M]")
    axes[2].set(xlabel="energy estimate per inference [uJ]", ylabel="R^2 from spikes")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{report['model']}: {report['images']} MNIST test images, T = {report['steps']}, integer reference "
                    "(energies are estimates)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_table(report: dict) -> None:
    header = f"{'schedule':<21}{'pruned':>7}{'R^2':>8}{'loss':>8}{'ff syn':>9}{'lat syn':>9}{'synops/inf':>12}{'energy uJ':>10}"
    print(header)
    print("-" * len(header))
    for schedule, points in report["schedules"].items():
        for p in points:
            print(f"{schedule:<21}{p['fraction']:>7.2f}{p['r2']:>8.4f}{p['r2_loss']:>+8.4f}{p['synapses_feedforward']:>9,}"
                  f"{p['synapses_lateral']:>9,}{p['synops_per_inference']:>12,.0f}{p['energy_estimate_nj'] / 1e3:>10.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=str(DEFAULT_RUN))
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/bench/pruning")
    args = parser.parse_args(argv)
    if any(not 0.0 <= f <= 1.0 for f in args.fractions):
        print("pruning benchmark: --fractions must lie in [0, 1]", file=sys.stderr)
        return 2
    pair = models_for_benchmark(args.run_dir, seed=args.seed)
    x = load_inputs("mnist", args.images, pair.integer.n_inputs, n_steps=args.steps)
    fractions = sorted(set([0.0] + list(args.fractions)))
    report = {"benchmark": "pruning", "model": pair.label, "images": args.images, "steps": args.steps, "seed": args.seed,
              "evaluated_on": "integer reference (bit-exact to the Lava fixed_pt graph)",
              "schedules": sweep(pair.integer, x, args.steps, fractions)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from ipvae.fileio import write_json

    write_json(out / "pruning.json", report)
    plot(report, out / "pruning.png")
    print_table(report)
    print(f"wrote {out / 'pruning.json'} and {out / 'pruning.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
