"""What `ipvae train --data X --out R` (no other flags: the default recipe) gives on three sets: R^2 from spikes and
the fraction of zero counts at t = 16, 64, 256 and 1000 on held-out images.

The sets (``SETS``):

- ``mnist``: the named set. Its 10-epoch default run takes about 15 CPU minutes, so an existing run directory of
  that config is evaluated when given (``--mnist-run``, e.g. ``runs/time_to_quality/seed0``, which
  ``benchmarks/time_to_quality.py`` trains with exactly that config); otherwise it is trained.
- ``natural_patches``: the named set (whitened 16x16 patches of photographs, held-out photographs for the test).
- ``fashion_array``: a set a user brings as an array file: the first 10,000 Fashion-MNIST training images written
  to ``RUN_ROOT/fashion_mnist_10k.npy`` as [N, 28, 28] float32 in [0, 1] and trained from that file (the user-set
  path: read, a validation share carved off); evaluated on the Fashion-MNIST test images, which are the same kind
  of rows (the array is used as stored).

Each set is trained by running the CLI itself (``ipvae train --data X --out RUN_ROOT/NAME --threads 1``, in a
subprocess), unless the run directory already holds a model: then it is only evaluated, and the report says so. The
evaluation runs ``--steps`` inference steps with exact spike draws (seed 0) on the first ``--images`` test images
(ipvae.train.evaluate.run_inference). Written: ``OUT/NAME.json`` per set and ``OUT/table.md``, which holds every set
with a JSON file in OUT, so the sets can be measured by separate invocations (``--sets``); ``--table-only``
rebuilds the table alone.

    python benchmarks/own_data.py --mnist-run runs/time_to_quality/seed0 --out benchmarks/results/own_data
    python benchmarks/own_data.py --sets natural_patches --whitened-lateral-l1 30 --run-root runs/own_data_l1_30 \
        --out benchmarks/results/own_data/lateral_l1_30    # the natural patches with MNIST's penalty
    python benchmarks/own_data.py --quick     # tiny: checks the machinery, measures nothing
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ipvae.fileio import atomic_path, write_json

CHECKPOINTS = (16, 64, 256, 1000)
EVAL_IMAGES = 500
EVAL_STEPS = 1000
FASHION_ARRAY_IMAGES = 10_000
MNIST_SIDE = 28
CLI_ENTRY = "import sys; from ipvae.cli import main; sys.exit(main())"  # the `ipvae` console script, as a -c program
QUICK = {"train_flags": ["--train-limit", "200", "--epochs", "1", "--n-latents", "16", "--t-train", "4",
                         "--batch-size", "50"], "images": 20, "steps": 20, "array_images": 200}


@dataclass(frozen=True)
class OwnSet:
    """One set of the table: what `ipvae train --data` gets and which named test split it is scored on."""

    name: str
    test_data: str  # a named set (ipvae.data.get_dataset) whose "test" split is the held-out images
    why: str


SETS = (
    OwnSet("mnist", "mnist", "the named set the recipe was tuned on"),
    OwnSet("natural_patches", "natural_patches", "the paper's natural-image setting (whitened 16x16 patches)"),
    OwnSet("fashion_array", "fashion_mnist", "a user's own array file: 10,000 Fashion-MNIST images as [N, 28, 28]"),
)


def fashion_array(path: Path, n_images: int) -> Path:
    """The first n Fashion-MNIST training images as an [n, 28, 28] float32 .npy (written once)."""
    from ipvae.data import get_dataset

    if not path.exists():
        x, _ = get_dataset("fashion_mnist", "train", limit=n_images)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, x.reshape(-1, MNIST_SIDE, MNIST_SIDE).numpy().astype(np.float32))
    return path


def train_source(own: OwnSet, run_root: Path, array_images: int) -> str:
    if own.name == "fashion_array":
        size = f"{array_images // 1000}k" if array_images % 1000 == 0 else str(array_images)
        return str(fashion_array(run_root / f"fashion_mnist_{size}.npy", array_images))
    return own.name


def recipe_with_lateral_l1(path: Path, lateral_l1: float) -> Path:
    """A --config file: the stable recipe's sections for natural_patches, its penalised phase at ``lateral_l1``."""
    from ipvae.train.config import recipe_sections

    sections = recipe_sections("stable", "natural_patches", None)
    for phase in sections["train"]["phases"]:
        if phase["lateral_l1"]:
            phase["lateral_l1"] = lateral_l1
    write_json(path, sections)
    return path


