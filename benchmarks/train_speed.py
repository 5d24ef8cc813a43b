"""Training throughput of the unrolled iP-VAE step, the fast loss beside the reference path.

One optimisation step = T unrolled inference steps (forward), one backward pass, one Adamax update,
on real MNIST batches. Two code paths run in the same process, alternating repeat by repeat so that
both see the same machine load:

  reference  ``ipvae.train.reference_loss``: the direct computation (Phi z and Phi^T D (x - Phi z) through
             pixel space every step, relaxed count over all [n, B, K] arrivals, autograd);
  fast       ``IterativeVAE.loss``: the same numbers through the [K, K] lateral weights, relaxed count
             only where a first arrival can matter.

A plain float32 matmul of the model's shapes ([B, M] x [M, K]) is timed in the same run as the peak.
"model GFLOP/s" counts the reference path's matmul work for both paths (2 matmuls of 2*B*K*M per
inference step, times 3 for forward + backward), so it is proportional to samples/s and its fraction
of the peak compares the two paths on one scale; "executed GFLOP/s" counts what each path multiplies.
Reported: medians over repeats, after warm-up. Writes JSON and prints a table.

    python benchmarks/train_speed.py [--latents 512 --steps 16 --batch 100 --repeats 7 --temperature 0.5
                                      --weights RUN_DIR --out out/bench]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ipvae.fileio import write_json
from ipvae.train.checkpoint import load_run
from ipvae.train.config import ModelConfig
from ipvae.data import load_mnist
from ipvae.train.model import IterativeVAE
from ipvae.train.reference_loss import reference_loss

MATMULS_PER_STEP = 2
FLOPS_PER_MAC = 2
FORWARD_PLUS_BACKWARD = 3
MATMUL_TIMING_CALLS = 20
PATHS = ("reference", "fast")


def reference_matmul_flops(batch: int, latents: int, inputs: int, steps: int) -> int:
    """The reference path's matmul work per optimisation step (forward + backward)."""
    return FORWARD_PLUS_BACKWARD * MATMULS_PER_STEP * FLOPS_PER_MAC * batch * latents * inputs * steps


def fast_matmul_flops(batch: int, latents: int, inputs: int, steps: int) -> int:
    """What the fast path multiplies: W = Phi^T D Phi and Phi^T D x once (forward + two backward
    products each), z @ W for z_0..z_T (forward + two backward), and the metric's Phi z (forward only)."""
    lateral = FLOPS_PER_MAC * latents * latents * inputs
    feedforward = FLOPS_PER_MAC * batch * latents * inputs
    per_step = FLOPS_PER_MAC * batch * latents * latents
    metric = FLOPS_PER_MAC * batch * latents * inputs * steps
    return FORWARD_PLUS_BACKWARD * (lateral + (steps + 1) * per_step) + 2 * feedforward + metric


def matmul_peak_gflops(batch: int, latents: int, inputs: int, repeats: int) -> float:
    """Median GFLOP/s of a plain [B, M] x [M, K] float32 matmul."""
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(batch, inputs, generator=generator), torch.randn(inputs, latents, generator=generator)
    for _ in range(MATMUL_TIMING_CALLS):
        left @ right
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(MATMUL_TIMING_CALLS):
            left @ right
        seconds.append((time.perf_counter() - started) / MATMUL_TIMING_CALLS)
    return FLOPS_PER_MAC * batch * inputs * latents / statistics.median(seconds) / 1e9


def replica(model: IterativeVAE) -> IterativeVAE:
    copied = IterativeVAE(model.config)
    copied.load_state_dict(model.state_dict())
    return copied.train()


