"""Event-driven deployment: R^2 vs synaptic operations and energy for the stopping rule, the readout
schedule and the sigma-delta input threshold (ipvae.export.events), against the re-send-every-step account.

    .venv/bin/python benchmarks/event_driven.py [RUN_DIR] [--images 200] [--steps 64] [--rotate 3] [--out out/bench]

RUN_DIR defaults to pretrained/mnist_k512, quantized in memory with the default export settings
(without it a random model of the same size stands in; the JSON says which). Spike counts come from
the integer reference, which is bit-exact to the Lava fixed_pt graph with the same options
(sim_tests/test_lava_parity.py). Two studies on MNIST test images:

1. static images, T = --steps: the re-send account, the event-driven account (image sent once,
   decoder once at the end), then the stopping rule for windows w and tolerances eps, with the
   readout at the stop (END) and as the count average of the last w steps (AVERAGE);
2. rotating images (--rotate degrees per step): sigma-delta input thresholds (payload LSBs), R^2 of
   the final readout against the final frame, input events and feed-forward synops.

Writes event_driven.json and prints both tables (markdown). Energies are estimates (docs/energy.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipvae.export.events import EventOptions, ReadoutMode, ReadoutSchedule  # noqa: E402
from ipvae.lava.pipeline import load_inputs, models_for_benchmark, run_backend, summarize  # noqa: E402

DEFAULT_RUN = Path("pretrained/mnist_k512")
STOP_WINDOWS = (4, 8)
STOP_EPS = (0.5, 0.25, 0.125)
THRESHOLDS = (0, 2, 4, 8, 16, 32)
ROW_KEYS = ("readout_r2", "mean_last_step", "input_events_per_inference", "synops_feedforward_per_inference",
            "synops_lateral_per_inference", "synops_readout_per_inference", "synops_per_inference", "energy_estimate_nj")


def row(label: str, table: dict, prefix: str = "") -> dict:
    values = {key: table[prefix + key] for key in ROW_KEYS if prefix + key in table}
    values.setdefault("readout_r2", table["readout_r2"])
    values.setdefault("mean_last_step", table["mean_last_step"])
    return {"setting": label, **values}


def stopping_study(model, x, n_steps: int) -> list[dict]:
    rows = []
    base = run_backend(model, x, n_steps, "reference", record_u=False)
    table, _ = summarize(model, x, base)
    rows.append(row("re-send input + decode every step (today)", table, prefix="resend_"))
    rows.append(row("event-driven: input once, decode at the end", table))
    rows.append(row(f"event-driven, readout = average of the last 8 steps", summarize(model, x, base, ReadoutSchedule(ReadoutMode.AVERAGE, window=8))[0]))
    for window in STOP_WINDOWS:
        for eps in STOP_EPS:
            options = EventOptions.from_real(stop_window=window, stop_eps=eps)
            run = run_backend(model, x, n_steps, "reference", record_u=False, options=options)
            for schedule in (ReadoutSchedule(), ReadoutSchedule(ReadoutMode.AVERAGE, window=window)):
                label = f"stop w={window} eps={eps:g}, readout {schedule.mode.value}"
                rows.append(row(label, summarize(model, x, run, schedule)[0]))
    return rows


def threshold_study(model, frames, n_steps: int) -> list[dict]:
    rows = []
    for threshold in THRESHOLDS:
        run = run_backend(model, frames, n_steps, "reference", record_u=False, options=EventOptions(input_threshold=threshold))
        table, _ = summarize(model, frames, run)
        if threshold == 0:
            rows.append(row("re-send every frame + decode every step", table, prefix="resend_"))
        rows.append(row(f"sigma-delta threshold {threshold}", table))
    return rows


def markdown(rows: list[dict]) -> str:
    header = "| setting | R^2 (readout) | mean last step | input events | ff synops | lateral synops | readout synops | total synops | energy (uJ) |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['readout_r2']:.3f} | {r['mean_last_step']:.1f} | {r['input_events_per_inference']:,.0f} | "
            f"{r['synops_feedforward_per_inference'] / 1e6:.3f} M | {r['synops_lateral_per_inference'] / 1e6:.3f} M | "
            f"{r['synops_readout_per_inference'] / 1e6:.3f} M | {r['synops_per_inference'] / 1e6:.3f} M | "
            f"{r['energy_estimate_nj'] / 1e3:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=str(DEFAULT_RUN))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--rotate", type=float, default=3.0, help="degrees per step of the moving-input study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args(argv)

    pair = models_for_benchmark(args.run_dir, seed=args.seed)
    model = pair.integer
    x = load_inputs("mnist", args.images, model.n_inputs, n_steps=args.steps)
    frames = load_inputs("mnist", args.images, model.n_inputs, n_steps=args.steps, rotate_degrees=args.rotate)
    results = {
        "benchmark": "event_driven",
        "model": pair.label,
        "images": args.images,
        "steps": args.steps,
        "rotate_degrees_per_step": args.rotate,
        "backend": "integer reference (bit-exact to Lava fixed_pt with the same options)",
        "energy_label": "estimate: published per-operation energies (docs/energy.md), not a measurement",
        "static_stopping": stopping_study(model, x, args.steps),
        "rotating_threshold": threshold_study(model, frames, args.steps),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "event_driven.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"## static MNIST test images, T = {args.steps}, {args.images} images ({pair.label})")
    print(markdown(results["static_stopping"]))
    print(f"\n## rotating images ({args.rotate:g} degrees per step), T = {args.steps}")
    print(markdown(results["rotating_threshold"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
