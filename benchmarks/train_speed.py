"""Training throughput of the unrolled iP-VAE step: samples/s and achieved GFLOP/s.

One optimisation step = T unrolled inference steps (forward), one backward pass, one Adamax update,
on real MNIST batches. FLOPs counted: the two matmuls per inference step (Phi z and Phi^T D r, each
2*B*K*M) in the forward pass, times 3 for forward + backward (the backward of a matmul costs two).
Reported: median over repeats, after warm-up. Writes JSON and prints a table.

    python benchmarks/train_speed.py [--latents 512 --steps 16 --batch 100 --repeats 7 --out out/bench]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from ipvae.train.config import ModelConfig
from ipvae.data import load_mnist
from ipvae.train.model import IterativeVAE

MATMULS_PER_STEP = 2
FLOPS_PER_MAC = 2
FORWARD_PLUS_BACKWARD = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16, help="T_train")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches-per-repeat", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, _ = load_mnist("train")
    n_inputs = x_train.shape[1]
    model = IterativeVAE(ModelConfig(n_inputs=n_inputs, n_latents=args.latents), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adamax(model.parameters(), lr=3e-3)
    sampling = torch.Generator().manual_seed(0)
    order = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(0))

    def one_batch(index: int) -> None:
        rows = order[(index * args.batch) % (x_train.shape[0] - args.batch):][: args.batch]
        terms = model.loss(x_train[rows], args.steps, beta=1.0, temperature=0.5, generator=sampling)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()

    for index in range(args.warmup):
        one_batch(index)
    seconds_per_batch = []
    for repeat in range(args.repeats):
        started = time.perf_counter()
        for index in range(args.batches_per_repeat):
            one_batch(args.warmup + repeat * args.batches_per_repeat + index)
        seconds_per_batch.append((time.perf_counter() - started) / args.batches_per_repeat)

    median_seconds = statistics.median(seconds_per_batch)
    flops_per_batch = (
        FORWARD_PLUS_BACKWARD * MATMULS_PER_STEP * FLOPS_PER_MAC * args.batch * args.latents * n_inputs * args.steps
    )
    result = {
        "benchmark": "train_speed",
        "latents": args.latents,
        "inputs": n_inputs,
        "t_train": args.steps,
        "batch": args.batch,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "median_seconds_per_batch": median_seconds,
        "samples_per_second": args.batch / median_seconds,
        "matmul_gflop_per_batch": flops_per_batch / 1e9,
        "achieved_gflop_per_second": flops_per_batch / median_seconds / 1e9,
        "seconds_per_batch_all": seconds_per_batch,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, result))
    for key in ("latents", "t_train", "batch", "threads", "median_seconds_per_batch", "samples_per_second",
                "achieved_gflop_per_second"):
        value = result[key]
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(f"wrote {out / 'train_speed.json'}")


if __name__ == "__main__":
    main()
