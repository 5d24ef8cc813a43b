"""Time to quality: wall minutes of `ipvae train`'s default (stable) recipe, from scratch, until the model
reconstructs held-out images well and sparsely.

Each run trains with exactly the config `ipvae train --data DATA --out RUN --seed S` builds (plus the size
flags below), in slices of ``--eval-every`` optimisation steps (slicing is bit-identical to an uninterrupted
run), and after each slice evaluates the model on the first ``--eval-images`` test images: exact integer
spike draws for ``--eval-steps`` steps (ipvae.train.evaluate.run_inference, seed 0), R^2 from spikes and
the fraction of zero counts at the last step. The time to quality is the training time (the trainer's loop,
summed over the slices; the evaluations and the slices' set-up are reported apart) at the first evaluation
with R^2 >= ``--r2-target`` and zeros >= ``--zeros-target``. Reported: every run's curve, the median time
over the runs (and the process's CPU time, which on a machine shared with other jobs tells how much of the wall
time was waiting for a core) (``null`` when a run did not get there within its epochs or ``--budget-minutes``), the machine.
Progress is written after every evaluation, so a run cut short still leaves what it reached.

    python benchmarks/time_to_quality.py [--runs 3 --out out/bench/time_to_quality.json --run-root runs/ttq]
    python benchmarks/time_to_quality.py --quick     # a few seconds: tiny sizes, checks the machinery only
    python benchmarks/time_to_quality.py --stability-of runs/time_to_quality/seed0   # the long runs of a model

``--stability-of RUN`` runs a trained model for 1000 steps on 100 images each of MNIST, MNIST rotated 90 degrees
and Fashion-MNIST (ipvae.train.stability, as tests/test_stability.py does for the shipped model) and prints R^2
and zeros at t = 16, 64, 256, 1000 with the stability verdict (the change from t = 64 to 1000).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from ipvae.fileio import write_json

R2_TARGET = 0.93
ZEROS_TARGET = 0.84
EVAL_IMAGES = 1000
EVAL_STEPS = 64
SECONDS_PER_MINUTE = 60.0
QUICK = {"train_flags": ["--train-limit", "200", "--epochs", "2", "--n-latents", "16", "--t-train", "4",
                         "--batch-size", "50"], "eval_images": 50, "eval_steps": 8}


def machine() -> dict:
    """CPU model, logical CPUs and the torch threads the runs used."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def build_run_config(data: str, run_dir: Path, seed: int, train_flags: list[str]):
    """The config `ipvae train --data DATA --out RUN --seed S FLAGS` builds: the default recipe."""
    from ipvae.cli import build_parser
    from ipvae.train.cli import build_config

    args = build_parser().parse_args(["train", "--data", data, "--out", str(run_dir), "--seed", str(seed), *train_flags])
    return build_config(args)


def held_out(data: str, n_images: int) -> torch.Tensor:
    from ipvae.data import get_dataset

    x, _ = get_dataset(data, "test", limit=n_images)
    return x.reshape(x.shape[0], -1).float()  # [N, M]


def evaluate(run_dir: Path, x: torch.Tensor, n_steps: int) -> dict:
    from ipvae.train.checkpoint import load_run
    from ipvae.train.evaluate import EvalSettings, run_inference

    model = load_run(run_dir).model
    model.eval()
    with torch.no_grad():
        metrics, _, _ = run_inference(model, x, EvalSettings(t_test=n_steps, seed=0, decode_rates=False))
    return {"r2": metrics["r2"], "zeros": metrics["zeros"]}


def one_run(args, seed: int, x_eval: torch.Tensor, report: dict, out: Path, previous: dict | None = None) -> dict:
    """Train one seed in slices, evaluating after each; stop at the targets, the end or the budget.
    ``previous``: this seed's entry of an earlier report, continued from its last evaluation (--resume)."""
    from ipvae.train.checkpoint import load_config
    from ipvae.train.trainer import train

    run_dir = Path(args.run_root) / f"seed{seed}"
    config = build_run_config(args.data, run_dir, seed, args.train_flags)
    if previous is not None:
        if load_config(run_dir) != config:
            raise SystemExit(f"{run_dir} was trained with another config; run without --resume")
        result = previous
        steps, resume = result["curve"][-1]["step"], True
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # from scratch
        run_dir.mkdir(parents=True)
        result = {"seed": seed, "run_dir": str(run_dir), "curve": [], "train_seconds": 0.0, "train_cpu_seconds": 0.0,
                  "setup_seconds": 0.0, "eval_seconds": 0.0, "minutes_to_quality": None, "reached": False}
        steps, resume = 0, False
    report["runs"].append(result)
    if result["reached"]:
        return result
    while True:
        started, cpu_started = time.perf_counter(), time.process_time()
        trained = train(config, run_dir, resume=resume, show_progress=False, max_steps=steps + args.eval_every)
        result["setup_seconds"] += time.perf_counter() - started - trained.seconds
        result["train_cpu_seconds"] += time.process_time() - cpu_started  # set-up included; all threads summed
        result["train_seconds"] += trained.seconds
        finished = trained.steps == steps  # nothing left to train
        steps, resume = trained.steps, True
        if finished:
            break
        started = time.perf_counter()
        quality = evaluate(run_dir, x_eval, args.eval_steps)
        result["eval_seconds"] += time.perf_counter() - started
        point = {"step": steps, "train_minutes": result["train_seconds"] / SECONDS_PER_MINUTE,
                 "train_cpu_minutes": result["train_cpu_seconds"] / SECONDS_PER_MINUTE, **quality}
        result["curve"].append(point)
        print(f"seed {seed} step {steps}: {point['train_minutes']:.2f} min ({point['train_cpu_minutes']:.2f} CPU min), "
              f"R^2 {quality['r2']:.4f}, "
              f"zeros {quality['zeros']:.4f}", file=sys.stderr, flush=True)
        if quality["r2"] >= args.r2_target and quality["zeros"] >= args.zeros_target:
            result["reached"], result["minutes_to_quality"] = True, point["train_minutes"]
        write_json(out, report)
        over_budget = args.budget_minutes is not None and result["train_seconds"] > args.budget_minutes * SECONDS_PER_MINUTE
        if result["reached"] or over_budget:
            break
    result["steps"] = steps
    write_json(out, report)
    return result


