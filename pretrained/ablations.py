"""Why did the first shipped model's inference degrade past T_train? The ablation table.

Two kinds of rows, each evaluated with exact integer spike draws for 1000 steps on MNIST test digits,
the same digits rotated 90 degrees and Fashion-MNIST (``ipvae.train.stability``):
- inference-time changes to a trained model (count cap, soft clamp, step size, pixel-noise floor,
  mean-field dynamics without sampling), no retraining;
- recipe changes, each a short fine-tune of the same starting model (configs in pretrained/ablations/):
  the control continues the original recipe, each other run changes one thing.

    python pretrained/ablations.py --train      # base: pretrained/ablations/base_v1, the first shipped model
    python pretrained/ablations.py ... --report     # JSON + Markdown table from the cached rows

Rows are cached one JSON file each in --out, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from ipvae.fileio import write_json
from ipvae.train.checkpoint import TRAIN_STATE_FILE, load_run
from ipvae.train.inference import clamp_potential, decode, poisson, reconstruction_drive
from ipvae.train.evaluate import r2_per_image
from ipvae.train.model import IterativeVAE
from ipvae.train.stability import CHECKPOINTS, at_checkpoints, long_run_curves, stability_sets, stability_verdict

HERE = Path(__file__).resolve().parent
CONFIG_DIR = HERE / "ablations"
N_STEPS = 1000
NO_CAP = 10_000


def with_config(model: IterativeVAE, **changes) -> IterativeVAE:
    changed = IterativeVAE(dataclasses.replace(model.config, **changes))
    changed.load_state_dict(model.state_dict())
    return changed.eval()


def with_step_size_scale(model: IterativeVAE, scale: float) -> IterativeVAE:
    changed = with_config(model)
    with torch.no_grad():
        changed.log_lr += math.log(scale)
    return changed


def with_log_sigma_floor(model: IterativeVAE, floor: float) -> IterativeVAE:
    """Raise the pixel-noise floor: log sigma >= floor (precision D <= exp(-2 floor))."""
    changed = with_config(model)
    bound = model.config.log_sigma_bound
    with torch.no_grad():
        effective = bound * torch.tanh(changed.log_sigma / bound)  # [M] the log sigma in use
        changed.log_sigma.copy_(bound * torch.atanh(effective.clamp(min=floor) / bound))
    return changed


def capped_drive_update(state: poisson.PoissonState, latent, drive: torch.Tensor, params) -> poisson.PoissonState:
    """The Poisson update with the drive scaled by P(N < cap | r) = Q(cap, r) (regularised upper gamma).

    The reconstruction term's gradient in u goes through E[min(N, c)], whose slope r P(N < c) vanishes
    for a saturated neuron; over the uncapped Fisher r it leaves the factor P(N < c). A saturated unit
    stops integrating its drive (anti-windup) and relaxes by -lr b. An inference-only probe of whether
    the counts at the cap are wind-up or the capped problem's own optimum.
    """
    cap = torch.tensor(float(params.max_spike_count), dtype=state.u.dtype)
    below_cap = torch.special.gammaincc(cap, state.u.exp())  # [B, K] P(N <= cap - 1)
    return poisson.PoissonState(u=clamp_potential(state.u + params.step_size * (below_cap * drive - params.bias), params))


def with_capped_drive_gate(model: IterativeVAE) -> IterativeVAE:
    """The same weights with ``capped_drive_update`` in place of the Poisson update."""
    changed = with_config(model)

    def step(state, latent, x, params):
        return capped_drive_update(state, latent, reconstruction_drive(x, latent.recon, params), params)

    interface = ("initial_state", "draw", "sample", "kl", "features", "expected_code", "potential")
    changed.dynamics = types.SimpleNamespace(
        **{name: getattr(poisson, name) for name in interface}, update=capped_drive_update, step=step
    )
    return changed


INFERENCE_ROWS = {
    "as trained": lambda m: m,
    "no count cap": lambda m: with_config(m, max_spike_count=NO_CAP),
    "soft clamp u_max = 3": lambda m: with_config(m, u_max=3.0),
    "hard clamp u_max = 4": lambda m: with_config(m, u_max=4.0, hard_upper_clamp=True),
    "step size x 1/2": lambda m: with_step_size_scale(m, 0.5),
    "step size x 1/4": lambda m: with_step_size_scale(m, 0.25),
    "log sigma floor -2.5": lambda m: with_log_sigma_floor(m, -2.5),
    "capped-count drive gate": with_capped_drive_gate,
    "leak 2^-7 toward u_prior": lambda m: with_config(m, leak=2.0**-7),
}


@torch.no_grad()
def mean_field_curves(model: IterativeVAE, x: torch.Tensor, n_steps: int) -> dict[int, dict[str, float]]:
    """R^2 of the deterministic dynamics that feed back E[z] (the capped mean) instead of samples."""
    params = model.inference_params()
    state = poisson.initial_state(params, x.shape[0])
    out = {}
    for t in range(1, n_steps + 1):
        recon = decode(poisson.expected_code(state, params), params)  # [B, M]
        drive = reconstruction_drive(x, recon, params) - params.bias  # [B, K]
        state = poisson.PoissonState(clamp_potential(state.u + params.step_size * drive, params))
        if t in CHECKPOINTS:
            recon = decode(poisson.expected_code(state, params), params)  # [B, M]
            out[t] = {"r2_rate": float(r2_per_image(x, recon).mean())}
    return out


def evaluate_row(model: IterativeVAE, sets: dict, n_steps: int) -> dict:
    row = {"step_size": float(model.log_lr.exp()), "precision_max": float(model.sigma().pow(-2).max())}
    for name, x in sets.items():
        curves = long_run_curves(model, x, n_steps)
        row[name] = {
            "checkpoints": at_checkpoints(curves),
            "verdict": stability_verdict(curves, early=64, late=n_steps).as_dict(),
        }
    return row


def train_runs(runs_dir: Path, base: Path) -> None:
    """Fine-tune every pretrained/ablations/*.json from ``base`` (resumes an interrupted run)."""
    for config_path in sorted(CONFIG_DIR.glob("F*.json")):
        out = runs_dir / config_path.stem
        config = json.loads(config_path.read_text())
        config["train"]["init_from"] = str(base)
        resolved = runs_dir / f"{config_path.stem}.config.json"
        runs_dir.mkdir(parents=True, exist_ok=True)
        resolved.write_text(json.dumps(config))
        command = [sys.executable, "-m", "ipvae.cli", "train", "--config", str(resolved), "--out", str(out)]
        if (out / TRAIN_STATE_FILE).is_file():
            command.append("--resume")
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)


def _r2(row: dict, data: str, t: int) -> str:
    point = row.get(data, {}).get("checkpoints", {}).get(str(t))
    return "-" if point is None else f"{point['r2']:.3f}"


def markdown_table(rows: list[dict]) -> str:
    """One line per row: R^2 from spikes at t = 16 / 64 / 1000 per set, and the late-window signs of trouble."""
    header = (
        "| row | lr | MNIST R^2 t=16 / 64 / 1000 | MNIST zeros t=1000 | rot90 R^2 t=64 / 1000 "
        "| F-MNIST R^2 t=16 / 64 / 1000 | F-MNIST at cap, late | F-MNIST error late/early |"
    )
    lines = [header, "|" + "---|" * 8]
    for row in rows:
        fashion = row.get("fashion_mnist", {}).get("verdict", {})
        mnist_late = row["mnist"]["checkpoints"].get(str(row["steps"]), {})
        lines.append(
            f"| {row['row']} | {row['step_size']:.3f} "
            f"| {_r2(row, 'mnist', 16)} / {_r2(row, 'mnist', 64)} / {_r2(row, 'mnist', 1000)} "
            f"| {mnist_late.get('zeros', float('nan')):.3f} "
            f"| {_r2(row, 'mnist_rot90', 64)} / {_r2(row, 'mnist_rot90', 1000)} "
            f"| {_r2(row, 'fashion_mnist', 16)} / {_r2(row, 'fashion_mnist', 64)} / {_r2(row, 'fashion_mnist', 1000)} "
            f"| {fashion.get('at_cap_late', float('nan')):.4f} | {fashion.get('error_ratio', float('nan')):.2f} |"
        )
    return "\n".join(lines)


def report(out: Path) -> str:
    rows = [json.loads(path.read_text()) for path in sorted(out.glob("*.json")) if path.name != "ablations.json"]
    kinds = ("inference", "recipe", "shipped")
    rows.sort(key=lambda row: (next(i for i, kind in enumerate(kinds) if row["row"].startswith(kind)), row["row"]))
    table = markdown_table(rows)
    write_json(out / "ablations.json", rows)
    (out / "ablations.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=str(CONFIG_DIR / "base_v1"), help="the trained run the rows start from")
    parser.add_argument("--runs-dir", default="runs/ablations", help="where the fine-tuned runs live")
    parser.add_argument("--out", default=str(HERE / "ablations" / "results"), help="row cache and report")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=N_STEPS)
    parser.add_argument("--train", action="store_true", help="fine-tune the recipe rows first")
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--report", action="store_true", help="only write the table from the cached rows")
    parser.add_argument("--shipped", default=None, help="also evaluate this run as the row 'shipped model'")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=RUN_DIR",
                        help="also evaluate a trained run as the row 'recipe: NAME' (repeatable)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    base, runs_dir, out = Path(args.base), Path(args.runs_dir), Path(args.out)
    if args.report:
        print(report(out))
        return 0
    if args.train:
        train_runs(runs_dir, base)
    sets = stability_sets(args.images)
    model = load_run(base).model
    rows = {f"inference: {name}": (lambda f=f: f(model)) for name, f in INFERENCE_ROWS.items()}
    for config_path in sorted(CONFIG_DIR.glob("F*.json")):
        run_dir = runs_dir / config_path.stem
        if (run_dir / "model.safetensors").is_file():
            rows[f"recipe: {config_path.stem}"] = lambda d=run_dir: load_run(d).model
    for spec in args.extra:
        name, separator, run_dir = spec.partition("=")
        if not separator or not name or not (Path(run_dir) / "model.safetensors").is_file():
            parser.error(f"--extra expects NAME=RUN_DIR with a trained run, got {spec!r}")
        rows[f"recipe: {name}"] = lambda d=run_dir: load_run(d).model
    if args.shipped:
        rows["shipped model"] = lambda: load_run(args.shipped).model
    wanted = set(filter(None, args.rows.split(",")))
    out.mkdir(parents=True, exist_ok=True)
    for name, build in rows.items():
        cache = out / (name.replace(": ", "__").replace(" ", "_").replace("/", "-") + ".json")
        if (wanted and name not in wanted) or cache.is_file():
            continue
        started = time.perf_counter()
        row = evaluate_row(build(), sets, args.steps)
        if name == "inference: as trained":
            row["mean_field"] = {set_name: mean_field_curves(model, x, args.steps) for set_name, x in sets.items()}
        row["seconds"] = round(time.perf_counter() - started, 1)
        write_json(cache, {"row": name, "images": args.images, "steps": args.steps, **row})
        print(f"{name}: {row['seconds']} s", flush=True)
    print(report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
