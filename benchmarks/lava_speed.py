"""Speed of the Lava simulation (fixed_pt and floating_pt, Loihi2SimCfg) vs the integer reference.

    .venv/bin/python benchmarks/lava_speed.py [RUN_DIR] [--images 20] [--steps 32] [--repeats 3]
        [--batch B] [--reference-images 256] [--out out/bench]

RUN_DIR defaults to pretrained/mnist_k512 (K = 512, M = 784), quantized in memory with the default
export settings; without it a random model of the same size stands in (the JSON says which).
For each backend: one warm-up run, then --repeats timed runs of --images MNIST test images x T steps
(T + 1 Lava timesteps per window); the median is reported, as wall time and as this process's CPU
time (on a shared machine the CPU-time rate is the steadier figure; Lava's workers are other
processes, so only wall time is given for Lava). Lava compilation is timed separately. Lava fixed_pt
runs with --batch images side by side (default: all --images in one window, up to 32) and with one
image per window (batch 1, the layout before batching). The integer reference is timed batched
(--images, and --reference-images at once) and one image at a time.
Writes lava_speed.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipvae.export.quantize import quantize_input  # noqa: E402
from ipvae.export.reference import run_reference  # noqa: E402
from ipvae.lava.network import build_fixed_network, build_float_network  # noqa: E402
from ipvae.lava.pipeline import load_inputs, models_for_benchmark  # noqa: E402
from ipvae.lava.runner import LavaSimulation, balanced_batch  # noqa: E402

DEFAULT_RUN = Path("pretrained/mnist_k512")


def time_lava(network, x: np.ndarray, repeats: int) -> dict:
    started = time.perf_counter()
    with LavaSimulation(network, progress=False) as simulation:
        simulation.start()
        compile_seconds = time.perf_counter() - started
        simulation.run(x[: network.batch])  # warm-up (one window)
        seconds = [simulation.run(x, record_u=False).seconds for _ in range(repeats)]
    return summary(seconds, x.shape[0], network.window, compile_seconds=compile_seconds, batch=network.batch)


def time_reference(model, x: np.ndarray, n_steps: int, repeats: int, batched: bool) -> dict:
    payload = quantize_input(x, model.input_scale, model.spec.input_bits)
    run_reference(model, payload[:2], n_steps)  # warm-up (and the kernels' compilation or cache load)
    seconds, cpu_seconds = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        if batched:
            run_reference(model, payload, n_steps, with_recon=False)
        else:
            for index in range(payload.shape[0]):
                run_reference(model, payload[index : index + 1], n_steps, image_offset=index, with_recon=False)
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu_started)
    cpu_median = statistics.median(cpu_seconds)
    return summary(seconds, x.shape[0], n_steps + 1, images=x.shape[0], cpu_seconds_all=cpu_seconds,
                   images_per_cpu_second=x.shape[0] / cpu_median)


def summary(seconds: list[float], n_images: int, window: int, **extra) -> dict:
    median = statistics.median(seconds)
    return {
        "images_per_second": n_images / median,
        "images_per_second_fastest_repeat": n_images / min(seconds),  # the least disturbed run on a shared machine
        "ms_per_step": 1e3 * median / (n_images * window),
        "seconds_median": median,
        "seconds_all": seconds,
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=str(DEFAULT_RUN))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=None, help="Lava images side by side (default: balanced, up to 32)")
    parser.add_argument("--reference-images", type=int, default=256, help="images of the large batched reference run")
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args(argv)

    pair = models_for_benchmark(args.run_dir, seed=args.seed)
    model = pair.integer
    x = load_inputs("mnist", max(args.images, args.reference_images), model.n_inputs, n_steps=args.steps)
    x_large, x = x[: args.reference_images], x[: args.images]
    batch = balanced_batch(args.images) if args.batch is None else args.batch
    results = {
        "benchmark": "lava_speed",
        "model": pair.label,
        "n_inputs": model.n_inputs,
        "n_latents": model.n_latents,
        "images": args.images,
        "steps": args.steps,
        "lava_timesteps_per_image": args.steps + 1,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min_at_start": os.getloadavg()[0]},
        "lava_fixed_pt": time_lava(build_fixed_network(model, args.steps, batch=batch), x, args.repeats),
        "lava_fixed_pt_one_image_per_window": time_lava(build_fixed_network(model, args.steps, batch=1), x, args.repeats),
        "lava_floating_pt": time_lava(build_float_network(pair.float_params, args.steps, seed=args.seed, batch=batch),
                                      x, args.repeats),
        "reference_batched": time_reference(model, x, args.steps, args.repeats, batched=True),
        "reference_batched_large": time_reference(model, x_large, args.steps, args.repeats, batched=True),
        "reference_one_image_at_a_time": time_reference(model, x, args.steps, args.repeats, batched=False),
    }
    fixed = results["lava_fixed_pt"]["images_per_second"]
    results["reference_batched_speedup_over_lava_fixed_pt"] = results["reference_batched"]["images_per_second"] / fixed
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lava_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