def train_with_cli(data: str, run_dir: Path, train_flags: list[str]) -> dict:
    """`ipvae train --data DATA --out RUN_DIR --threads 1 FLAGS`; wall and CPU seconds of the process."""
    command = [sys.executable, "-c", CLI_ENTRY, "train", "--data", data, "--out", str(run_dir), "--threads", "1",
               *train_flags]
    started = time.perf_counter()
    before = _children_cpu_seconds()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return {"command": " ".join(["ipvae", *command[3:]]), "wall_seconds": time.perf_counter() - started,
            "cpu_seconds": _children_cpu_seconds() - before}


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def evaluate(run_dir: Path, test_data: str, n_images: int, n_steps: int) -> dict:
    """R^2 from spikes, zeros (and the rest of the per-step curves) at the checkpoints up to n_steps."""
    from ipvae.data import get_dataset
    from ipvae.train.checkpoint import load_run
    from ipvae.train.evaluate import EvalSettings, run_inference

    model = load_run(run_dir).model
    model.eval()
    x, _ = get_dataset(test_data, "test", limit=n_images)
    x = x.reshape(x.shape[0], -1).float()  # [N, M]
    settings = EvalSettings(t_test=n_steps, seed=0, curve_steps=n_steps, decode_rates=False)
    with torch.no_grad():
        _, curves, _ = run_inference(model, x, settings)
    steps = [t for t in CHECKPOINTS if t <= n_steps] or [n_steps]
    return {"images": int(x.shape[0]),
            "at": {str(t): {"r2": float(curves["r2"][t - 1]), "zeros": float(curves["zeros"][t - 1]),
                            "at_cap": float(curves["at_cap"][t - 1]), "near_u_max": float(curves["near_u_max"][t - 1])}
                   for t in steps}}


def table(results: dict) -> str:
    steps = list(next(iter(results.values()))["eval"]["at"])
    head = "| set | trained | " + " | ".join(f"R^2 t={t}" for t in steps) + " | " + \
        " | ".join(f"zeros t={t}" for t in steps) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(steps))]
    for name, result in results.items():
        at = result["eval"]["at"]
        trained = (f"{result['training']['cpu_seconds'] / 60:.1f} CPU min ({result['training']['wall_seconds'] / 60:.1f} "
                   "wall)" if result["training"]
                   else f"reused {result['run_dir']}")
        lines.append(f"| {name} | {trained} | " + " | ".join(f"{at[t]['r2']:.3f}" for t in steps) + " | "
                     + " | ".join(f"{at[t]['zeros']:.3f}" for t in steps) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(own.name for own in SETS), help="comma-separated subset of SETS")
    parser.add_argument("--mnist-run",
                        help="an existing run of `ipvae train --data mnist` to evaluate instead of training one")
    parser.add_argument("--run-root", default="runs/own_data", help="run directories are trained here")
    parser.add_argument("--images", type=int, default=EVAL_IMAGES)
    parser.add_argument("--steps", type=int, default=EVAL_STEPS)
    parser.add_argument("--out", default="out/bench/own_data")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery, measures nothing")
    parser.add_argument("--whitened-lateral-l1", type=float,
                        help="natural_patches: the stable recipe with this lateral L1 instead of WHITENED_LATERAL_L1 "
                             "(a --config file written in --run-root), to compare penalties")
    parser.add_argument("--table-only", action="store_true", help="only rebuild table.md from OUT's JSON files")
    args = parser.parse_args(argv)
    train_flags, array_images = [], FASHION_ARRAY_IMAGES
    if args.quick:
        train_flags, array_images = QUICK["train_flags"], QUICK["array_images"]
        args.images, args.steps = QUICK["images"], QUICK["steps"]
    wanted = args.sets.split(",")
    unknown = sorted(set(wanted) - {own.name for own in SETS})
    if unknown:
        raise SystemExit(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(own.name for own in SETS)}")
    out, run_root = Path(args.out), Path(args.run_root)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for own in (own for own in SETS if own.name in wanted and not args.table_only):
        run_dir = Path(args.mnist_run) if own.name == "mnist" and args.mnist_run else run_root / own.name
        training = None
        flags = list(train_flags)
        if own.name == "natural_patches" and args.whitened_lateral_l1 is not None:
            config = recipe_with_lateral_l1(run_root / f"stable_lateral_l1_{args.whitened_lateral_l1:g}.json",
                                            args.whitened_lateral_l1)
            flags = ["--config", str(config), *flags]
        if not (run_dir / "model.safetensors").exists():
            training = train_with_cli(train_source(own, run_root, array_images), run_dir, flags)
        started = time.perf_counter()
        evaluation = evaluate(run_dir, own.test_data, args.images, args.steps)
        result = {"set": own.name, "why": own.why, "run_dir": str(run_dir), "test_data": own.test_data,
                  "phases": json.loads((run_dir / "config.json").read_text())["train"]["phases"],
                  "training": training, "eval": evaluation, "eval_seconds": time.perf_counter() - started,
                  "quick": args.quick}
        write_json(out / f"{own.name}.json", result)
        results[own.name] = result
        print(own.name, " ".join(f"t={t}: R^2 {point['r2']:.3f} zeros {point['zeros']:.3f}"
                                 for t, point in evaluation["at"].items()), flush=True)
    for own in SETS:  # the sets of earlier invocations with this --out stand in the table too
        path = out / f"{own.name}.json"
        if own.name not in results and path.exists():
            results[own.name] = json.loads(path.read_text())
    results = {own.name: results[own.name] for own in SETS if own.name in results}
    text = table(results)
    with atomic_path(out / "table.md") as temporary:
        temporary.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
