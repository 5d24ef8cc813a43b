"""`ipvae demo`: the main job on the shipped pretrained model, with no training needed.

1. Float model: evaluates the pretrained iP-VAE on MNIST test images (reconstruction, sparsity,
   spikes) and writes its per-step curves and dictionary as PNGs.
2. Export: quantizes the checkpoint to integers and writes the HDF5 file (``ipvae.export.pipeline``), then
   reads it back through the validating reader, as a Lava user would.
3. Lava: runs a few dozen test images through the Lava process graph (Loihi2SimCfg, fixed_pt),
   prints the table (spikes, synaptic operations, energy estimate per inference, dense baselines,
   reconstruction), the event-driven operation counts beside the re-send-every-step ones, writes the figures, and runs the integer reference on the same images and seed
   for the parity verdict. Exits 1 if parity fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from ipvae.limits import integer_flag

MNIST_PIXELS = 28 * 28
DEMO_TEST_IMAGES = 500
DEMO_T_TEST = 64
# Per-step curves up to T_test only: curves to 256 steps cost ten times the evaluation on 2 shared cores
# (`ipvae eval RUN --curves 1000` draws the long curves).
DEMO_CURVE_STEPS = DEMO_T_TEST
DEMO_LAVA_IMAGES = 32
DEMO_LAVA_STEPS = 64
PARITY_FAILED_EXIT = 1
# (label, key of the event-driven account; the re-send-every-step one is "resend_" + key)
ACCOUNT_ROWS = (
    ("input events", "input_events_per_inference"),
    ("synaptic ops, feed-forward", "synops_feedforward_per_inference"),
    ("synaptic ops, lateral", "synops_lateral_per_inference"),
    ("synaptic ops, readout", "synops_readout_per_inference"),
    ("synaptic ops, total", "synops_per_inference"),
    ("neuron updates", "neuron_updates_per_inference"),
    ("energy estimate (nJ)", "energy_estimate_nj"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="pretrained model -> float evaluation -> export -> Lava simulation, energy table and parity",
    )
    parser.add_argument("run_dir", nargs="?", default="pretrained/mnist_k512")
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--lava-images", type=integer_flag(1), default=DEMO_LAVA_IMAGES, help="test images through Lava")
    parser.add_argument("--lava-steps", type=integer_flag(1), default=DEMO_LAVA_STEPS, help="inference steps T on Lava")
    parser.add_argument("--eval-images", type=integer_flag(1), default=DEMO_TEST_IMAGES,
                        help="test images for the float evaluation")
    parser.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from ipvae.errors import IpvaeError, shown
    from ipvae.fileio import prepare_output_dir
    from ipvae.limits import check_memory, evaluation_bytes, inference_record_bytes
    from ipvae.train.checkpoint import load_config

    model = load_config(args.run_dir).model
    if model.n_inputs != MNIST_PIXELS:
        raise IpvaeError(f"the demo runs MNIST; {shown(args.run_dir)} takes {model.n_inputs} inputs, not {MNIST_PIXELS} "
                         f"(use 'ipvae eval', 'export' and 'run' with its own data)")
    check_memory(evaluation_bytes(args.eval_images, DEMO_T_TEST, model.n_latents, model.n_inputs, args.eval_images)
                 + inference_record_bytes(args.lava_images, args.lava_steps, model.n_latents, model.n_inputs,
                                          record_u=True, backends=2),
                 f"--eval-images {args.eval_images} --lava-images {args.lava_images} --lava-steps {args.lava_steps}")
    out = prepare_output_dir(args.out)
    float_figures = float_evaluation(args.run_dir, out, args.eval_images)
    model_path = export_model(args.run_dir, out / "model.h5")
    verdict_ok, lava_figures = lava_simulation(model_path, out / "lava", args.lava_images, args.lava_steps)
    print(json.dumps({"figures": [str(path) for path in float_figures + lava_figures], "export": str(model_path)}))
    return 0 if verdict_ok else PARITY_FAILED_EXIT


def float_evaluation(run_dir: str, out: Path, n_images: int) -> list[Path]:
    """The float PyTorch model's metrics and plots (eval.json, curves.png, dictionary.png)."""
    from ipvae.fileio import write_json
    from ipvae.train.checkpoint import load_run
    from ipvae.train.cli import format_table
    from ipvae.train.evaluate import EvalSettings, evaluate_run
    from ipvae.train.plots import plot_curves, plot_dictionary

    run = load_run(run_dir)
    settings = EvalSettings(t_test=DEMO_T_TEST, curve_steps=DEMO_CURVE_STEPS)
    report = evaluate_run(run.model, "mnist", settings, test_limit=n_images, probe_train_limit=0)
    write_json(out / "eval.json", report.metrics)
    curves, dictionary = out / "curves.png", out / "dictionary.png"
    plot_curves(report.curves, run.config.train.t_train, curves, title=f"{run_dir} on MNIST")
    plot_dictionary(run.model.phi.detach().numpy(), (28, 28), dictionary)
    print(f"== float model (PyTorch), {report.metrics['images']} MNIST test images, T = {DEMO_T_TEST}")
    print(format_table(report.metrics))
    return [curves, dictionary]