def make_trainer(model: IterativeVAE, loss: Callable, args, x_train: torch.Tensor) -> Callable[[int], None]:
    optimizer = torch.optim.Adamax(model.parameters(), lr=3e-3)
    sampling = torch.Generator().manual_seed(0)
    order = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(0))

    def one_batch(index: int) -> None:
        rows = order[(index * args.batch) % (x_train.shape[0] - args.batch) :][: args.batch]
        terms = loss(model, x_train[rows], args.steps, beta=1.0, temperature=args.temperature, generator=sampling)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()

    return one_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16, help="T_train")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.5, help="relaxed-Poisson temperature")
    parser.add_argument("--weights", default=None, help="a run directory to start from (default: a fresh model)")
    parser.add_argument("--batches-per-repeat", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, _ = load_mnist("train")
    x_train = x_train.reshape(x_train.shape[0], -1).float()  # [N, M]
    n_inputs = x_train.shape[1]
    if args.weights:
        model = load_run(args.weights).model
        args.latents = model.config.n_latents
    else:
        config = ModelConfig(n_inputs=n_inputs, n_latents=args.latents)
        model = IterativeVAE(config, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = {"reference": reference_loss, "fast": lambda m, *a, **k: m.loss(*a, **k)}
    trainers = {name: make_trainer(replica(model), losses[name], args, x_train) for name in PATHS}

    for name in PATHS:
        for index in range(args.warmup):
            trainers[name](index)
    seconds_per_batch: dict[str, list[float]] = {name: [] for name in PATHS}
    for repeat in range(args.repeats):
        for name in PATHS:
            started = time.perf_counter()
            for index in range(args.batches_per_repeat):
                trainers[name](args.warmup + repeat * args.batches_per_repeat + index)
            seconds_per_batch[name].append((time.perf_counter() - started) / args.batches_per_repeat)
    peak = matmul_peak_gflops(args.batch, args.latents, n_inputs, args.repeats)

    model_flops = reference_matmul_flops(args.batch, args.latents, n_inputs, args.steps)
    executed_flops = {
        "reference": model_flops,
        "fast": fast_matmul_flops(args.batch, args.latents, n_inputs, args.steps),
    }
    paths = {}
    for name in PATHS:
        median = statistics.median(seconds_per_batch[name])
        paths[name] = {
            "median_seconds_per_batch": median,
            "samples_per_second": args.batch / median,
            "model_gflop_per_second": model_flops / median / 1e9,
            "model_fraction_of_matmul_peak": model_flops / median / 1e9 / peak,
            "executed_gflop_per_batch": executed_flops[name] / 1e9,
            "executed_gflop_per_second": executed_flops[name] / median / 1e9,
            "seconds_per_batch_all": seconds_per_batch[name],
        }
    result = {
        "benchmark": "train_speed",
        "latents": args.latents,
        "inputs": n_inputs,
        "t_train": args.steps,
        "batch": args.batch,
        "temperature": args.temperature,
        "weights": args.weights or "fresh",
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflop_per_second": peak,
        "matmul_gflop_per_batch": model_flops / 1e9,
        "paths": paths,
        "speedup": paths["fast"]["samples_per_second"] / paths["reference"]["samples_per_second"],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "train_speed.json", result)
    print(f"K={args.latents} T={args.steps} B={args.batch} tau={args.temperature} weights={result['weights']} "
          f"threads={result['threads']}; matmul peak {peak:.1f} GFLOP/s")
    print(f"{'path':<10} {'ms/batch':>9} {'samples/s':>10} {'model GFLOP/s':>14} {'of peak':>8} {'executed GFLOP/s':>17}")
    for name in PATHS:
        row = paths[name]
        print(f"{name:<10} {row['median_seconds_per_batch'] * 1e3:9.1f} {row['samples_per_second']:10.1f} "
              f"{row['model_gflop_per_second']:14.1f} {row['model_fraction_of_matmul_peak']:8.1%} "
              f"{row['executed_gflop_per_second']:17.1f}")
    print(f"speed-up {result['speedup']:.2f}x; wrote {out / 'train_speed.json'}")


if __name__ == "__main__":
    main()
