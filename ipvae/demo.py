"""`ipvae demo`: the main job on the shipped pretrained model, with no training needed.

Evaluates the pretrained iP-VAE on MNIST test images (reconstruction, sparsity, spikes) and writes
its per-step curves and dictionary as PNGs.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_TEST_IMAGES = 1000
DEMO_T_TEST = 64
DEMO_CURVE_STEPS = 256


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="evaluate the shipped pretrained model and write its figures")
    parser.add_argument("run_dir", nargs="?", default="pretrained/mnist_k512")
    parser.add_argument("--out", default="out/demo")
    parser.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from ipvae.fileio import write_json
    from train.checkpoint import load_run
    from train.cli import format_table
    from train.evaluate import EvalSettings, evaluate_run
    from train.plots import plot_curves, plot_dictionary

    run = load_run(args.run_dir)
    out = Path(args.out)
    settings = EvalSettings(t_test=DEMO_T_TEST, curve_steps=DEMO_CURVE_STEPS)
    report = evaluate_run(run.model, "mnist", settings, test_limit=DEMO_TEST_IMAGES, probe_train_limit=0)
    write_json(out / "eval.json", report.metrics)
    plot_curves(report.curves, run.config.train.t_train, out / "curves.png", title=f"{args.run_dir} on MNIST")
    plot_dictionary(run.model.phi.detach().numpy(), (28, 28), out / "dictionary.png")
    print(format_table(report.metrics))
    print(json.dumps({"figures": [str(out / "curves.png"), str(out / "dictionary.png")]}))
    return 0