def export_model(run_dir: str, path: Path) -> Path:
    """Quantize with the default settings and write the HDF5 export (atomic)."""
    from ipvae.export.pipeline import ExportSettings, export_run

    model, metadata = export_run(run_dir, path, ExportSettings())
    print(f"== export: {path} (K={model.n_latents}, M={model.n_inputs}, {model.spec.weight_bits}-bit weights, "
          f"ff {model.ff.exponent_text()}, rec exp {model.rec.exponent:+d}, seed {model.spec.seed})")
    return path


def lava_simulation(model_path: Path, out: Path, n_images: int, n_steps: int) -> tuple[bool, list[Path]]:
    """Lava fixed_pt run + table + figures, the integer reference on the same images, the parity verdict."""
    from ipvae.fileio import write_json
    from ipvae.lava.cli import format_table, write_figures
    from ipvae.lava.parity import compare_trajectories
    from ipvae.lava.pipeline import load_inputs, read_export, run_backend, summarize

    model = read_export(model_path)
    x = load_inputs("mnist", n_images, model.n_inputs, n_steps=n_steps)
    lava = run_backend(model, x, n_steps, "lava")
    table, curves = summarize(model, x, lava)
    reference = run_backend(model, x, n_steps, "reference")
    report = compare_trajectories(lava.z, lava.u, reference.z, reference.u)
    figures = write_figures(out, model, x, lava.z, curves, table)
    import numpy as np

    write_json(out / "run.json", {**table, "parity": report.verdict(), "curves": {k: np.asarray(v).tolist() for k, v in curves.items()}})
    print(f"== Lava simulation (Loihi2SimCfg, fixed_pt): {n_images} MNIST test images, T = {n_steps}")
    print(format_table(table))
    print(format_accounts(table))
    print(report.verdict())
    return report.identical, figures


def format_accounts(table: dict) -> str:
    """The same inference's counts per inference: re-sending the input and decoding every step vs event-driven."""
    header = ("per inference", "re-send every step", "event-driven", "ratio")
    rows = [header]
    for label, key in ACCOUNT_ROWS:
        resend, event = table[f"resend_{key}"], table[key]
        ratio = f"{resend / event:.1f}x" if event > 0 else "-"
        rows.append((label, f"{resend:,.0f}", f"{event:,.0f}", ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{row[0]:<{widths[0]}}  " + "  ".join(f"{cell:>{w}}" for cell, w in zip(row[1:], widths[1:])) for row in rows]
    note = ("event-driven: the image sent once as input events into a held drive, the decoder applied once at the "
            "last step (ipvae.lava.accounting.energy.count_event_operations); same spikes, same parity")
    return "\n".join(["== operation counts: re-send every step vs event-driven"] + lines + [note])
