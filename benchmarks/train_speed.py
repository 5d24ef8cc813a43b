"""Training throughput of the unrolled iP-VAE step: the fast loss beside the old code paths.

One optimisation step = (a warm start of W ~ Uniform{0..warm_start_max} steps without gradient, when
the config has one) T unrolled inference steps, one backward pass, one Adamax update, on real MNIST
batches. Three code paths run in the same process, alternating repeat by repeat so that all see the
same machine load, on the same batches and the same warm-start lengths:

  reference  ``ipvae.train.reference_loss`` with every arrival's noise drawn: the trainer's code path
             when the speed target was set (Phi z and Phi^T D (x - Phi z) through pixel space every step,
             relaxed count over all [n, B, K] arrivals, autograd; warm start through pixel space, the
             lateral penalty on a second W);
  legacy     ``ipvae.train.reference_loss.legacy_loss``: the trainer until the active-neuron noise (the
             [K, K] lateral form, every arrival's noise drawn, warm start through pixel space, the
             penalty on a second W) -- what ``TrainConfig.legacy_numerics`` still runs;
  fast       ``IterativeVAE.loss``: the lateral form, the later arrivals' noise drawn only for neurons
             whose first arrival can matter, the warm start through W, the penalty on the loop's W.

``--config pretrained/mnist_k512.stage5.json`` (with ``--weights`` of the model it starts from) times
the shipped recipe's last stage: its T, B, cap, temperature, beta, warm start and lateral penalty; the
README's figures were measured with the cap-15 stage 5, ``pretrained/ablations/s5_cap15/stage5.json``.

A plain float32 matmul of the model's shapes ([B, M] x [M, K]) is timed in the same run as the peak.
"model GFLOP/s" counts the reference path's matmul work for every path (2 matmuls of 2*B*K*M per
inference step, times 3 for forward + backward, plus the mean warm start forward only), so it is
proportional to samples/s and its fraction of the peak compares the paths on one scale; "executed
GFLOP/s" counts what each path multiplies.
Reported: medians over repeats, after warm-up. Writes JSON and prints a table.

    python benchmarks/train_speed.py [--latents 512 --steps 16 --batch 100 --repeats 7 --temperature 0.5
                                      --weights RUN_DIR --config STAGE.json --out out/bench]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ipvae.fileio import write_json
from ipvae.train.checkpoint import load_run
from ipvae.train.config import ModelConfig, RunConfig
from ipvae.data import load_mnist
from ipvae.train.model import IterativeVAE
from ipvae.train.reference_loss import legacy_loss, reference_loss

MATMULS_PER_STEP = 2
FLOPS_PER_MAC = 2
FORWARD_PLUS_BACKWARD = 3
MATMUL_TIMING_CALLS = 20
PATHS = ("reference", "legacy", "fast")


def reference_matmul_flops(batch: int, latents: int, inputs: int, steps: int, warm_steps: float = 0.0) -> float:
    """The reference path's matmul work per optimisation step: the unrolled steps forward + backward,
    and the mean warm start (forward only) through pixel space."""
    per_step = MATMULS_PER_STEP * FLOPS_PER_MAC * batch * latents * inputs
    return FORWARD_PLUS_BACKWARD * per_step * steps + per_step * warm_steps


def lateral_warm_start_flops(batch: int, latents: int, warm_steps: float) -> float:
    """The fast path's mean warm start: one [B, K] x [K, K] product per step."""
    return FLOPS_PER_MAC * batch * latents * latents * warm_steps


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
    optimizer = torch.optim.Adamax(model.parameters(), lr=args.learning_rate)
    sampling = torch.Generator().manual_seed(0)
    order = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(0))
    warm_starts = torch.randint(args.warm_start_max + 1, (100_000,), generator=torch.Generator().manual_seed(1))

    def one_batch(index: int) -> None:
        rows = order[(index * args.batch) % (x_train.shape[0] - args.batch) :][: args.batch]
        terms = loss(model, x_train[rows], args.steps, beta=args.beta, temperature=args.temperature,
                     generator=sampling, warm_start_steps=int(warm_starts[index]), lateral_l1=args.lateral_l1)
        optimizer.zero_grad(set_to_none=True)
        terms.objective.backward()
        optimizer.step()

    return one_batch


