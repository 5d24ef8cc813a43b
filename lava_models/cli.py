"""`ipvae run` (inference on Lava or the integer reference, with spike/energy table and figures) and
`ipvae parity` (bit-exact Lava fixed_pt vs integer reference)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ipvae.export.events import ReadoutMode, ReadoutSchedule
from ipvae.errors import IpvaeError, one_line
from ipvae.images import is_file_source
from ipvae.limits import check_memory, inference_record_bytes
from ipvae.fileio import prepare_output_dir

DEFAULT_RUN_OUT = "out/run"
TABLE_KEYS = (
    "images", "steps", "backend", "seed", "input", "input_threshold", "stop_window", "stop_eps", "readout",
    "mean_last_step", "spikes_per_inference", "events_per_inference", "input_events_per_inference",
    "synops_per_inference", "synops_feedforward_per_inference", "synops_lateral_per_inference",
    "synops_readout_per_inference", "binary_synops_per_inference", "neuron_updates_per_inference",
    "energy_estimate_nj", "resend_synops_per_inference", "resend_synops_feedforward_per_inference",
    "resend_synops_readout_per_inference", "resend_energy_estimate_nj", "dense_macs_per_inference",
    "dense_fp32_energy_nj", "amortized_vae_macs_per_inference", "amortized_vae_fp32_energy_nj",
    "energy_ratio_dense_fp32_over_estimate", "conventional_cheapest_arithmetic_nj",
    "conventional_cheapest_with_memory_nj", "amortized_vae_cheapest_with_memory_nj",
    "energy_ratio_vs_conventional_arithmetic", "energy_ratio_vs_conventional_with_memory",
    "energy_ratio_vs_amortized_vae_with_memory", "readout_r2", "readout_mse_per_pixel", "mse_per_pixel", "r2", "zeros",
    "images_per_second", "ms_per_step",
)
PARITY_MISMATCH_EXIT = 1
DEFAULT_DATASET_IMAGES = 20  # ipvae.lava.pipeline's default -n for a data set
DESCRIPTION_LIMIT = 600  # characters of the "input: ..." line (it names the files read)


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="run iP-VAE inference from an export on Lava (fixed_pt) or the integer reference",
        description="Run spiking inference from an export file; print spikes, synaptic operations and an "
        "energy estimate per inference (a table, or one JSON object with --json) and write PNGs.",
    )
    run.add_argument("model", help="export file written by 'ipvae export' (model.h5)")
    run.add_argument("--backend", default="lava", help="lava (Lava CPU simulator, fixed_pt) or reference (integer reference)")
    _add_data_arguments(run)
    run.add_argument("--readout", default="end", choices=[mode.value for mode in ReadoutMode],
                     help="when the decoder Phi is applied: end (last step), every (every --readout-every steps "
                     "and the last), average (the count average of the last --readout-window steps)")
    run.add_argument("--readout-every", type=int, default=1, metavar="K", help="k for --readout every (default 1)")
    run.add_argument("--readout-window", type=int, default=8, metavar="W", help="steps averaged by --readout average (default 8)")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    run.add_argument("--out", default=DEFAULT_RUN_OUT, help=f"folder for the PNGs and run.json (default {DEFAULT_RUN_OUT})")
    run.add_argument("--no-figures", action="store_true", help="skip the PNGs")
    run.set_defaults(func=run_command)

    parity = subparsers.add_parser(
        "parity",
        help="compare the Lava fixed_pt simulation with the integer reference, bit for bit",
        description="Run the same images, seed and image indices through Lava (Loihi2SimCfg, fixed_pt) and "
        "the integer reference; exit 0 only if every spike count and membrane potential is identical.",
    )
    parity.add_argument("model", help="export file written by 'ipvae export' (model.h5)")
    _add_data_arguments(parity)
    parity.add_argument("--json", action="store_true", help="print one JSON object")
    parity.set_defaults(func=parity_command)

    from ipvae.lava.plan_command import register as register_plan

    register_plan(subparsers)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from ipvae.export.cli import add_expect_sha256

    add_expect_sha256(parser)
    parser.add_argument("--data", default="mnist",
                        help="data set name (as in 'ipvae eval'); or image files (a PNG/JPEG file, a folder, a quoted "
                             "glob), prepared like MNIST; or a .npy/.npz array [N, M], [N, H, W] or frame sequences "
                             "[N, F, M]")
    parser.add_argument("--split", default="test", help="data set split (default test)")
    parser.add_argument("--start", type=int, default=0, help="index of the first image (default 0)")
    parser.add_argument("-n", "--images", type=int, default=None,
                        help="number of images (default: 20 of a data set, all of a file source)")
    parser.add_argument("--steps", type=int, default=None, help="inference steps T (default: the export's n_steps)")
    parser.add_argument("--seed", type=int, default=None, help="generator key (default: the export's seed)")
    parser.add_argument("--rotate", type=float, default=None, metavar="DEG",
                        help="moving input: each image rotates by DEG degrees per step")
    parser.add_argument("--threshold", type=int, default=0, metavar="LSB",
                        help="sigma-delta input threshold in payload LSBs: a pixel event only when its change exceeds it (default 0: exact)")
    parser.add_argument("--stop-window", type=int, default=0, metavar="W",
                        help="stop an image once its spike counts converge, checked every W steps (default 0: never)")
    parser.add_argument("--stop-eps", type=float, default=0.0, metavar="EPS",
                        help="stopping tolerance: relative L1 change of the W-step counts (multiple of 1/256; default 0)")
    parser.add_argument("--batch", type=int, default=None, metavar="B",
                        help="Lava: images side by side in one population (default: up to 32, windows evenly filled)")


def _check_inference_memory(args, model, n_steps: int, n_images: int, parity: bool) -> None:
    """Refuse, before inputs are loaded or arrays allocated, a run whose spike record cannot fit (one line)."""
    frames = n_steps if args.rotate is not None else 1
    needed = inference_record_bytes(n_images, n_steps, model.n_latents, model.n_inputs, record_u=parity,
                                    backends=2 if parity else 1, frames=frames,
                                    lava=parity or getattr(args, "backend", "lava") == "lava")
    check_memory(needed, f"-n {n_images} --steps {n_steps}" + (f" --start {args.start}" if args.start else "")
                 + f" ({model.n_latents} neurons, {model.n_inputs} inputs)")


def _prepare(args, parity: bool = False) -> tuple:
    from ipvae.export.events import EventOptions
    from ipvae.lava.network import check_batch
    from ipvae.lava.pipeline import check_input_range, check_steps, load_inputs_described, read_export, read_preparation

    options = EventOptions.from_real(input_threshold=args.threshold, stop_window=args.stop_window, stop_eps=args.stop_eps)
    if args.batch is not None:
        check_batch(args.batch)  # before the input line: a bad argument is reported alone
    if args.expect_sha256 is not None:
        from ipvae.export.hdf5 import read_model

        read_model(args.model, expected_sha256=args.expect_sha256)
    model = read_export(args.model, seed=args.seed)
    n_steps = check_steps(model.n_steps if args.steps is None else args.steps)
    from_files = is_file_source(args.data)
    preparation = read_preparation(args.model) if from_files else None
    if not from_files and args.start >= 0 and (args.images is None or args.images > 0):  # (else refused below)
        # a data set loads start + n images; a file's count is known once it is read
        _check_inference_memory(args, model, n_steps, args.start + (args.images or DEFAULT_DATASET_IMAGES), parity)
    loaded = load_inputs_described(args.data, args.images, model.n_inputs, split=args.split, start=args.start,
                                   rotate_degrees=None if from_files else args.rotate, n_steps=n_steps,
                                   preparation=preparation)
    if from_files:
        _check_inference_memory(args, model, n_steps, loaded.x.shape[0], parity)
        if args.rotate is not None:
            loaded = load_inputs_described(args.data, args.images, model.n_inputs, split=args.split, start=args.start,
                                           rotate_degrees=args.rotate, n_steps=n_steps)
    x = check_input_range(loaded.x, model)
    print(one_line(f"input: {loaded.description}", DESCRIPTION_LIMIT), file=sys.stderr)  # once the inputs are accepted
    return model, n_steps, x, options


def run_command(args) -> int:
    from ipvae.lava.pipeline import BACKENDS, run_backend, summarize

    if args.backend not in BACKENDS:
        raise IpvaeError(f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    out = prepare_output_dir(args.out)
    schedule = ReadoutSchedule(ReadoutMode(args.readout), every=args.readout_every, window=args.readout_window)
    model, n_steps, x, options = _prepare(args)
    run = run_backend(model, x, n_steps, args.backend, image_offset=args.start,
                      progress=None if not args.json else False, record_u=False, options=options, batch=args.batch)
    table, curves = summarize(model, x, run, schedule)
    if not args.no_figures:
        from ipvae.lava.pipeline import read_preparation

        preparation = read_preparation(args.model)
        table["figures"] = [str(p) for p in write_figures(out, model, x, run.z, curves, table,
                                                          image_shape=preparation and preparation.shape)]
    _write_json(out / "run.json", {**table, "curves": {k: np.asarray(v).tolist() for k, v in curves.items()}})
    if args.json:
        print(json.dumps(table))
    else:
        print(format_table(table))
    return 0


def parity_command(args) -> int:
    from ipvae.lava.pipeline import parity

    model, n_steps, x, options = _prepare(args, parity=True)
    report, lava, reference = parity(model, x, n_steps, image_offset=args.start, progress=None if not args.json else False,
                                     options=options, batch=args.batch)
    if args.json:
        print(json.dumps({
            "identical": report.identical, "images": report.images, "steps": report.steps,
            "neurons": report.neurons, "seed": int(model.spec.seed), "compared_values": report.compared_values,
            "differing_values": report.differing_values, "verdict": report.verdict(),
            "lava_seconds": lava.seconds, "reference_seconds": reference.seconds,
        }))
    else:
        print(report.verdict())
    return 0 if report.identical else PARITY_MISMATCH_EXIT


def write_figures(out: Path, model, x: np.ndarray, z: np.ndarray, curves: dict, table: dict,
                  image_shape: tuple[int, int] | None = None) -> list[Path]:
    from ipvae.lava.accounting import figures

    out.mkdir(parents=True, exist_ok=True)
    last_inputs = x if x.ndim == 2 else x[:, -1]  # [N, M]
    recon_last = z[-1].astype(np.float64) @ model.decoder_phi.T.astype(np.float64)  # [N, M]
    label = f"{table['backend']}: {table['images']} images, T={table['steps']}, seed {table['seed']}"
    return [
        figures.reconstruction_grid(out / "reconstructions.png", last_inputs, recon_last, f"inputs vs Phi z_T ({label})",
                                    image_shape),
        figures.spike_raster(out / "spike_raster.png", z[:, 0, :], f"spike counts of image 0 ({label})"),
        figures.per_step_plot(out / "per_step.png", curves["spikes"], curves["events"], curves["energy_nj"],
                              f"per-step activity ({label})"),
    ]


def _write_json(path: Path, payload: dict) -> None:
    from ipvae.fileio import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, payload)


def format_table(table: dict) -> str:
    """Two aligned columns: key, value (numbers with sensible precision)."""
    rows = []
    for key in TABLE_KEYS:
        value = table[key]
        if isinstance(value, float):
            value = f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        rows.append((key, str(value)))
    width = max(len(key) for key, _ in rows)
    lines = [f"{key:<{width}}  {value}" for key, value in rows]
    lines.append("(energy figures are estimates from published per-operation costs; see docs/energy.md)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the 'ipvae' command")
