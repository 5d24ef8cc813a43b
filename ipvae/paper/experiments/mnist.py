"""Experiment 1: the paper's MNIST table for every model, plus the exported 8-bit iP-VAE on the integer
reference and a small sample of it through the Lava simulator."""

from __future__ import annotations

import numpy as np
import torch

from ipvae.paper import format as fmt
from ipvae.paper.context import Context
from ipvae.paper.figures import new_figure, save_labelled
from ipvae.paper.measure import (
    FEATURE_LABELS,
    final_codes,
    probe_scores,
    reconstruction,
    summarise_runs,
)
from ipvae.paper.published import MNIST_TABLE, PAPER_SOURCE
from ipvae.paper.pca import PCA_COMPONENTS, pca_curve, pca_rates
from ipvae.paper.rate import QUANTIZATION_BITS, bits_per_image
from ipvae.paper.zoo import ensure_trained
from ipvae.train.evaluate import probe_accuracy

NAME = "mnist"
TITLE = "MNIST: reconstruction, sparsity, probe accuracy, size and cost"
KEPT_METRICS = ("mse_per_pixel", "r2", "r2_rate", "zeros", "spikes_per_inference", "lifetime_sparsity",
                "population_sparsity")
PLOTTED = (("r2", "R^2 (spikes, t = T)"), ("zeros", "fraction of zero counts"), ("probe_mean_counts", "probe accuracy (mean counts)"))


def load(split: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ipvae.data import get_dataset

    x, y = get_dataset("mnist", split, limit=limit)
    return x.reshape(x.shape[0], -1).float(), y  # [N, M], [N]


def _float_run(ctx: Context, entry, seed: int, data) -> dict:
    x_train, y_train, x_test, y_test = data
    budget = ctx.budget
    trained = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log)
    metrics, _ = reconstruction(trained.model, x_test, budget.t_test, seed)
    probes = probe_scores(trained.model, x_train, y_train, x_test, y_test, budget.t_test, seed)
    return {
        **{key: metrics[key] for key in KEPT_METRICS},
        "probe_rates": probes["rates"],
        "probe_mean_counts": probes["mean_counts"],
        "params": trained.model.n_params,
        "macs_per_inference": trained.model.macs_per_inference(budget.t_test),
        "train_minutes": trained.train_seconds / 60.0,
    }


def _code_rate(ctx: Context, entry, seed: int, data) -> dict:
    """Bits per image (ipvae.paper.rate) of the codes at t = T that _float_run's R^2 decodes (its own part, so
    that results computed before it existed gain it without recomputing the rest)."""
    _, _, x_test, _ = data
    trained = ensure_trained(ctx.results_dir, entry, ctx.budget, seed, log=ctx.log)
    codes = final_codes(trained.model, x_test, ctx.budget.t_test, seed)  # [N, K]
    return {"bits_per_image": bits_per_image(codes.double().numpy())}


def _integer_run(ctx: Context, entry, seed: int, data) -> dict:
    """The default export (8-bit weights) of a trained iP-VAE run on the bit-exact integer reference."""
    from ipvae.lava.pipeline import models_from_run, run_backend, summarize

    x_train, y_train, x_test, y_test = data
    budget = ctx.budget
    trained = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log)
    pair = models_from_run(trained.run_dir, seed=seed)
    test_run = run_backend(pair.integer, x_test.numpy(), budget.t_test, "reference", record_u=False)
    table, _ = summarize(pair.integer, x_test.numpy(), test_run)
    train_run = run_backend(pair.integer, x_train.numpy(), budget.t_test, "reference", record_u=False,
                            image_offset=x_test.shape[0])
    mean_counts_train = torch.from_numpy(train_run.z[1:].mean(axis=0))  # [N, K] counts averaged over t = 1..T
    mean_counts_test = torch.from_numpy(test_run.z[1:].mean(axis=0))  # [N, K]
    return {
        "mse_per_pixel": table["mse_per_pixel"],
        "r2": table["r2"],
        "zeros": table["zeros"],
        "spikes_per_inference": table["spikes_per_inference"],
        "synops_per_inference": table["synops_per_inference"],
        "energy_estimate_nj": table["energy_estimate_nj"],
        "probe_mean_counts": probe_accuracy(mean_counts_train, y_train, mean_counts_test, y_test, seed),
        "weight_bits": int(pair.integer.spec.weight_bits),
        "bits_per_image": bits_per_image(test_run.z[-1]),  # the counts at t = T
    }


