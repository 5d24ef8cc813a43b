"""The gap between the authors' inference and the deployment of their model, per T (docs/import.md).

    python benchmarks/import_fidelity.py [--out runs/import_fidelity.json] [--lava-images 16]

Imports the committed fixture (tests/fixtures/authors_ipvae: a checkpoint made by the authors' trainer, and
their inference outputs on 200 MNIST test images at 8 seeds), exports it, and measures on the same images:

    their code                 their R^2 and spikes, from the fixture (their Trainer.xtract_ftr)
    float, their dynamics      the imported run (ModelConfig.dynamics = "authors"), the same 8 seeds
    float, deployed dynamics   the toolkit's dynamics with the chosen cap and the hard clamp (8 seeds)
    8-bit, integer reference   the HDF5 export on the integer reference (1 seed: the export's key)
    8-bit, Lava fixed_pt       the same export on the Lava CPU simulator (the first --lava-images images)

R^2: mean over images of 1 - SSE/SST of Phi z_T (z_T drawn from u_T). Spikes: total count per image over
steps 1..T. Writes JSON and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "authors_ipvae"
STEPS = (16, 64)


def checkpoint_of(fixture: Path) -> Path:
    return next(fixture.glob("IPVAE+Trainer-*.pt"))


@torch.no_grad()
def float_curves(model, images: np.ndarray, seeds, n_steps: int) -> dict[str, np.ndarray]:
    """R^2 [S, T] (mean over images) and spikes [S, T] (mean total count per image at each step)."""
    from ipvae.export.fidelity import r2_per_image

    x = torch.from_numpy(images)
    r2, spikes = [], []
    for seed in seeds:
        trajectory = model.trajectory(x, n_steps, generator=torch.Generator().manual_seed(int(seed)))
        recon = trajectory.recon.numpy()  # [T, N, M]
        r2.append([r2_per_image(images, recon[t]).mean() for t in range(n_steps)])
        spikes.append(trajectory.z.sum(dim=2).mean(dim=1).numpy())
    return {"r2": np.asarray(r2), "spikes": np.asarray(spikes)}


def integer_curves(model, images: np.ndarray, n_steps: int, backend: str) -> dict[str, np.ndarray]:
    """The same curves of one run of the export (z[t] is the draw from u_t, t = 0..T)."""
    from ipvae.export.fidelity import r2_per_image
    from ipvae.lava.pipeline import run_backend

    run = run_backend(model, images.astype(np.float64), n_steps, backend, progress=False, record_u=False)
    phi = model.decoder_phi.astype(np.float64)
    r2 = [r2_per_image(images, run.z[t].astype(np.float64) @ phi.T).mean() for t in range(1, n_steps + 1)]
    spikes = run.z[1:].sum(axis=2).mean(axis=1)
    return {"r2": np.asarray([r2]), "spikes": np.asarray([spikes], dtype=np.float64)}


def row(name: str, curves: dict[str, np.ndarray], n_images: int) -> dict:
    """R^2 at each T (mean, and the spread over seeds) and spikes per inference (sum over steps 1..T)."""
    result = {"name": name, "images": n_images, "seeds": int(curves["r2"].shape[0])}
    for steps in STEPS:
        r2 = curves["r2"][:, steps - 1]
        result[f"r2_T{steps}"] = float(r2.mean())
        result[f"r2_T{steps}_seed_std"] = float(r2.std(ddof=1)) if len(r2) > 1 else None
        result[f"spikes_T{steps}"] = float(curves["spikes"][:, :steps].sum(axis=1).mean())
    return result


def measure(fixture: Path, work: Path, lava_images: int) -> dict:
    import ipvae
    from ipvae.train.checkpoint import load_run
    from ipvae.train.importers.deploy import deployed_config, import_checkpoint
    from ipvae.train.registry import build_model

    theirs = np.load(fixture / "authors_outputs.npz", allow_pickle=False)
    images, seeds = theirs["images"].astype(np.float32), theirs["seeds"]
    run_dir = work / "imported"
    record = import_checkpoint(checkpoint_of(fixture), run_dir)
    loaded = load_run(run_dir)
    deployed = build_model(deployed_config(loaded.config).model)
    deployed.load_state_dict(loaded.model.state_dict())
    deployed.eval()
    n_steps = max(STEPS)
    export = ipvae.export_model(run_dir, work / "model.h5")
    rows = [
        row("their code (authors' Trainer.xtract_ftr)", {"r2": theirs["r2"], "spikes": theirs["spikes"]}, len(images)),
        row("float, their dynamics (imported)", float_curves(loaded.model, images, seeds, n_steps), len(images)),
        row("float, deployed dynamics (cap, hard clamp)", float_curves(deployed, images, seeds, n_steps), len(images)),
        row("8-bit export, integer reference", integer_curves(export, images, n_steps, "reference"), len(images)),
    ]
    if lava_images:
        subset = images[:lava_images]
        rows.append(row(f"8-bit export, Lava fixed_pt", integer_curves(export, subset, n_steps, "lava"), len(subset)))
        rows.append(row("8-bit export, integer reference (same images as Lava)",
                        integer_curves(export, subset, n_steps, "reference"), len(subset)))
    return {"fixture": str(fixture.relative_to(ROOT)), "deployment": record["deployment"], "rows": rows,
            "model": dataclasses.asdict(loaded.config.model)}


def table(result: dict) -> str:
    lines = ["| inference | images x seeds | R^2 T=16 | spikes T=16 | R^2 T=64 | spikes T=64 |", "|---|---|---|---|---|---|"]
    for item in result["rows"]:
        lines.append(f"| {item['name']} | {item['images']} x {item['seeds']} | {item['r2_T16']:.4f} | "
                     f"{item['spikes_T16']:.1f} | {item['r2_T64']:.4f} | {item['spikes_T64']:.1f} |")
    cap = result["deployment"]["cap"]
    clamp = result["deployment"]["clamp"]
    lines.append("")
    lines.append(f"deployed cap {cap['max_spike_count']} (spikes lost {cap['spikes_lost']:.2e}, counts above "
                 f"{cap['counts_above']:.2e}, largest count {cap['largest_count']}); u_max {clamp['u_max']:.4g} hard "
                 f"(potentials in the soft band {clamp['potentials_in_soft_band']:.2e}, du steps clamped "
                 f"{clamp['du_steps_clamped']:.2e})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "import_fidelity.json")
    parser.add_argument("--lava-images", type=int, default=16, help="images for the Lava row (0: skip Lava)")
    args = parser.parse_args(argv)
    from ipvae.fileio import write_json

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        result = measure(args.fixture.resolve(), Path(work), args.lava_images)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(table(result))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
