"""`ipvae fit model.h5 --target loihi2`: read an export, optionally measure its activity on the integer
reference, and print the resource plan of ipvae.lava.accounting.fit (a plan, not a measurement)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ipvae.errors import IpvaeError
from ipvae.lava.accounting.fit import TARGETS, fit_report, format_report


def measured_events_per_step(model, n_images: int) -> dict[str, float]:
    """Average input and neuron events per timestep of the integer reference on MNIST test images."""
    from ipvae.export.quantize import quantize_input
    from ipvae.lava.pipeline import load_inputs, run_backend

    x = load_inputs("mnist", n_images, model.n_inputs, n_steps=model.n_steps)
    run = run_backend(model, x, model.n_steps, "reference", progress=False, record_u=False)
    payload = quantize_input(x, model.input_scale, model.spec.input_bits)  # [N, M]
    return {"input": float(np.count_nonzero(payload) / n_images), "neurons": float(np.count_nonzero(run.z) / (n_images * run.z.shape[0]))}


def register(subparsers) -> None:
    fit = subparsers.add_parser(
        "fit",
        help="plan how an export maps onto a neuromorphic chip (cores, memory, timesteps/s); a plan, not a measurement",
        description="Count the synapses, neuron state and sampler-table memory an export needs, partition its groups "
        "onto neuro-cores within the target's published per-core limits, and estimate timesteps per second.",
    )
    fit.add_argument("model", help="export file written by 'ipvae export' (model.h5)")
    fit.add_argument("--target", default="loihi2", help=f"chip to plan for ({', '.join(TARGETS)})")
    fit.add_argument("--images", type=int, default=0, help="also estimate timesteps/s from the measured activity of N test images")
    fit.add_argument("--json", action="store_true", help="print one JSON object")
    fit.set_defaults(func=fit_command)


def fit_command(args: argparse.Namespace) -> int:
    from ipvae.lava.pipeline import read_export

    if args.target not in TARGETS:
        raise IpvaeError(f"unknown target {args.target!r}; choose one of {', '.join(TARGETS)}")
    if args.images < 0:
        raise IpvaeError(f"--images must be non-negative, got {args.images}")
    model = read_export(args.model)
    measured = measured_events_per_step(model, args.images) if args.images else None
    report = fit_report(model, TARGETS[args.target], measured_events=measured)
    print(json.dumps(report) if args.json else format_report(report))
    return 0