def _lava_sample(ctx: Context, entry, data) -> dict:
    """A few test images through the Lava fixed-point graph, compared with the reference on the same images."""
    from ipvae.lava.parity import compare_trajectories
    from ipvae.lava.pipeline import models_from_run, run_backend, summarize

    _, _, x_test, _ = data
    budget = ctx.budget
    seed = budget.seeds[0]
    trained = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log)
    pair = models_from_run(trained.run_dir, seed=seed)
    x = x_test[: budget.lava_images].numpy()
    lava = run_backend(pair.integer, x, budget.lava_steps, "lava", progress=False)
    reference = run_backend(pair.integer, x, budget.lava_steps, "reference")
    parity = compare_trajectories(lava.z, lava.u, reference.z, reference.u)
    table, _ = summarize(pair.integer, x, lava)
    return {
        "images": int(x.shape[0]),
        "steps": budget.lava_steps,
        "seed": seed,
        "mse_per_pixel": table["mse_per_pixel"],
        "r2": table["r2"],
        "zeros": table["zeros"],
        "spikes_per_inference": table["spikes_per_inference"],
        "synops_per_inference": table["synops_per_inference"],
        "energy_estimate_nj": table["energy_estimate_nj"],
        "identical_to_reference": bool(parity.identical),
        "values_compared": int(parity.compared_values),
    }


def _import_lava_first() -> None:
    """Lava sets multiprocessing's start method when first imported, which fails once anything (the probe's
    scikit-learn/joblib, a training run's progress bar) has fixed it: import it before the probes run, through
    ipvae.lava.lava_import, which also copes with a 'fork' context fixed earlier in the process."""
    from ipvae.lava.lava_import import prepare_lava_import

    prepare_lava_import()
    import lava.magma.core.process.process  # noqa: F401


def run(ctx: Context) -> dict:
    budget = ctx.budget
    if any(entry.exportable for entry in ctx.models):
        _import_lava_first()
    x_train, y_train = load("train", budget.probe_train_images)
    x_test, y_test = load("test", budget.test_images)
    data = (x_train, y_train, x_test, y_test)
    pixels = ctx.cached(NAME, "pixels", lambda: {"probe": probe_accuracy(x_train, y_train, x_test, y_test)})
    rows = {}
    for entry in ctx.models:
        runs = [{**ctx.cached(NAME, f"{entry.name}-seed{seed}", lambda: _float_run(ctx, entry, seed, data)),
                 **ctx.cached(NAME, f"{entry.name}-rate-seed{seed}", lambda: _code_rate(ctx, entry, seed, data))}
                for seed in budget.seeds]
        rows[entry.name] = {"label": entry.label, "paper_key": entry.paper_key, "runs": runs,
                            "summary": summarise_runs(runs)}
        if entry.exportable:
            integer_runs = [ctx.cached(NAME, f"{entry.name}-int8-seed{seed}", lambda: _integer_run(ctx, entry, seed, data))
                            for seed in budget.seeds]
            rows[f"{entry.name}_int8"] = {"label": f"{entry.label}, 8-bit export, integer reference",
                                          "paper_key": None, "runs": integer_runs,
                                          "summary": summarise_runs(integer_runs)}
            rows[f"{entry.name}_lava"] = {"label": f"{entry.label}, 8-bit export, Lava simulator (sample)",
                                          "paper_key": None,
                                          "sample": ctx.cached(NAME, f"{entry.name}-lava", lambda: _lava_sample(ctx, entry, data))}
    matched = [round(units) for name, units in active_units({"rows": rows, "n_latents": budget.n_latents}).items()
               if name == "ipvae" and units >= 1]  # PCA with as many components as iP-VAE's mean active units
    pca = ctx.cached(NAME, "pca", lambda: pca_curve(x_train.numpy(), x_test.numpy(), sorted({*PCA_COMPONENTS, *matched})))
    rates = ctx.cached(NAME, "pca-rate", lambda: pca_rates(x_train.numpy(), x_test.numpy(), pca["k"]))
    pca = {**pca, "bits_per_image": rates["bits_per_image"], "r2_quantized": rates["r2_quantized"]}
    result = {
        "name": NAME, "budget": budget.describe(), "device": ctx.device, "test_images": int(x_test.shape[0]),
        "probe_train_images": int(x_train.shape[0]), "t_test": budget.t_test, "pixels_probe": pixels["probe"],
        "rows": rows, "feature_labels": FEATURE_LABELS, "pca": pca, "n_latents": budget.n_latents,
    }
    result["figures"] = [_plot(ctx, result), _plot_rate_distortion(ctx, result)]
    return result


RATE_SENTENCE = (
    "Bits / image: the code's rate, the empirical (plug-in) entropy of each unit's value at t = T over the test "
    "images, summed over units (an ideal entropy coder per unit; an upper bound on the best joint code); spike "
    "counts are counted as they are, real-valued codes (Gaussian samples, sparse and predictive codes, PCA's "
    "coordinates) on a grid of 2^8 levels over each unit's observed range, the 8-bit width of the integer export "
    "(ipvae.paper.rate; with N test images a unit shows at most log2 N bits).")


