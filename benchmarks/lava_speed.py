"""Speed of the Lava simulation (fixed_pt and floating_pt, Loihi2SimCfg) vs the integer reference.

    .venv/bin/python benchmarks/lava_speed.py [RUN_DIR] [--images 20] [--steps 32] [--repeats 3] [--out out/bench]

RUN_DIR defaults to pretrained/mnist_k512 (K = 512, M = 784), quantized in memory with the default
export settings; without it a random model of the same size stands in (the JSON says which).
For each backend: one warm-up run, then --repeats timed runs of --images MNIST test images x T steps
(T + 1 Lava timesteps per image); the median is reported. Lava compilation is timed separately.
The integer reference is timed batched (all images at once, its normal use) and one image at a time.
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
from ipvae.lava.runner import LavaSimulation  # noqa: E402

DEFAULT_RUN = Path("pretrained/mnist_k512")


def time_lava(network, x: np.ndarray, repeats: int) -> dict:
    started = time.perf_counter()
    with LavaSimulation(network, progress=False) as simulation:
        simulation.start()
        compile_seconds = time.perf_counter() - started
        simulation.run(x[:2])  # warm-up
        seconds = [simulation.run(x, record_u=False).seconds for _ in range(repeats)]
    return summary(seconds, x.shape[0], network.window, compile_seconds=compile_seconds)


def time_reference(model, x: np.ndarray, n_steps: int, repeats: int, batched: bool) -> dict:
    payload = quantize_input(x, model.input_scale, model.spec.input_bits)
    run_reference(model, payload[:2], n_steps)  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        if batched:
            run_reference(model, payload, n_steps)
        else:
            for index in range(payload.shape[0]):
                run_reference(model, payload[index : index + 1], n_steps, image_offset=index)
        seconds.append(time.perf_counter() - started)
    return summary(seconds, x.shape[0], n_steps + 1)


def summary(seconds: list[float], n_images: int, window: int, **extra) -> dict:
    median = statistics.median(seconds)
    return {
        "images_per_second": n_images / median,
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
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args(argv)

    pair = models_for_benchmark(args.run_dir, seed=args.seed)
    model = pair.integer
    x = load_inputs("mnist", args.images, model.n_inputs, n_steps=args.steps)
    results = {
        "benchmark": "lava_speed",
        "model": pair.label,
        "n_inputs": model.n_inputs,
        "n_latents": model.n_latents,
        "images": args.images,
        "steps": args.steps,
        "lava_timesteps_per_image": args.steps + 1,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "lava_fixed_pt": time_lava(build_fixed_network(model, args.steps), x, args.repeats),
        "lava_floating_pt": time_lava(build_float_network(pair.float_params, args.steps, seed=args.seed), x, args.repeats),
        "reference_batched": time_reference(model, x, args.steps, args.repeats, batched=True),
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
