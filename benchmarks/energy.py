"""Energy proxies of the pretrained iP-VAE on the neuromorphic graph vs dense baselines (JSON + PNG).

    .venv/bin/python benchmarks/energy.py [RUN_DIR] [--images 100] [--steps 32] [--backend reference|lava] [--out out/bench]

RUN_DIR defaults to pretrained/mnist_k512, quantized in memory with the default export settings
(without it a random model of the same size stands in; the JSON says which). Spike counts come from
the integer reference by default: it is bit-exact to the Lava fixed_pt graph (sim_tests), so the
counts are the graph's; --backend lava counts from a Lava run instead. Prices: ipvae.lava.energy
(published per-operation figures; every energy number is an estimate). Writes energy.json and
energy.png (energy per inference by component vs the dense baselines; cumulative energy and R^2 per step).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ipvae.lava.energy import LOIHI_TABLE, PICO, CONVENTIONAL_TABLE, Fanouts, count_operations  # noqa: E402
from ipvae.lava.pipeline import load_inputs, models_for_benchmark, run_backend, summarize  # noqa: E402

DEFAULT_RUN = Path("pretrained/mnist_k512")
NANO_PER_PICO = 1e-3


def components_nj(counts) -> dict[str, float]:
    """Energy estimate per inference split by what it pays for (nJ)."""
    synop = LOIHI_TABLE.synaptic_op.picojoules * NANO_PER_PICO
    return {
        "feedforward synops": float(counts.synops_feedforward.sum() * synop),
        "lateral synops": float(counts.synops_lateral.sum() * synop),
        "readout synops": float(counts.synops_readout.sum() * synop),
        "neuron updates": float(counts.neuron_updates.sum() * LOIHI_TABLE.neuron_update.picojoules * NANO_PER_PICO),
        "spike messages": float((counts.events + counts.input_events).sum() * LOIHI_TABLE.spike_message.picojoules * NANO_PER_PICO),
    }


def static_input_once(counts, table: dict) -> dict:
    """What-if (not what the graph does): a static image's drive sent once per image instead of every timestep.

    The spec's FrameSource re-sends a static image at each of the T + 1 timesteps, so the feedforward
    Dense repeats the same synaptic operations; a chip could send it once and hold W_ff x as a
    per-image bias. Only the feedforward synops and input messages change.
    """
    window = counts.synops_feedforward.shape[0]
    saved_synops = counts.synops_feedforward.sum() * (window - 1) / window
    saved_messages = counts.input_events.sum() * (window - 1) / window
    saved_nj = (saved_synops * LOIHI_TABLE.synaptic_op.picojoules + saved_messages * LOIHI_TABLE.spike_message.picojoules) * NANO_PER_PICO
    if table["input"] != "static":
        return {"applies": False}
    energy = table["energy_estimate_nj"] - saved_nj
    return {
        "applies": True,
        "synops_per_inference": float(table["synops_per_inference"] - saved_synops),
        "energy_estimate_nj": float(energy),
        "energy_ratio_dense_fp32_over_estimate": float(table["dense_fp32_energy_nj"] / energy),
    }


def plot(path: Path, table: dict, components: dict, curves: dict, n_inputs: int, n_latents: int, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    bottom = 0.0
    for name, value in components.items():
        left.bar(0, value, bottom=bottom, label=f"estimate: {name}")
        bottom += value
    baselines = [
        ("float iP-VAE\ndense fp32", table["dense_fp32_energy_nj"]),
        ("float iP-VAE\ndense int8", table["dense_int8_energy_nj"]),
        ("amortized VAE\n(6.79M) fp32", table["amortized_vae_fp32_energy_nj"]),
    ]
    for index, (name, value) in enumerate(baselines, start=1):
        left.bar(index, value, color="0.6")
    left.set_xticks(range(len(baselines) + 1), ["spiking graph\n(Loihi per-op)"] + [name for name, _ in baselines], fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("energy per inference [nJ] (estimate)")
    left.legend(fontsize=7, loc="upper right")
    left.set_title(f"T = {table['steps']}: per inference, estimates", fontsize=9)

    steps = curves["step"]
    dense_per_step = np.where(steps == 0, n_inputs * n_latents, 2 * n_inputs * n_latents) * CONVENTIONAL_TABLE.fp32_mac.picojoules * PICO * 1e9
    right.plot(steps, np.cumsum(curves["energy_nj"]), label="spiking graph (estimate)")
    right.plot(steps, np.cumsum(dense_per_step), label="float iP-VAE, dense fp32")
    right.set_xlabel("step t")
    right.set_ylabel("cumulative energy per image [nJ]")
    twin = right.twinx()
    twin.plot(steps, curves["r2"], color="tab:green", linestyle="--", label="R^2 (spikes)")
    twin.set_ylabel("R^2 from spikes", color="tab:green")
    right.legend(fontsize=8, loc="upper left")
    right.set_title("energy vs reconstruction quality per step", fontsize=9)
    figure.suptitle(f"{label}: {table['images']} MNIST test images; all energies are estimates", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=str(DEFAULT_RUN))
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--backend", default="reference", choices=("reference", "lava"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args(argv)

    pair = models_for_benchmark(args.run_dir, seed=args.seed)
    model = pair.integer
    x = load_inputs("mnist", args.images, model.n_inputs, n_steps=args.steps)
    run = run_backend(model, x, args.steps, args.backend, progress=False, record_u=False)
    table, curves = summarize(model, x, run)
    from ipvae.export.quantize import quantize_input

    counts = count_operations(run.z, quantize_input(x, model.input_scale, model.spec.input_bits), Fanouts.from_integer_model(model))
    components = components_nj(counts)
    result = {
        "benchmark": "energy",
        "model": pair.label,
        "counts_from": f"{args.backend} (bit-exact to the Lava fixed_pt graph)",
        **{key: value for key, value in table.items() if key not in ("images_per_second", "ms_per_step")},
        "energy_estimate_components_nj": components,
        "energy_ratio_amortized_fp32_over_estimate": table["amortized_vae_fp32_energy_nj"] / table["energy_estimate_nj"],
        "what_if_static_input_sent_once": static_input_once(counts, table),
        "per_step": {key: np.asarray(value).tolist() for key, value in curves.items()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "energy.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(out / "energy.png", table, components, curves, model.n_inputs, model.n_latents, pair.label)
    printed = {key: value for key, value in result.items() if key != "per_step"}
    print(json.dumps(printed, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
