"""Parameters and dense MACs per inference of every model preset (no training, no data).

    python benchmarks/baseline_costs.py [--n-inputs 784] [--latents 512] [--steps 1 16 64] [--out DIR]

Prints a Markdown table and writes baseline_costs.json. MACs come from each model's
``macs_per_inference`` (forward hooks on Linear/Conv layers for networks, 2 M K per step for the
dictionary products of the iterative models; element-wise work is not counted). Amortized models
run their encoder once; each further step is one more decoded sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ipvae.fileio import write_json
from ipvae.train.baselines.presets import MODEL_PRESETS, preset_config
from ipvae.train.registry import build_model


def costs(n_inputs: int, n_latents: int, steps: list[int]) -> list[dict]:
    rows = []
    for name in MODEL_PRESETS:
        model = build_model(preset_config(name, n_inputs=n_inputs, n_latents=n_latents))
        rows.append({"model": name, "params": model.n_params,
                     "macs_per_inference": {str(t): model.macs_per_inference(t) for t in steps}})
    return rows


def markdown(rows: list[dict], steps: list[int]) -> str:
    header = "| model | parameters | " + " | ".join(f"MACs, T = {t}" for t in steps) + " |"
    lines = [header, "|" + "---|" * (2 + len(steps))]
    for row in rows:
        macs = " | ".join(f"{row['macs_per_inference'][str(t)] / 1e6:.2f}M" for t in steps)
        lines.append(f"| {row['model']} | {row['params'] / 1e6:.3f}M | {macs} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-inputs", type=int, default=784)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--out", help="directory for baseline_costs.json")
    args = parser.parse_args()
    rows = costs(args.n_inputs, args.latents, args.steps)
    print(markdown(rows, args.steps))
    if args.out:
        write_json(Path(args.out) / "baseline_costs.json",
                   {"n_inputs": args.n_inputs, "latents": args.latents, "steps": args.steps, "models": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
