"""The standard Loihi flow beside the iP-VAE: lava-dl peers on the same images, the same Lava simulator and the
same per-operation price table (docs/energy.md, section "The lava-dl peers").

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/peers.py [--quick] [--out out/bench/peers] [RUN_DIR]

Peers (ipvae.lava.peers): a sigma-delta autoencoder 784-H-784 (ReLU; hidden delta threshold swept without
retraining, H = 256 and 128, one with an L1 activity penalty) and a CUBA-LIF rate-coded autoencoder, trained with
lava-dl slayer on the MNIST training images, written by the blocks' own export_hdf5, loaded by
lava.lib.dl.netx.hdf5.Network and run on the Lava CPU simulator (fixed_pt) with each test image held for a
window of T steps. The iP-VAE (RUN_DIR, default pretrained/mnist_k512) is measured by benchmarks/energy.py's
functions (T sweep, lateral pruning, stopping rule; integer reference, bit-exact to its Lava graph). Every model
is trained on MNIST only and also run on Fashion-MNIST (skipped, with one line, without the Debian package
dataset-fashion-mnist) and on MNIST digits rotated by 90 degrees.

Writes DIR/peers.json, DIR/peers_pareto.png (R^2 vs energy per inference, one panel per image set) and
DIR/peers.md (the table and the verdict); prints both; the peers' HDF5 exports stay in DIR/exports/. Energies
are estimates (ipvae.lava.accounting.pricing).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from energy import cheapest, spiking_points, stopping_points  # noqa: E402

from ipvae.errors import IpvaeError  # noqa: E402
from ipvae.lava.accounting.pricing import (  # noqa: E402
    LOIHI_TABLE,
    NANOJOULES_PER_PICOJOULE,
    NonZeros,
    conventional_baselines,
)

DEFAULT_RUN = Path("pretrained/mnist_k512")
ROTATION_DEGREES = 90.0
IPVAE_FRAMEWORK = "ipvae-toolkit"
IPVAE_LOADED_WITH = "ipvae.export.hdf5.read_model"
IPVAE_BACKEND = "reference (bit-exact to the iP-VAE's Lava fixed_pt graph)"
IPVAE_PARAMETERS = 403_217  # the shipped K = 512 model (README, headline table)
SIGMA_DELTA_WINDOW = 3  # input delta, hidden delta, output sigma: one Dense delay each, settled at the third step
NOVEL_SETS = ("fashion_mnist", f"rotated_mnist_{ROTATION_DEGREES:g}")
MAX_THRESHOLD_MANTISSA = 255  # an 8-bit threshold mantissa (1/64 units)


@dataclass(frozen=True)
class Budget:
    """What one run trains and measures."""

    train_images: int
    cuba_train_images: int  # the CUBA net trains through T steps: a smaller share of the training set
    sigma_delta_epochs: int
    cuba_epochs: int
    learning_rate: float
    mnist_images: int
    novel_images: int
    hidden_sizes: tuple[int, ...]  # sigma-delta nets trained at the base threshold
    base_threshold: int  # mantissa (1/64 units) the sigma-delta nets are trained with
    threshold_sweep: tuple[int, ...]  # mantissas the first sigma-delta net is run with (same weights)
    activity_l1: float  # > 0: one more sigma-delta net (first hidden size) trained with this L1 penalty
    cuba_steps: int  # T the CUBA net is trained at
    cuba_eval_steps: tuple[int, ...]  # windows it is run with (the rate is over the window)
    ipvae_steps: tuple[int, ...]
    ipvae_pruning: tuple[float, ...]
    ipvae_stopping: tuple[tuple[int, float], ...]
    sets: tuple[str, ...] = ("mnist",) + NOVEL_SETS


QUICK = Budget(train_images=5000, cuba_train_images=3000, sigma_delta_epochs=2, cuba_epochs=2, learning_rate=3e-3,
               mnist_images=16, novel_images=16, hidden_sizes=(256,), base_threshold=4, threshold_sweep=(1, 4, 16),
               activity_l1=0.0, cuba_steps=8, cuba_eval_steps=(8,), ipvae_steps=(8, 16, 32, 64), ipvae_pruning=(0.0,),
               ipvae_stopping=((8, 0.125),))
FULL = Budget(train_images=60_000, cuba_train_images=20_000, sigma_delta_epochs=4, cuba_epochs=2, learning_rate=3e-3,
              mnist_images=200, novel_images=100, hidden_sizes=(256, 128), base_threshold=4,
              threshold_sweep=(1, 4, 8, 16, 32), activity_l1=0.01, cuba_steps=16, cuba_eval_steps=(8, 16),
              ipvae_steps=(8, 16, 32, 64), ipvae_pruning=(0.0, 0.25), ipvae_stopping=((8, 0.125), (4, 0.25)))


def image_sets(budget: Budget, log) -> dict[str, np.ndarray]:
    """MNIST test images and the novel sets, [N, 784] float in [0, 1], in a fixed order (first N of each)."""
    from ipvae.data import get_dataset, rotated_mnist

    sets = {"mnist": get_dataset("mnist", "test", limit=budget.mnist_images)[0].numpy()}
    if NOVEL_SETS[0] in budget.sets:
        try:
            sets[NOVEL_SETS[0]] = get_dataset(NOVEL_SETS[0], "test", limit=budget.novel_images)[0].numpy()
        except IpvaeError as error:
            log(f"{NOVEL_SETS[0]} skipped: {error}")
    if NOVEL_SETS[1] in budget.sets:
        sets[NOVEL_SETS[1]] = rotated_mnist(ROTATION_DEGREES, "test", n=budget.novel_images)[0].numpy()
    return {name: np.ascontiguousarray(x, dtype=np.float32) for name, x in sets.items()}


def train_peers(budget: Budget, log) -> list:
    """The trained peer models, sigma-delta first."""
    from ipvae.data import get_dataset
    from ipvae.lava.peers.nets import MANTISSA_SCALE, CubaConfig, SigmaDeltaConfig
    from ipvae.lava.peers.training import TrainOptions, train

    images = get_dataset("mnist", "train", limit=budget.train_images)[0]
    threshold = budget.base_threshold / MANTISSA_SCALE
    configs = [SigmaDeltaConfig(hidden, threshold) for hidden in budget.hidden_sizes]
    if budget.activity_l1 > 0:
        configs.append(SigmaDeltaConfig(budget.hidden_sizes[0], threshold, budget.activity_l1))
    configs.append(CubaConfig(budget.hidden_sizes[0], budget.cuba_steps))
    models = []
    for config in configs:
        sigma_delta = config.kind == "sigma_delta"
        epochs = budget.sigma_delta_epochs if sigma_delta else budget.cuba_epochs
        n_images = budget.train_images if sigma_delta else min(budget.cuba_train_images, budget.train_images)
        start = time.perf_counter()
        models.append(train(config, images[:n_images], TrainOptions(epochs, budget.learning_rate), log=log))
        log(f"trained {config.name} in {time.perf_counter() - start:.0f} s")
    return models


def peer_runs(models: list, budget: Budget) -> list[tuple]:
    """(model, window, on novel sets too) for every peer point: the threshold sweep of the first sigma-delta net,
    the other sigma-delta nets at their trained threshold, the CUBA net at each window."""
    from ipvae.lava.peers.nets import MANTISSA_SCALE, with_threshold

    runs = []
    first_sigma_delta = next(m for m in models if m.config.kind == "sigma_delta")
    for mantissa in budget.threshold_sweep:
        variant = with_threshold(first_sigma_delta, mantissa / MANTISSA_SCALE)
        runs.append((variant, SIGMA_DELTA_WINDOW, mantissa == budget.base_threshold))
    for model in models:
        if model.config.kind == "sigma_delta" and model is not first_sigma_delta:
            runs.append((model, SIGMA_DELTA_WINDOW, False))
        elif model.config.kind == "cuba":
            runs.extend((model, steps, steps == budget.cuba_steps) for steps in budget.cuba_eval_steps)
    return runs


def short_label(point: dict) -> str:
    if point["kind"] == "sigma_delta":
        extra = " L1" if point.get("activity_l1") else ""
        return f"H{point['hidden']} th{point['threshold_mantissa']}{extra}"
    return f"T={point['T']}"


def measure_peers(models: list, sets: dict[str, np.ndarray], budget: Budget, out: Path, log) -> dict[str, list[dict]]:
    from ipvae.lava.peers.evaluate import evaluate_peer

    results = {name: [] for name in sets}
    exports = out / "exports"  # the peers' HDF5 files as netx loads them (about 0.8 MB each)
    exports.mkdir(parents=True, exist_ok=True)
    for index, (model, window, on_novel) in enumerate(peer_runs(models, budget)):
        path = exports / f"peer{index}_{model.config.kind}.net"
        for set_index, (set_name, images) in enumerate(sets.items()):
            if set_name != "mnist" and not on_novel:
                continue
            start = time.perf_counter()
            point = evaluate_peer(model, images, window, path, export=set_index == 0)
            point["short"] = short_label(point)
            point["name"] = f"{model.config.name}" + (f", T = {window}" if model.config.kind == "sigma_delta" else "")
            if model.config.kind == "cuba" and window != model.config.steps:
                base = model.config.name.rsplit(", T =", 1)[0]
                point["name"] = f"{base}, trained at T = {model.config.steps}, run at T = {window}"
            results[set_name].append(point)
            log(f"{set_name}: {point['name']}: R^2 {point['r2']:.3f}, {point['energy_estimate_nj'] / 1e3:.2f} uJ "
                f"(Lava vs slayer max |diff| {point['lava_vs_slayer_max_abs_diff']:.3g}; "
                f"{time.perf_counter() - start:.0f} s)")
    return results


def ipvae_components_nj(point: dict, n_latents: int) -> dict[str, float]:
    """The iP-VAE point's estimate by group (same table): the synaptic groups its point records, neuron updates
    from the window ((steps + 1) K; the mean stop for a stopping rule), and the rest (spike messages, and the
    groups a stopping point does not record) as 'other'."""
    synop = LOIHI_TABLE.synaptic_op.picojoules * NANOJOULES_PER_PICOJOULE
    window = point.get("mean_last_step", point["steps"]) + 1
    parts = {f"{group} synops": point[f"synops_{group}_per_inference"] * synop
             for group in ("feedforward", "lateral", "readout") if f"synops_{group}_per_inference" in point}
    parts["neuron updates"] = window * n_latents * LOIHI_TABLE.neuron_update.picojoules * NANOJOULES_PER_PICOJOULE
    parts["other"] = max(point["energy_estimate_nj"] - sum(parts.values()), 0.0)
    return parts


def measure_ipvae(pair, sets: dict[str, np.ndarray], budget: Budget, log) -> dict[str, list[dict]]:
    """benchmarks/energy.py's points: T sweep x lateral pruning and the stopping rule on MNIST, the T sweep on the
    novel sets."""
    model = pair.integer
    results = {}
    for set_name, images in sets.items():
        novel = set_name != "mnist"
        x = images.astype(np.float64)
        points = spiking_points(model, x, budget.ipvae_steps, (0.0,) if novel else budget.ipvae_pruning)
        if not novel and budget.ipvae_stopping:
            points += stopping_points(model, x, max(budget.ipvae_steps), budget.ipvae_stopping)
        entries = []
        for point in points:
            if "stop_window" in point:
                label = f"stop w={point['stop_window']} eps={point['stop_eps']:g}"
                name = (f"iP-VAE K = 512, T = {point['steps']}, stopping rule w = {point['stop_window']}, "
                        f"eps = {point['stop_eps']:g} ({point['mean_last_step']:.1f} steps)")
            else:
                pruned = f", {point['lateral_pruned']:.0%} lateral pruned" if point["lateral_pruned"] else ""
                label = f"T={point['steps']}" + (f" p{point['lateral_pruned']:.0%}" if point["lateral_pruned"] else "")
                name = f"iP-VAE K = 512, T = {point['steps']}{pruned}"
            entries.append({
                "name": name, "short": label, "framework": IPVAE_FRAMEWORK, "loaded_with": IPVAE_LOADED_WITH,
                "backend": IPVAE_BACKEND, "T": point["steps"], "images": len(x), **point,
                "energy_estimate_components_nj": ipvae_components_nj(point, model.n_latents),
            })
        results[set_name] = entries
        best = max(entries, key=lambda p: p["r2"])
        log(f"{set_name}: iP-VAE best R^2 {best['r2']:.3f} ({best['name']}, {best['energy_estimate_nj'] / 1e3:.2f} uJ)")
    return results


def conventional_points(pair, ipvae: dict[str, list[dict]], peers: dict[str, list[dict]], models: list,
                        sets: dict[str, np.ndarray]) -> dict[str, list[dict]]:
    """Conventional baselines per set: the iP-VAE's cheapest iterative loop (int8, with weight reads; at the
    8-bit model's R^2 for that T) and the peer's autoencoder as one dense int8 forward pass (at the R^2 of its
    8-bit weights without any delta threshold), arithmetic only and with weight reads."""
    from ipvae.export.fidelity import r2_per_image
    from ipvae.lava.peers.evaluate import slayer_reconstruction
    from ipvae.lava.peers.nets import with_threshold

    model = pair.integer
    nonzeros = NonZeros.from_integer_model(model)
    sigma_delta = next(m for m in models if m.config.kind == "sigma_delta")
    dense_net = with_threshold(sigma_delta, threshold=1e-9)
    result = {}
    for set_name, images in sets.items():
        rows = []
        for point in ipvae[set_name]:
            if point.get("lateral_pruned") or "stop_window" in point:
                continue
            priced = conventional_baselines(model.n_inputs, model.n_latents, point["steps"], nonzeros=nonzeros)
            int8 = {key: value for key, value in priced.items() if key.endswith("int8")}
            name, energy = cheapest(int8, "with_memory_nj")
            rows.append({"name": f"{name} T={point['steps']} + reads", "r2": point["r2"], "energy_estimate_nj": energy,
                         "marker": "^"})
        ann_r2 = float(r2_per_image(images, slayer_reconstruction(dense_net, images, 1)).mean())
        priced = peers[set_name][0]["conventional"]["dense_autoencoder_int8"]
        rows.append({"name": f"dense AE H{sigma_delta.config.hidden} int8 + reads", "r2": ann_r2,
                     "energy_estimate_nj": priced["with_memory_nj"], "marker": "s"})
        rows.append({"name": f"dense AE H{sigma_delta.config.hidden} int8 arithmetic", "r2": ann_r2,
                     "energy_estimate_nj": priced["arithmetic_nj"], "marker": "D"})
        result[set_name] = rows
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=str(DEFAULT_RUN),
                        help="the iP-VAE run (default: the shipped model; a folder without a model: a random one)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget: a few thousand training images, 16 test images")
    parser.add_argument("--out", default="out/bench/peers")
    parser.add_argument("--train-images", type=int, default=None, help="override the budget's training images")
    parser.add_argument("--images", type=int, default=None, help="override the budget's test images per set")
    parser.add_argument("--thresholds", type=int, nargs="+", default=None,
                        help="override the sigma-delta threshold sweep (mantissas in 1/64 units)")
    parser.add_argument("--sets", nargs="+", default=None, choices=("mnist",) + NOVEL_SETS,
                        help="image sets to measure (default: all; mnist is always measured)")
    args = parser.parse_args(argv)
    for flag in ("train_images", "images"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            print(f"peers: --{flag.replace('_', '-')} must be a positive integer", file=sys.stderr)
            return 2
    if args.thresholds is not None and any(not 1 <= t <= MAX_THRESHOLD_MANTISSA for t in args.thresholds):
        print(f"peers: --thresholds must be mantissas in 1..{MAX_THRESHOLD_MANTISSA}", file=sys.stderr)
        return 2
    budget = QUICK if args.quick else FULL
    budget = replace(budget, train_images=args.train_images or budget.train_images,
                     cuba_train_images=args.train_images or budget.cuba_train_images,
                     mnist_images=args.images or budget.mnist_images, novel_images=args.images or budget.novel_images,
                     threshold_sweep=tuple(args.thresholds or budget.threshold_sweep),
                     sets=("mnist",) + tuple(name for name in (args.sets or NOVEL_SETS) if name != "mnist"))
    if budget.base_threshold not in budget.threshold_sweep:
        budget = replace(budget, base_threshold=budget.threshold_sweep[0])
    try:
        return run(budget, Path(args.run_dir), Path(args.out), "quick" if args.quick else "full")
    except IpvaeError as error:
        print(f"peers: {error}", file=sys.stderr)
        return 1


def run(budget: Budget, run_dir: Path, out: Path, mode: str) -> int:
    import torch

    from ipvae.fileio import prepare_output_dir, write_json
    from ipvae.lava.accounting.pricing import table_as_dict
    from ipvae.lava.peers.nets import n_weights
    from ipvae.lava.peers.report import markdown_table, plot_pareto, verdict, verdict_lines
    from ipvae.lava.pipeline import models_for_benchmark

    torch.set_num_threads(1)
    out = prepare_output_dir(out)
    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {line}", flush=True)

    pair = models_for_benchmark(run_dir)
    sets = image_sets(budget, log)
    models = train_peers(budget, log)
    peers = measure_peers(models, sets, budget, out, log)
    ipvae = measure_ipvae(pair, sets, budget, log)
    conventional = conventional_points(pair, ipvae, peers, models, sets)
    by_set = {name: {"images": len(sets[name]), "ipvae": ipvae[name], "peers": peers[name],
                     "conventional": conventional[name], "verdict": verdict(ipvae[name], peers[name])}
              for name in sets}
    result = {
        "benchmark": "peers", "mode": mode, "budget": {k: v for k, v in budget.__dict__.items()},
        "ipvae_model": pair.label, "seconds": time.perf_counter() - started,
        "sizes": {"ipvae_parameters": IPVAE_PARAMETERS, "peer_weights": {m.config.name: n_weights(m) for m in models}},
        "price_table": table_as_dict(),
        "peers": peers["mnist"], "ipvae": ipvae["mnist"], "conventional": conventional["mnist"],
        "verdict": by_set["mnist"]["verdict"],
        "novel": {name: by_set[name] for name in sets if name != "mnist"},
    }
    write_json(out / "peers.json", result)
    plot_pareto(out / "peers_pareto.png", by_set, conventional)
    lines = [f"## lava-dl peers vs the iP-VAE ({mode} budget)", "", markdown_table(by_set), "", "Verdict:", ""]
    for name, entry in by_set.items():
        lines.extend(verdict_lines(name, entry["verdict"]))
    text = "\n".join(lines) + "\n"
    from ipvae.fileio import atomic_path

    with atomic_path(out / "peers.md") as temporary:
        temporary.write_text(text)
    print(text)
    log(f"wrote {out / 'peers.json'}, {out / 'peers_pareto.png'}, {out / 'peers.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
