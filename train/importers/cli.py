"""`ipvae import CHECKPOINT --out RUN_DIR`: a model trained elsewhere as a run directory of this toolkit."""

from __future__ import annotations

import argparse
import json

from ipvae.limits import integer_flag
from ipvae.train.importers.deploy import (
    CAP_CHOICES,
    DEFAULT_CALIBRATION_IMAGES,
    DEFAULT_CALIBRATION_STEPS,
    import_checkpoint,
)

MAX_CALIBRATION_IMAGES = 60_000
MAX_CALIBRATION_STEPS = 10_000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import an iP-VAE checkpoint of the authors' code (hadivafaii/IterativeVAE) as a run directory",
        description=("Read the authors' torch.save checkpoint without executing anything in it, with its "
                     "ConfigPoisVAE.json beside it (or one folder up), and write a run directory (model.safetensors, "
                     "config.json, import.json) that ipvae eval, export, run, parity and plan use unchanged. Float "
                     "inference keeps their dynamics; the deployable count cap is chosen from their own counts "
                     "(docs/import.md). Iterative Gaussian checkpoints are refused."),
    )
    parser.add_argument("checkpoint", help="their checkpoint, e.g. 'IPVAE+Trainer-0300_(2025_05_13,16:11).pt'")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--ema", action="store_true", help="import model_ema (their averaged weights) instead of model")
    parser.add_argument("--force", action="store_true", help="replace a run already in --out")
    parser.add_argument("--max-spike-count", type=int, default=None,
                        help=f"the deployed count cap, one of {', '.join(map(str, CAP_CHOICES))} (default: chosen from data)")
    parser.add_argument("--calibration", type=integer_flag(1, MAX_CALIBRATION_IMAGES), default=DEFAULT_CALIBRATION_IMAGES,
                        help=f"training images their dynamics run on to choose the cap (default {DEFAULT_CALIBRATION_IMAGES})")
    parser.add_argument("--calibration-steps", type=integer_flag(1, MAX_CALIBRATION_STEPS),
                        default=DEFAULT_CALIBRATION_STEPS, help=f"steps of that run (default {DEFAULT_CALIBRATION_STEPS})")
    parser.add_argument("--data-dir", default=None, help="folder of the data set's files (default: the bundled copy)")
    parser.add_argument("--json", action="store_true", help="print import.json instead of a summary")
    parser.set_defaults(func=import_command)


def import_command(args: argparse.Namespace) -> int:
    record = import_checkpoint(args.checkpoint, args.out, use_ema=args.ema, force=args.force,
                               max_spike_count=args.max_spike_count, calibration_images=args.calibration,
                               calibration_steps=args.calibration_steps, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(record, indent=1))
        return 0
    cap, clamp = record["deployment"]["cap"], record["deployment"]["clamp"]
    config = record["their_model_config"]
    print(f"imported {record['checkpoint']} ({record['weights']}; their {config.get('dataset')}, "
          f"K = {config.get('n_latents')}) -> {args.out}")
    print(f"float inference: their dynamics (soft ceiling {clamp['u_max']:.3g} on u and du, floor {clamp['u_min']:.3g}, "
          "no count cap)")
    print(f"deployed: count cap {cap['max_spike_count']} ({cap['rule']}; loses {cap['spikes_lost']:.2e} of their "
          f"spikes, largest count seen {cap['largest_count']}); hard clamp at u_max {clamp['u_max']:.3g} "
          f"({clamp['potentials_in_soft_band']:.2e} of their potentials where soft and hard differ)")
    return 0