def _plot(ctx: Context, result: dict) -> str:
    figure, axes = new_figure(len(PLOTTED))
    names = [name for name, row in result["rows"].items() if "summary" in row]
    for axis, (metric, label) in zip(axes, PLOTTED):
        shown = [name for name in names if metric in result["rows"][name]["summary"]]
        means = [result["rows"][name]["summary"][metric]["mean"] for name in shown]
        errors = [result["rows"][name]["summary"][metric]["std"] for name in shown]
        axis.bar(np.arange(len(shown)), means, yerr=errors, capsize=3, color="tab:blue")
        labels = [result["rows"][name]["label"].split(",")[0] + (" 8-bit" if name.endswith("int8") else "") for name in shown]
        axis.set_xticks(np.arange(len(shown)), labels, fontsize=7, rotation=60, ha="right")
        axis.set_title(label)
    figure.suptitle(f"MNIST, {result['test_images']} test images, t = {result['t_test']}", y=1.04)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "mnist.png", ctx.device, ctx.budget.name)


def active_units(result: dict) -> dict[str, float]:
    """Mean non-zero latents per image, (1 - zeros) K, of every float model row (the rate of a sparse code)."""
    return {name: (1.0 - row["summary"]["zeros"]["mean"]) * result["n_latents"] for name, row in result["rows"].items()
            if "summary" in row and "zeros" in row["summary"] and not name.endswith("_int8")}


def code_bits(result: dict) -> dict[str, float]:
    """Mean bits per image (ipvae.paper.rate) of every float model row that has them (older results may not)."""
    return {name: row["summary"]["bits_per_image"]["mean"] for name, row in result["rows"].items()
            if "bits_per_image" in row.get("summary", {}) and not name.endswith("_int8")}


LOG_AXIS_FLOOR = {"units": 1.0, "bits": 0.1}  # where a zero rate is drawn on the log axes
MATPLOTLIB_CYCLE = 10  # colours C0..C9: a model keeps its colour in both panels


def _plot_rate_distortion(ctx: Context, result: dict) -> str:
    """R^2 against the rate: mean active units (PCA: k components = k active values) and bits per image
    (ipvae.paper.rate); each model's point beside PCA's curve."""
    pca = result["pca"]
    panels = [("units", active_units(result), pca["k"], "mean active units per image", "PCA (k components)")]
    if "bits_per_image" in pca:
        panels.append(("bits", code_bits(result), pca["bits_per_image"], "bits per image (plug-in entropy, 8-bit grid)",
                       "PCA (k components, 8-bit grid)"))
    colours = {name: f"C{index % MATPLOTLIB_CYCLE}" for index, name in enumerate(active_units(result))}
    figure, axes = new_figure(len(panels), panel_width=5.0)
    for axis, (kind, rates, pca_at, label, pca_label) in zip(axes, panels):
        axis.plot(pca_at, pca["r2"], "k.-", label=pca_label)
        for name, rate in rates.items():
            axis.plot([max(rate, LOG_AXIS_FLOOR[kind])], [result["rows"][name]["summary"]["r2"]["mean"]], "o",
                      color=colours.get(name), label=result["rows"][name]["label"].split(",")[0])
        if kind == "bits":  # what the plug-in estimate can show at most for a real-valued code of K units
            axis.axvline(result["n_latents"] * min(QUANTIZATION_BITS, np.log2(result["test_images"])), color="gray",
                         linestyle=":", label="K min(8, log2 N): a real code's ceiling")
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel(f"R^2 (t = {result['t_test']})")
        axis.legend(fontsize=6)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "rate_distortion.png", ctx.device, ctx.budget.name)


def _pca_lines(result: dict) -> list[str]:
    pca = result.get("pca")
    if not pca:
        return []
    units = active_units(result)
    lines = ["", f"Dense reference: PCA fit on the {pca['train_images']} probe-training images, test R^2 of the "
             "projection on the first k components (k active values per image):", "",
             fmt.table(["k", *(str(k) for k in pca["k"])],
                       [["R^2", *(fmt.value(r2) for r2 in pca["r2"])], *_pca_rate_rows(pca)])]
    matched = round(units.get("ipvae", 0.0))
    if matched in pca["k"]:
        lines += ["", f"iP-VAE: {units['ipvae']:.0f} active units per image on average ((1 - zeros) K); PCA with "
                  f"{matched} components: R^2 {fmt.value(pca['r2'][pca['k'].index(matched)])}."]
    bits = code_bits(result)
    if "ipvae" in bits and "bits_per_image" in pca:
        nearest = _nearest_rate(pca["bits_per_image"], bits["ipvae"])
        ipvae_r2 = result["rows"]["ipvae"]["summary"]["r2"]["mean"]
        lines += ["", f"iP-VAE: {bits['ipvae']:.1f} bits per image, R^2 {fmt.value(ipvae_r2)}; the PCA point of the "
                  f"nearest rate: {pca['k'][nearest]} components, {pca['bits_per_image'][nearest]:.1f} bits per image, "
                  f"R^2 {fmt.value(pca['r2'][nearest])}."]
    return lines


