"""Experiment 5: trained on MNIST, tested on novel data sets: Fashion-MNIST, Hershey-font glyphs, and
any 28x28 set the user passes (``--dataset NAME=PATH``): reconstruction and probe accuracy per model."""

from __future__ import annotations

from ipvae.paper import format as fmt
from ipvae.paper.context import Context
from ipvae.data.glyphs import CHARACTERS, FONTS, TEST_FONTS, hershey_glyphs
from ipvae.paper.figures import new_figure, save_labelled
from ipvae.paper.measure import FEATURE_LABELS, probe_scores, reconstruction, summarise_runs
from ipvae.paper.zoo import ensure_trained
from ipvae.errors import DatasetUnavailable

NAME = "novel"
TITLE = "Novel data sets (trained on MNIST)"
KEPT = ("mse_per_pixel", "r2", "zeros")


def _builtin_sets(budget):
    """{name: (x_train, y_train, x_test, y_test) or the reason it is unavailable}."""
    from ipvae.data import get_dataset

    sets = {}
    try:
        x_train, y_train = get_dataset("fashion_mnist", "train", limit=budget.probe_train_images)
        x_test, y_test = get_dataset("fashion_mnist", "test", limit=budget.novel_images)
        sets["fashion_mnist"] = (x_train, y_train, x_test, y_test)
    except DatasetUnavailable as error:
        sets["fashion_mnist"] = str(error)
    try:
        x_train, y_train = hershey_glyphs("train")
        x_test, y_test = hershey_glyphs("test")
        sets["hershey"] = (x_train, y_train, x_test[: budget.novel_images], y_test[: budget.novel_images])
    except DatasetUnavailable as error:
        sets["hershey"] = str(error)
    return sets


def _user_sets(ctx: Context):
    from ipvae.data.labelled import load_user_images, split_labelled

    sets = {}
    for name, path in ctx.user_datasets:
        x, y = load_user_images(path)
        sets[name] = split_labelled(x, y, ctx.budget.seeds[0]) if y is not None else (None, None, x, None)
    return sets


def _flat(part):
    """Images as float rows [N, M]; labels (integer tensors) and None unchanged."""
    if part is None or not part.is_floating_point():
        return part
    return part.reshape(part.shape[0], -1).float()


def _run(ctx: Context, entry, seed: int, data) -> dict:
    x_train, y_train, x_test, y_test = data
    budget = ctx.budget
    model = ensure_trained(ctx.results_dir, entry, budget, seed, log=ctx.log).model
    metrics, _ = reconstruction(model, x_test, budget.t_test, seed)
    row = {key: metrics[key] for key in KEPT}
    if y_train is not None:
        probes = probe_scores(model, x_train, y_train, x_test, y_test, budget.t_test, seed)
        row.update({f"probe_{kind}": accuracy for kind, accuracy in probes.items()})
    return row


def run(ctx: Context) -> dict:
    from ipvae.train.evaluate import probe_accuracy

    budget = ctx.budget
    sets = {**_builtin_sets(budget), **_user_sets(ctx)}
    datasets = {}
    for set_name, data in sets.items():
        if isinstance(data, str):
            datasets[set_name] = {"unavailable": data}
            continue
        x_train, y_train, x_test, y_test = data = tuple(_flat(part) for part in data)
        entry_rows = {}
        for entry in ctx.models:
            runs = [ctx.cached(NAME, f"{set_name}-{entry.name}-seed{seed}", lambda: _run(ctx, entry, seed, data))
                    for seed in budget.seeds]
            entry_rows[entry.name] = {"label": entry.label, "runs": runs, "summary": summarise_runs(runs)}
        pixels = (ctx.cached(NAME, f"{set_name}-pixels", lambda: {"probe": probe_accuracy(x_train, y_train, x_test, y_test)})
                  if y_train is not None else None)
        datasets[set_name] = {"test_images": int(x_test.shape[0]), "probe_train_images": None if x_train is None else
                              int(x_train.shape[0]), "pixels_probe": None if pixels is None else pixels["probe"],
                              "models": entry_rows}
    result = {"name": NAME, "budget": budget.describe(), "device": ctx.device, "t_test": budget.t_test,
              "datasets": datasets}
    result["figures"] = [_plot(ctx, result)]
    return result


def _plot(ctx: Context, result: dict) -> str:
    available = {name: data for name, data in result["datasets"].items() if "models" in data}
    panels = (("r2", "R^2 from spikes"), ("probe_mean_counts", "probe accuracy (mean counts)"))
    figure, axes = new_figure(len(panels), 4.5, 3.2)
    names = list(available)
    for axis, (metric, label) in zip(axes, panels):
        models = {model for data in available.values() for model in data["models"]}
        width = 0.8 / max(len(models), 1)
        for offset, model_name in enumerate(sorted(models)):
            means, errors, positions = [], [], []
            for index, set_name in enumerate(names):
                summary = available[set_name]["models"].get(model_name, {}).get("summary", {}).get(metric)
                if summary:
                    positions.append(index + offset * width)
                    means.append(summary["mean"])
                    errors.append(summary["std"])
            label_text = next(data["models"][model_name]["label"] for data in available.values() if model_name in data["models"])
            axis.bar(positions, means, width, yerr=errors, capsize=2, label=label_text)
        axis.set_xticks([index + 0.4 - width / 2 for index in range(len(names))], names, fontsize=8)
        axis.set_title(label)
    axes[0].legend(fontsize=7)
    figure.suptitle("trained on MNIST, tested on novel data sets", y=1.04)
    return save_labelled(figure, ctx.experiment_dir(NAME) / "novel.png", ctx.device, ctx.budget.name)


def markdown(result: dict, prefix: str) -> str:
    header = ["data set", "model", "MSE/pixel", "R^2 (spikes)", "zeros", "probe: rates", "probe: mean counts"]
    rows, notes = [], []
    for set_name, data in result["datasets"].items():
        if "unavailable" in data:
            notes.append(f"{set_name}: not run ({data['unavailable']})")
            continue
        for model in data["models"].values():
            s = model["summary"]
            rows.append([set_name, model["label"], fmt.spread(s.get("mse_per_pixel"), 4), fmt.spread(s.get("r2")),
                         fmt.spread(s.get("zeros")), fmt.spread(s.get("probe_rates")), fmt.spread(s.get("probe_mean_counts"))])
        if data["pixels_probe"] is not None:
            rows.append([set_name, "raw pixels (probe only)", "-", "-", "-", fmt.value(data["pixels_probe"]), "-"])
        notes.append(f"{set_name}: {data['test_images']} test images"
                     + (f", probe fit on {data['probe_train_images']} of its training images" if data["probe_train_images"] else
                        ", no labels (reconstruction only)"))
    lines = [f"Models trained on MNIST only; t = {result['t_test']}; {fmt.over_seeds(result['budget']['seeds'])}. "
             f"Hershey glyphs: {len(CHARACTERS)} characters ({CHARACTERS[0]}-{CHARACTERS[-1]}) in {len(FONTS)} Hershey fonts, "
             f"probe fit on {len(FONTS) - len(TEST_FONTS)} fonts and scored on the {len(TEST_FONTS)} others. "
             f"Probe features: rates = {FEATURE_LABELS['rates']}; mean counts = {FEATURE_LABELS['mean_counts']}.", "",
             fmt.table(header, rows), "", *(f"- {note}" for note in notes), "",
             *(fmt.figure(name, "novel data sets", prefix) for name in result["figures"])]
    return "\n".join(lines)
