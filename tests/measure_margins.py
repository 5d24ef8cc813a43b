"""Measure the spread of what the statistical tests threshold, over seeds and thread counts.

Not a test (pytest collects only test_*.py): the numbers quoted in the comments at the assertions
come from this script, so anyone can rerun them on their own CPU:

    PYTHONPATH=$PWD python tests/measure_margins.py --seeds 0-9 --threads 1 2 [--only bars ...]

Each thread count runs in a fresh process with OMP_NUM_THREADS set (numpy's BLAS reads it at import)
and torch.set_num_threads; the summary prints min / median / max of every quantity per measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # import the test modules as pytest does (rootdir-relative, no package)


def bars_recovery(seed: int) -> dict:
    """test_training.py's planted-bars recovery with training seed `seed` (and its untrained dictionary)."""
    import ipvae.train.trainer as trainer_module
    from test_training import bars_recovery_config, initial_dictionary, planted_bars_data, recovery_scores
    from ipvae.train.checkpoint import load_run

    planted = planted_bars_data()
    trainer_module.get_dataset = lambda name, split, **kwargs: (planted.x, None)
    config = bars_recovery_config(seed)
    chance = recovery_scores(planted.phi, initial_dictionary(config))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer_module.train(config, Path(run_dir), show_progress=False)
        learned = load_run(Path(run_dir)).model.phi.detach()
    scores = recovery_scores(planted.phi, learned)
    return {"min_best_match": float(scores.min()), "median_best_match": float(scores.median()),
            "untrained_median": float(chance.median()), "untrained_max": float(chance.max())}


def gaussian_loss_drop(seed: int) -> dict:
    """test_training.py::test_gaussian_families_train_through_the_same_loop: relative loss drop per family."""
    import ipvae.train.trainer as trainer_module
    from test_training import gaussian_family_losses, planted_bars_data

    planted = planted_bars_data()
    trainer_module.get_dataset = lambda name, split, **kwargs: (planted.x, None)
    out = {}
    for family in ("gaussian", "gaussian_relu"):
        with tempfile.TemporaryDirectory() as run_dir:
            before, after = gaussian_family_losses(family, planted.x[:200], Path(run_dir), seed=seed)
        out[f"{family}_after_over_before"] = after / before
    return out


def high_precision_limit(seed: int) -> dict:
    """test_export_reference.py: integer reference vs float dynamics with 16-bit weights."""
    from test_export_reference import high_precision_agreement

    return high_precision_agreement(params_seed=5 + seed, image_seed=6 + seed, spec_seed=17 + seed)


def float_reference_vs_torch(seed: int) -> dict:
    """test_export_reference.py: largest |difference of mean counts| in standard errors over the steps."""
    from test_export_reference import float_reference_vs_torch_sigmas

    return {"max_sigmas": float_reference_vs_torch_sigmas(reference_seed=2 + seed, torch_seed=3 + seed).max()}


def exact_rate_sampler(seed: int) -> dict:
    """test_export_sampler.py: agreement of the table sampler with the exact-rate one at bin centres."""
    from test_export_sampler import table_vs_exact_rate_agreement

    return {"agreement": table_vs_exact_rate_agreement(uniform_seed=5 + seed)}


def relaxed_sample_bias(seed: int) -> dict:
    """test_distributions.py: bias of the relaxed sample's mean at temperatures 1, 0.3, 0.01, in standard errors."""
    from test_distributions import relaxed_sample_biases

    biases, standard_error = relaxed_sample_biases(seed=2 + seed)
    return {"bias_t1": biases[0], "bias_t03": biases[1], "bias_t001_in_se": biases[2] / standard_error}


def lava_float_vs_torch(seed: int) -> dict:
    """sim_tests/test_lava_float.py's statistical comparison, in standard errors, with the float reference in
    place of the Lava floating_pt graph (test_float_graph_equals_float_reference: identical counts)."""
    import torch

    from ipvae.export.reference import run_float_reference
    from sim_tests.conftest import float_params, images
    from sim_tests.test_lava_float import STAT_IMAGES, STAT_STEPS, per_image_statistics, torch_model

    params = float_params("sparse")
    x = images(STAT_IMAGES, seed=50)
    lava = run_float_reference(params, x, STAT_STEPS, seed=11 + seed).z[1:]  # [T, N, K]
    generator = torch.Generator().manual_seed(11 + seed)
    with torch.no_grad():
        steps = list(torch_model(params).iterate(torch.from_numpy(x).float(), STAT_STEPS, generator=generator))
    reference = torch.stack([step.z for step in steps]).numpy().astype(np.int64)  # [T, N, K]
    pairs = [per_image_statistics(lava, x, params.phi), per_image_statistics(reference, x, params.phi)]
    pairs = [(pairs[0][i], pairs[1][i]) for i in range(2)]
    pairs += [(lava[t].sum(axis=1).astype(float), reference[t].sum(axis=1).astype(float)) for t in range(STAT_STEPS)]
    sigmas = [abs(a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) for a, b in pairs]
    return {"max_sigmas": float(max(sigmas)), "spikes_per_inference": float(pairs[0][0].mean())}


MEASUREMENTS = {
    "lava_float_vs_torch": lava_float_vs_torch,
    "bars": bars_recovery,
    "gaussian": gaussian_loss_drop,
    "high_precision": high_precision_limit,
    "float_vs_torch": float_reference_vs_torch,
    "exact_rate": exact_rate_sampler,
    "relaxed": relaxed_sample_bias,
}


def parse_seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def run_here(names: list[str], seeds: list[int], threads: int) -> None:
    """Worker: one thread count, every seed; prints one JSON line per (measurement, seed)."""
    import torch

    torch.set_num_threads(threads)
    for name in names:
        for seed in seeds:
            with contextlib.redirect_stdout(io.StringIO()):  # the trainer logs metrics to stdout
                values = MEASUREMENTS[name](seed)
            print(json.dumps({"name": name, "seed": seed, "threads": threads, **values}), flush=True)


def summarise(rows: list[dict]) -> None:
    for name in dict.fromkeys(row["name"] for row in rows):
        for threads in sorted({row["threads"] for row in rows if row["name"] == name}):
            subset = [row for row in rows if row["name"] == name and row["threads"] == threads]
            for key in (k for k in subset[0] if k not in ("name", "seed", "threads")):
                values = np.array([row[key] for row in subset], dtype=np.float64)
                print(f"{name:16s} threads={threads} {key:28s} n={len(values):3d} min={values.min():.4g} "
                      f"median={np.median(values):.4g} max={values.max():.4g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="a seed or an inclusive range, e.g. 0-9")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(MEASUREMENTS), default=sorted(MEASUREMENTS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    if args.worker:
        run_here(args.only, seeds, args.threads[0])
        return
    rows = []
    for threads in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, __file__, "--worker", "--seeds", args.seeds, "--threads", str(threads),
                   "--only", *args.only]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        rows += [json.loads(line) for line in output.splitlines() if line.startswith('{"name"')]
    summarise(rows)


if __name__ == "__main__":
    main()
