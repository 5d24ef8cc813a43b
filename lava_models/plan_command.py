"""`ipvae plan model.h5 --target loihi2`: read an export, optionally measure its activity on the integer
reference, and print the resource plan of ipvae.lava.accounting.fit (a plan, not a measurement).

`ipvae fit` is the command's former name, kept as a deprecated alias: the same arguments, plus a one-line
notice on stderr (it read as "train" to an ML user)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ipvae.errors import IpvaeError
from ipvae.lava.accounting.fit import TARGETS, fit_report, format_report


def measured_events_per_step(model, n_images: int, data: str = "mnist", preparation=None) -> dict[str, float]:
    """Average input and neuron events per timestep of the integer reference on ``n_images`` images of ``data``
    (a data set's test split, or the user's own images prepared by ``preparation``, the export's)."""
    from ipvae.export.quantize import quantize_input
    from ipvae.lava.pipeline import load_inputs_described, run_backend

    x = load_inputs_described(data, n_images, model.n_inputs, n_steps=model.n_steps, preparation=preparation).x
    run = run_backend(model, x, model.n_steps, "reference", progress=False, record_u=False)
    payload = quantize_input(x, model.input_scale, model.spec.input_bits)  # [N, M]
    return {"input": float(np.count_nonzero(payload) / n_images), "neurons": float(np.count_nonzero(run.z) / (n_images * run.z.shape[0]))}


DESCRIPTION = ("Count the synapses, neuron state and sampler-table memory an export needs, partition its groups "
               "onto neuro-cores within the target's published per-core limits, and estimate timesteps per second.")
DEPRECATED_NOTICE = "ipvae fit: deprecated, use 'ipvae plan' (the same arguments)"


def register(subparsers) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="plan how an export maps onto a neuromorphic chip (cores, memory, timesteps/s); a plan, not a measurement",
        description=DESCRIPTION,
    )
    _add_arguments(plan)
    plan.set_defaults(func=plan_command)
    fit = subparsers.add_parser("fit", help="deprecated name of 'ipvae plan'", description=DESCRIPTION)
    _add_arguments(fit)
    fit.set_defaults(func=deprecated_fit_command)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="export file written by 'ipvae export' (model.h5)")
    parser.add_argument("--target", default="loihi2", help=f"chip to plan for ({', '.join(TARGETS)})")
    parser.add_argument("--images", type=int, default=0,
                        help="also estimate timesteps/s from the measured activity of N test images")
    parser.add_argument("--data", default="mnist",
                        help="images for --images: a data set name (its test split) or your own images (folder, "
                             "glob, .npy/.npz), prepared as the export's training images were")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def deprecated_fit_command(args: argparse.Namespace) -> int:
    print(DEPRECATED_NOTICE, file=sys.stderr)
    return plan_command(args)


def plan_command(args: argparse.Namespace) -> int:
    from ipvae.lava.pipeline import read_export

    if args.target not in TARGETS:
        raise IpvaeError(f"unknown target {args.target!r}; choose one of {', '.join(TARGETS)}")
    if args.images < 0:
        raise IpvaeError(f"--images must be non-negative, got {args.images}")
    model = read_export(args.model)
    preparation = None
    if args.images:
        from ipvae.images import is_file_source
        from ipvae.lava.pipeline import read_preparation

        preparation = read_preparation(args.model) if is_file_source(args.data) else None
    measured = measured_events_per_step(model, args.images, args.data, preparation) if args.images else None
    report = fit_report(model, TARGETS[args.target], measured_events=measured)
    print(json.dumps(report) if args.json else format_report(report))
    return 0
