"""`ipvae export RUN_DIR -o model.h5` and `ipvae inspect model.h5`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ipvae.export.hdf5 import read_model
from ipvae.export.summary import summary_lines
from ipvae.export.pipeline import DEFAULT_CALIBRATION_IMAGES, ExportSettings, export_run
from ipvae.export.quantize import LAYOUT_PER_NEURON, LAYOUTS
from ipvae.export.spec import MAX_WEIGHT_BITS, MIN_WEIGHT_BITS
from ipvae.fileio import check_output_file
from ipvae.limits import check_memory, images_bytes, integer_flag

INT32_MAX = 2**31 - 1  # the reader's bound on n_steps
SHA256_HEX_CHARACTERS = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    exporter = subparsers.add_parser(
        "export", help="quantize a trained run to integers and write an HDF5 file (docs/hdf5_format.md)"
    )
    exporter.add_argument("run_dir", metavar="RUN_DIR", help="run directory (config.json + model.safetensors)")
    exporter.add_argument("-o", "--output", required=True, help="HDF5 file to write (atomically; an existing file "
                          "is refused unless --force)")
    exporter.add_argument("--force", action="store_true", help="replace the file -o names if it exists")
    exporter.add_argument(
        "--weight-bits", type=int, default=8, help=f"synapse mantissa bits, {MIN_WEIGHT_BITS}..{MAX_WEIGHT_BITS} (Lava: <= 8)"
    )
    exporter.add_argument(
        "--calibration", type=integer_flag(0), default=DEFAULT_CALIBRATION_IMAGES, metavar="N",
        help="training images used to choose the input scale",
    )
    exporter.add_argument(
        "--calibration-data", metavar="PATH_OR_NAME",
        help="calibrate on these images instead of the run's training set: a data set name (fashion_mnist, "
             "mnist:test) or your image file, folder, glob, .npy/.npz (the first --calibration of them)",
    )
    exporter.add_argument(
        "--layout", choices=LAYOUTS, default=LAYOUT_PER_NEURON,
        help="synapse exponents: per-neuron (default: one feed-forward exponent per neuron, the self-inhibition "
             "apart; format version 2) or shared (one exponent per matrix, searched on the calibration images)",
    )
    exporter.add_argument("--input-max", type=float, help="fixed input range max|x| instead of a calibration batch")
    exporter.add_argument("--input-bits", type=int, default=8, help="signed payload bits of an input graded spike")
    exporter.add_argument("--u-frac-bits", type=int, default=12, help="fractional bits of the membrane potential")
    exporter.add_argument("--sampler-frac-bits", type=int, default=5, help="fractional bits of u seen by the sampler")
    exporter.add_argument("--seed", type=int, default=0, help="key of the spike generator (0 <= seed < 2**64)")
    exporter.add_argument("--n-steps", type=integer_flag(1, INT32_MAX),
                          help="default inference steps T stored in the file (default: t_train)")
    exporter.set_defaults(func=_export)

    inspector = subparsers.add_parser("inspect", help="summarise an exported HDF5 file")
    inspector.add_argument("path", metavar="MODEL_H5")
    add_expect_sha256(inspector)
    inspector.set_defaults(func=_inspect)


def add_expect_sha256(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expect-sha256", metavar="HEX", type=sha256_flag,
                        help="refuse the file unless its content hash is this one (a hash you trust, e.g. printed by "
                             "'ipvae export' on your machine): the stored hash alone only detects accidental damage")


def sha256_flag(text: str) -> str:
    value = text.strip().lower()
    if len(value) != SHA256_HEX_CHARACTERS or any(character not in "0123456789abcdef" for character in value):
        raise argparse.ArgumentTypeError(f"expected {SHA256_HEX_CHARACTERS} hexadecimal digits, got {text[:80]!r}")
    return value


def _export(args: argparse.Namespace) -> int:
    from ipvae.train.checkpoint import load_config

    check_output_file(args.output, force=args.force)
    n_inputs = load_config(args.run_dir).model.n_inputs
    check_memory(images_bytes(args.calibration, n_inputs), f"--calibration {args.calibration} ({n_inputs} pixels per image)")
    settings = ExportSettings(
        weight_bits=args.weight_bits,
        input_bits=args.input_bits,
        u_frac_bits=args.u_frac_bits,
        sampler_frac_bits=args.sampler_frac_bits,
        seed=args.seed,
        calibration_images=args.calibration,
        input_max=args.input_max,
        n_steps=args.n_steps,
        calibration_data=args.calibration_data,
        layout=args.layout,
    )
    model, metadata = export_run(args.run_dir, args.output, settings)
    spec = model.spec
    print(
        f"wrote {args.output}: K={model.n_latents} M={model.n_inputs}, {spec.weight_bits}-bit weights "
        f"({_exponents_text(model)}), u Q.{spec.u_frac_bits}, "
        f"input scale {model.input_scale:.6g} ({metadata.calibration}), content sha256 {metadata.content_sha256}"
    )
    return 0


def _exponents_text(model) -> str:
    """'ff exp -6..+0 per row, rec exp +0, self exp +3' (the layout's exponents in one phrase)."""
    text = f"ff {model.ff.exponent_text()}, rec exp {model.rec.exponent:+d}"
    if model.self_inhibition is not None:
        text += f", self exp {model.self_inhibition.exponent:+d}"
    return text


def _inspect(args: argparse.Namespace) -> int:
    exported = read_model(Path(args.path), expected_sha256=args.expect_sha256)
    for line in summary_lines(Path(args.path), exported):
        print(line)
    return 0