def table(report: dict) -> str:
    lines = [f"{'seed':>4}  {'steps':>6}  {'train min':>9}  {'eval min':>8}  {'R^2':>6}  {'zeros':>6}  reached"]
    for run in report["runs"]:
        last = run["curve"][-1] if run["curve"] else {"r2": float("nan"), "zeros": float("nan")}
        lines.append(f"{run['seed']:>4}  {run.get('steps', 0):>6}  {run['train_seconds'] / 60:>9.2f}  "
                     f"{run['eval_seconds'] / 60:>8.2f}  {last['r2']:>6.4f}  {last['zeros']:>6.4f}  "
                     f"{run['minutes_to_quality'] if run['reached'] else 'no'}")
    lines.append(f"median minutes to R^2 >= {report['targets']['r2']} and zeros >= {report['targets']['zeros']} "
                 f"at T = {report['targets']['eval_steps']}: {report['median_minutes_to_quality']}")
    return "\n".join(lines)


def stability_of(run_dir: str, n_images: int = 100, n_steps: int = 1000) -> dict:
    """R^2 and zeros at the checkpoints and the stability verdict of a model's long runs on the stability sets."""
    from ipvae.train.checkpoint import load_run
    from ipvae.train.stability import at_checkpoints, long_run_curves, stability_sets, stability_verdict

    model = load_run(run_dir).model
    report = {}
    for name, x in stability_sets(n_images).items():
        curves = long_run_curves(model, x, n_steps)
        report[name] = {"verdict": stability_verdict(curves, early=64, late=n_steps).as_dict(),
                        "at": {step: {"r2": point["r2"], "zeros": point["zeros"]}
                               for step, point in at_checkpoints(curves).items()}}
        print(name, " ".join(f"t={step}: R^2 {point['r2']:.3f} zeros {point['zeros']:.3f}"
                             for step, point in report[name]["at"].items()), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--runs", type=int, default=3, help="seeds 0..runs-1")
    parser.add_argument("--eval-images", type=int, default=EVAL_IMAGES)
    parser.add_argument("--eval-steps", type=int, default=EVAL_STEPS)
    parser.add_argument("--eval-every", type=int, default=600, help="optimisation steps between evaluations (MNIST: one epoch)")
    parser.add_argument("--r2-target", type=float, default=R2_TARGET)
    parser.add_argument("--zeros-target", type=float, default=ZEROS_TARGET)
    parser.add_argument("--budget-minutes", type=float, help="stop a run after this much training time")
    parser.add_argument("--run-root", default="runs/time_to_quality", help="run directories (checkpoints) go here")
    parser.add_argument("--out", default="out/bench/time_to_quality.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery, measures nothing")
    parser.add_argument("--resume", action="store_true",
                        help="continue the runs of --out's report from their last evaluation (times add up)")
    parser.add_argument("--stability-of", metavar="RUN", help="only: the long runs of a trained model (see above)")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER, help="after --: more `ipvae train` flags")
    args = parser.parse_args(argv)
    args.train_flags = [flag for flag in args.train_flags if flag != "--"]
    if args.quick:
        args.train_flags = QUICK["train_flags"] + args.train_flags
        args.eval_images, args.eval_steps, args.eval_every = QUICK["eval_images"], QUICK["eval_steps"], 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.stability_of:
        write_json(out, {"benchmark": "stability", "run_dir": args.stability_of, "machine": machine(),
                         "sets": stability_of(args.stability_of)})
        return 0
    report = {"benchmark": "time_to_quality", "quick": args.quick, "data": args.data, "train_flags": args.train_flags,
              "targets": {"r2": args.r2_target, "zeros": args.zeros_target, "eval_steps": args.eval_steps,
                          "eval_images": args.eval_images},
              "machine": machine(), "runs": [], "median_minutes_to_quality": None}
    earlier = {}
    if args.resume and out.exists():
        import json

        earlier = {run["seed"]: run for run in json.loads(out.read_text())["runs"] if run["curve"]}
    x_eval = held_out(args.data, args.eval_images)
    for seed in range(args.runs):
        one_run(args, seed, x_eval, report, out, earlier.get(seed))
    times = [run["minutes_to_quality"] for run in report["runs"]]
    report["median_minutes_to_quality"] = statistics.median(times) if all(t is not None for t in times) else None
    write_json(out, report)
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
