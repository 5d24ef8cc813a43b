"""Fidelity of the integer iP-VAE vs the float model at 4, 6, 8, 12, 16 weight bits.

    .venv/bin/python benchmarks/quantization.py [RUN_DIR] [--n-images 1000] [--out out/bench/quantization]

RUN_DIR defaults to pretrained/mnist_k512. On the first --n-images test images: the float model
(torch, its own Poisson draws), the float-u reference (numpy, the integer sampler's uniforms, soft
clamp) and the integer reference at each weight width; R^2 from spikes at step T, MSE per pixel,
fraction of zeros, spikes per inference. Writes quantization.json and quantization.png, prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ipvae.export.fidelity import FidelityAccumulator
from ipvae.export.pipeline import ExportSettings, build_integer_model
from ipvae.export.quantize import quantize_input
from ipvae.export.reference import run_float_reference, run_reference
from ipvae.export.source import load_images, load_source

DEFAULT_RUN = Path("pretrained/mnist_k512")
DEFAULT_BITS = (4, 6, 8, 12, 16)
R2_BUDGET_8BIT = 0.02  # the quantization target: 8-bit loses at most 0.02 R^2
FLOAT_MODEL_REPEATS = 3  # torch's own Poisson draws: average a few seeds to shrink the sampling noise
TEST_SPLIT = "test"
METRICS = ("r2", "zeros", "spikes_per_inference", "mse_per_pixel")
LABELS = {"r2": "R^2 (spikes, t=T)", "zeros": "fraction of zeros", "spikes_per_inference": "spikes / inference",
          "mse_per_pixel": "MSE / pixel"}


def batches(n_images: int, batch_size: int):
    for start in range(0, n_images, batch_size):
        yield start, min(start + batch_size, n_images)


def float_model_fidelity(source, x: np.ndarray, n_steps: int, batch_size: int, seed: int) -> dict:
    """The torch model with its own draws, averaged over FLOAT_MODEL_REPEATS generator seeds."""
    import torch

    runs = []
    for repeat in range(FLOAT_MODEL_REPEATS):
        accumulator = FidelityAccumulator()
        generator = torch.Generator().manual_seed(seed + repeat)
        with torch.no_grad():
            for start, stop in batches(len(x), batch_size):
                steps = list(source.model.iterate(torch.from_numpy(x[start:stop]), n_steps, generator=generator))
                z = np.stack([s.z.numpy() for s in steps])  # [T, B, K]
                recon = np.stack([s.recon.numpy() for s in steps])  # [T, B, M]
                accumulator.add(x[start:stop], z, recon)
        runs.append(accumulator.result().as_dict())
    mean = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
    mean["r2_std_over_seeds"] = float(np.std([run["r2"] for run in runs]))
    mean["repeats"] = FLOAT_MODEL_REPEATS
    return mean


def float_reference_fidelity(source, x, n_steps, batch_size, seed) -> tuple[dict, list]:
    accumulator, spikes = FidelityAccumulator(), []
    for start, stop in batches(len(x), batch_size):
        result = run_float_reference(source.params, x[start:stop], n_steps, seed=seed, image_offset=start)
        accumulator.add(x[start:stop], result.z[1:], result.recon[1:])
        spikes.append(result.z)
    return accumulator.result().as_dict(), spikes


def integer_fidelity(model, x, n_steps, batch_size, float_spikes) -> dict:
    accumulator, agree, total = FidelityAccumulator(), 0, 0
    started = time.perf_counter()
    for index, (start, stop) in enumerate(batches(len(x), batch_size)):
        x_int = quantize_input(x[start:stop], model.input_scale, model.spec.input_bits)
        result = run_reference(model, x_int, n_steps, image_offset=start)
        accumulator.add(x[start:stop], result.z[1:], result.recon[1:])
        agree += int((result.z == float_spikes[index]).sum())
        total += result.z.size
    elapsed = time.perf_counter() - started
    metrics = accumulator.result().as_dict()
    metrics.update(
        spike_agreement_with_float_reference=agree / total,
        ff_exponents=model.ff.exponent_text(),
        rec_exponent=model.rec.exponent,
        self_exponent=None if model.self_inhibition is None else model.self_inhibition.exponent,
        lava_compatible=model.spec.lava_compatible,
        reference_ms_per_image=1e3 * elapsed / len(x),
    )
    return metrics


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits = sorted(int(b) for b in report["integer"])
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    for axis, metric in zip(axes, METRICS):
        axis.plot(bits, [report["integer"][str(b)][metric] for b in bits], "o-", label="integer reference")
        axis.axhline(report["float_model"][metric], color="k", linestyle="--", label="float model (torch)")
        axis.axhline(report["float_reference"][metric], color="gray", linestyle=":", label="float-u, shared uniforms")
        axis.set_xlabel("weight bits")
        axis.set_title(LABELS[metric])
        axis.set_xticks(bits)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"{report['run_dir']}: {report['n_images']} test images, T = {report['n_steps']}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def print_table(report: dict) -> None:
    header = f"{'model':<24}{'R^2':>8}{'dR^2':>8}{'MSE/px':>10}{'zeros':>8}{'spikes':>9}{'agree':>8}"
    print(header)
    print("-" * len(header))
    reference_r2 = report["float_model"]["r2"]
    rows = [(f"float model (torch) x{FLOAT_MODEL_REPEATS}", report["float_model"]), ("float-u (shared U)", report["float_reference"])]
    rows += [(f"integer {b}-bit", report["integer"][b]) for b in report["integer"]]
    for name, metrics in rows:
        agreement = metrics.get("spike_agreement_with_float_reference")
        print(
            f"{name:<24}{metrics['r2']:>8.4f}{metrics['r2'] - reference_r2:>+8.4f}{metrics['mse_per_pixel']:>10.5f}"
            f"{metrics['zeros']:>8.3f}{metrics['spikes_per_inference']:>9.1f}"
            + (f"{agreement:>8.3f}" if agreement is not None else f"{'':>8}")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--n-steps", type=int, help="inference steps T (default: the run's t_train)")
    parser.add_argument("--bits", type=int, nargs="+", default=list(DEFAULT_BITS))
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--calibration", type=int, default=1000, help="training images for the input scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/bench/quantization"))
    args = parser.parse_args(argv)
    if not (args.run_dir / "config.json").is_file():
        print(f"quantization benchmark: no run at {args.run_dir} (train one, or pass RUN_DIR)", file=sys.stderr)
        return 2
    source = load_source(args.run_dir)
    n_steps = args.n_steps or source.n_steps
    x = load_images(source.data, TEST_SPLIT, args.n_images, data_dir=source.data_dir, seed=source.data_seed)
    report = {
        "run_dir": str(args.run_dir),
        "checkpoint_sha256": source.checkpoint_sha256,
        "data": source.data,
        "n_images": len(x),
        "n_steps": n_steps,
        "seed": args.seed,
        "float_model": float_model_fidelity(source, x, n_steps, args.batch_size, args.seed),
    }
    report["float_reference"], float_spikes = float_reference_fidelity(source, x, n_steps, args.batch_size, args.seed)
    report["integer"] = {}
    for bits in args.bits:
        settings = ExportSettings(weight_bits=bits, seed=args.seed, calibration_images=args.calibration, n_steps=n_steps)
        model, _ = build_integer_model(source, settings)
        report["integer"][str(bits)] = integer_fidelity(model, x, n_steps, args.batch_size, float_spikes)
    for metrics in report["integer"].values():
        metrics["r2_loss_vs_float_model"] = report["float_model"]["r2"] - metrics["r2"]
        metrics["r2_loss_vs_float_reference_paired"] = report["float_reference"]["r2"] - metrics["r2"]
    if "8" in report["integer"]:
        report["r2_loss_8bit"] = report["integer"]["8"]["r2_loss_vs_float_model"]
        report["pass_8bit_within_0.02"] = bool(report["r2_loss_8bit"] <= R2_BUDGET_8BIT)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quantization.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "quantization.png")
    print_table(report)
    if "r2_loss_8bit" in report:
        verdict = "PASS" if report["pass_8bit_within_0.02"] else "FAIL"
        print(f"8-bit R^2 loss vs float model: {report['r2_loss_8bit']:+.4f} (budget {R2_BUDGET_8BIT}): {verdict}; "
              f"float model R^2 std over seeds {report['float_model']['r2_std_over_seeds']:.4f}")
    print(f"wrote {args.out / 'quantization.json'} and {args.out / 'quantization.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