def _nearest_rate(rates: list[float], rate: float) -> int:
    """Index of the rate nearest to ``rate`` on the figure's log axis."""
    floor = LOG_AXIS_FLOOR["bits"]
    return int(np.argmin(np.abs(np.log(np.maximum(rates, floor)) - np.log(max(rate, floor)))))


def _pca_rate_rows(pca: dict) -> list[list[str]]:
    """The PCA table's rows in bits (absent from results computed before the rate existed)."""
    if "bits_per_image" not in pca:
        return []
    return [["bits / image", *(f"{bits:.1f}" for bits in pca["bits_per_image"])],
            ["R^2, coordinates on the 8-bit grid", *(fmt.value(r2) for r2 in pca["r2_quantized"])]]


def markdown(result: dict, prefix: str) -> str:
    header = ["model", "MSE/pixel x1e3", "R^2 (spikes)", "R^2 (rates)", "zeros", "bits / image", "probe: rates",
              "probe: mean counts",
              "params", "MACs / inference", "synaptic ops / inference", "train min"]
    rows = []
    for name, row in result["rows"].items():
        if "summary" not in row:
            continue
        s = row["summary"]
        rows.append([f"**{row['label']}** (ours)", fmt.spread(s.get("mse_per_pixel"), 2, 1e3), fmt.spread(s.get("r2")),
                     fmt.spread(s.get("r2_rate")), fmt.spread(s.get("zeros")), fmt.spread(s.get("bits_per_image"), 1),
                     fmt.spread(s.get("probe_rates")),
                     fmt.spread(s.get("probe_mean_counts")), fmt.spread(s.get("params"), 0),
                     fmt.spread(s.get("macs_per_inference"), 0), fmt.spread(s.get("synops_per_inference"), 0),
                     fmt.spread(s.get("train_minutes"), 1)])
        paper = MNIST_TABLE.get(row["paper_key"] or "")
        if paper:
            rows.append([f"{paper['label']} (paper)", fmt.value(paper["mse_per_pixel"] * 1e3, 2), fmt.value(paper["r2"]), "-",
                         fmt.value(paper["zeros"], 2), "-", fmt.value(paper["probe"], 4), "-", f"{paper['params'] / 1e6:.2f}M",
                         "-", "-", "-"])
    for key, paper in MNIST_TABLE.items():
        if not any(row["paper_key"] == key for row in result["rows"].values()):
            rows.append([f"{paper['label']} (paper; not run here)", fmt.value(paper["mse_per_pixel"] * 1e3, 2),
                         fmt.value(paper["r2"]), "-", fmt.value(paper["zeros"], 2), "-", fmt.value(paper["probe"], 4), "-",
                         f"{paper['params'] / 1e6:.2f}M", "-", "-", "-"])
    rows.append(["raw pixels (linear probe only)", "-", "-", "-", "-", "-", fmt.value(result["pixels_probe"]), "-", "-", "-", "-", "-"])
    lines = [
        f"{result['test_images']} MNIST test images at t = {result['t_test']}; probes fit on the first "
        f"{result['probe_train_images']} training images. Ours: {fmt.over_seeds(result['budget']['seeds'])}. "
        f"Paper rows: {PAPER_SOURCE} (their T_test differs, see the label). Probe features: "
        + "; ".join(f"*{kind}* = {label}" for kind, label in result["feature_labels"].items()) + ".",
        "MACs: dense multiply-accumulates of one T-step inference of the float model, from the model's own "
        "`macs_per_inference` (iterative: 2T·M·K; amortized: encoder once plus T decodes); synaptic ops: event-driven "
        "operations of the integer model (docs/energy.md conventions).",
        RATE_SENTENCE,
        "",
        fmt.table(header, rows),
    ]
    for name, row in result["rows"].items():
        sample = row.get("sample")
        if sample:
            lines += ["", f"{row['label']}: {sample['images']} test images × {sample['steps']} steps: R^2 "
                      f"{fmt.value(sample['r2'])}, zeros {fmt.value(sample['zeros'])}, MSE/pixel "
                      f"{fmt.value(sample['mse_per_pixel'], 4)}, {fmt.value(sample['synops_per_inference'], 0)} synaptic ops "
                      f"per inference; spike counts and potentials identical to the integer reference: "
                      f"{'yes' if sample['identical_to_reference'] else 'NO'} ({sample['values_compared']:,} values)."]
    lines += _pca_lines(result)
    lines += ["", *(fmt.figure(name, "MNIST summary", prefix) for name in result["figures"])]
    return "\n".join(lines)