LOSSES: dict[str, Callable] = {
    "reference": lambda model, *args, **kwargs: reference_loss(model, *args, **kwargs),
    "legacy": lambda model, *args, **kwargs: legacy_loss(model, *args, **kwargs),
    "fast": lambda model, *args, **kwargs: model.loss(*args, **kwargs),
}


def apply_stage_config(args) -> None:
    """Take T, B, temperature (its end value), beta, warm start, penalty and learning rate from a config."""
    train = RunConfig.from_dict(json.loads(Path(args.config).read_text())).train
    args.steps, args.batch, args.temperature = train.t_train, train.batch_size, train.temperature_end
    args.beta, args.warm_start_max, args.lateral_l1 = train.beta, train.warm_start_max, train.lateral_l1
    args.learning_rate = train.learning_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16, help="T_train")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.5, help="relaxed-Poisson temperature")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--warm-start-max", type=int, default=0)
    parser.add_argument("--lateral-l1", type=float, default=0.0)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--config", default=None,
                        help="a training config JSON whose T, B, temperature_end, beta, warm start, lateral_l1 "
                             "and learning rate override the options above")
    parser.add_argument("--weights", default=None, help="a run directory to start from (default: a fresh model)")
    parser.add_argument("--batches-per-repeat", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    if args.config:
        apply_stage_config(args)
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
    trainers = {name: make_trainer(replica(model), LOSSES[name], args, x_train) for name in PATHS}

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

    mean_warm_steps = args.warm_start_max / 2
    model_flops = reference_matmul_flops(args.batch, args.latents, n_inputs, args.steps, mean_warm_steps)
    lateral_flops = fast_matmul_flops(args.batch, args.latents, n_inputs, args.steps)
    pixel_warm_flops = reference_matmul_flops(args.batch, args.latents, n_inputs, 0, mean_warm_steps)
    executed_flops = {
        "reference": model_flops,
        "legacy": lateral_flops + pixel_warm_flops,
        "fast": lateral_flops + lateral_warm_start_flops(args.batch, args.latents, mean_warm_steps),
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
        "config": args.config,
        "beta": args.beta,
        "warm_start_max": args.warm_start_max,
        "lateral_l1": args.lateral_l1,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "matmul_peak_gflop_per_second": peak,
        "matmul_gflop_per_batch": model_flops / 1e9,
        "paths": paths,
        "speedup": paths["fast"]["samples_per_second"] / paths["reference"]["samples_per_second"],
        "speedup_vs_legacy": paths["fast"]["samples_per_second"] / paths["legacy"]["samples_per_second"],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "train_speed.json", result)
    print(f"K={args.latents} T={args.steps} B={args.batch} tau={args.temperature} beta={args.beta} "
          f"warm start <= {args.warm_start_max} lateral_l1={args.lateral_l1} weights={result['weights']} "
          f"threads={result['threads']}; matmul peak {peak:.1f} GFLOP/s")
    print(f"{'path':<10} {'ms/batch':>9} {'samples/s':>10} {'model GFLOP/s':>14} {'of peak':>8} {'executed GFLOP/s':>17}")
    for name in PATHS:
        row = paths[name]
        print(f"{name:<10} {row['median_seconds_per_batch'] * 1e3:9.1f} {row['samples_per_second']:10.1f} "
              f"{row['model_gflop_per_second']:14.1f} {row['model_fraction_of_matmul_peak']:8.1%} "
              f"{row['executed_gflop_per_second']:17.1f}")
    print(f"speed-up {result['speedup']:.2f}x over reference, {result['speedup_vs_legacy']:.2f}x over legacy; "
          f"wrote {out / 'train_speed.json'}")


if __name__ == "__main__":
    main()
