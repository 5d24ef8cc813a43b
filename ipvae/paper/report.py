"""`ipvae paper report`: one Markdown report generated from the experiments' JSON (no hand-typed numbers)."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from ipvae.paper import format as fmt
from ipvae.paper.claims import check_claims
from ipvae.paper.experiments import EXPERIMENTS
from ipvae.paper.experiments.mnist import active_units
from ipvae.paper.published import PAPER_SOURCE
from ipvae.errors import IpvaeError
from ipvae.fileio import atomic_path

PROTOCOL_DIFFERENCES = (
    "training: the budget above (the paper: 400 epochs on GPUs, 5 seeds), the same T_train for every model and "
    "every model evaluated at the same t (the paper picks T per family: its labels say which);",
    "the amortized VAEs keep the iP-VAE's linear decoder (the paper's conv P-VAE also has a conv decoder, "
    "6.79M parameters), and predictive coding has K = 512 latents here (K = 64 in the paper): see docs/baselines.md;",
    "natural patches are cut from the photographs bundled with scikit-image and scikit-learn, standing in for "
    "the paper's van Hateren images, so their numbers are not directly comparable;",
    "evaluation uses the first images of each split (sizes above), not the whole test sets.",
)

BUDGET_FIELDS = {
    "n_latents": "latents K", "epochs": "MNIST epochs", "batch_size": "batch", "t_train": "T_train",
    "train_limit": "MNIST training images (None: all 60,000)", "seeds": "seeds", "natural_epochs": "natural-patch epochs",
    "natural_betas": "beta sweep (natural patches)", "t_test": "t at evaluation", "curve_steps": "convergence: last step",
    "test_images": "MNIST test images", "probe_train_images": "probe training images",
    "rotation_images": "rotated test images per angle", "lava_images": "Lava sample images",
}


def load_results(results_dir: Path) -> dict:
    results = {}
    for name in EXPERIMENTS:
        path = results_dir / name / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    if not results:
        raise IpvaeError(f"{results_dir} holds no experiment results (run 'ipvae paper all --out {results_dir}' first)")
    return results


QUICK_TARGET_MINUTES = 10.0  # the smoke budget's target: all six experiments in under 10 minutes


def _wall_clock_lines(results_dir: Path, results: dict) -> list[str]:
    from ipvae.paper.runner import wall_span_seconds

    seconds = wall_span_seconds(results_dir, [results_dir / name / f"{name}.json" for name in results])
    if seconds is None:
        return []
    line = (f"Wall clock from the first experiment's start to the last result written: **{seconds / 60:.1f} minutes** "
            "(every invocation of `ipvae paper` into this directory, side-by-side halves and resumed parts included; "
            "an interrupted run's pause counts too).")
    if results[next(iter(results))]["budget"]["name"] == "quick":
        verdict = "met" if seconds / 60 < QUICK_TARGET_MINUTES else "**missed**"
        line += f" The quick budget's target is under {QUICK_TARGET_MINUTES:.0f} minutes: {verdict}."
    return [line, ""]


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _budget_section(results: dict) -> list[str]:
    from ipvae.paper.context import PART_SECONDS

    budget = next(iter(results.values()))["budget"]
    rows = [[label, str(budget[key])] for key, label in BUDGET_FIELDS.items() if key in budget]
    lines = ["## Budget", "", fmt.table(["setting", "value"], rows), ""]
    if "mnist" in results:
        minutes = [[row["label"], fmt.spread(row["summary"]["train_minutes"], 1)]
                   for row in results["mnist"]["rows"].values() if "train_minutes" in row.get("summary", {})]
        lines += ["Measured training minutes per MNIST model (mean ± std over seeds):", "",
                  fmt.table(["model", "minutes"], minutes), ""]
    seconds = [[name, _minutes(result.get(PART_SECONDS)), _minutes(result.get("seconds"))]
               for name, result in results.items() if "seconds" in result]
    lines += ["Wall minutes of each experiment: computing its parts (training included), summed over every invocation "
              "and side-by-side half that computed one ('-': results written before part times were kept), and its "
              "last invocation alone (near 0 when it only reassembled cached parts):", "",
              fmt.table(["experiment", "computing parts", "last invocation"], seconds), ""]
    return lines


SPREAD_REPORT = "results-spread.md"  # beside docs/results.md: the 3-seed full budget (Makefile: results-spread)
SMOKE_BUDGET_NAMES = ("quick", "tiny")  # results written before budgets said whether they are smoke


def is_smoke(budget: dict) -> bool:
    """Whether a budget (as stored in an experiment's JSON) only shows that the commands run."""
    return bool(budget.get("smoke", budget["name"] in SMOKE_BUDGET_NAMES))


def spread_note(budget: dict) -> list[str]:
    """A one-seed budget's report points to the 3-seed short budget for the spread it cannot show."""
    if len(budget["seeds"]) > 1 or is_smoke(budget):
        return []
    return [f"This budget trains one seed, so no verdict here has a spread. The seed-to-seed spread of the same "
            f"models is in [`{SPREAD_REPORT}`]({SPREAD_REPORT}), the 3-seed short budget (`make results-spread`).", ""]


def build_report(results: dict, figure_prefix: str, command: str, wall_clock: list[str] = ()) -> str:
    budget = next(iter(results.values()))["budget"]
    device = next(iter(results.values()))["device"]
    lines = ["# Results: iP-VAE against its relatives, the paper's experiments", "",
             f"Generated by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from the JSON of "
             f"`ipvae paper`; every number below comes from that JSON except the rows marked *paper* ({PAPER_SOURCE}).",
             f"Device: {device}. Budget: **{budget['name']}**."]
    if is_smoke(budget):
        lines += ["", f"> **This is the {budget['name']} (smoke) budget**: tiny training, "
                  f"{len(budget['seeds'])} seed(s). Its numbers show that the commands run; they are not results."]
    lines += [""] + _budget_section(results) + list(wall_clock)
    lines += ["## Which of the paper's claims our runs support", "",
              "Rule: A beats B when A's mean is better by more than the sum of the two standard deviations over seeds.", ""]
    lines += spread_note(budget)
    if is_smoke(budget):
        lines += [f"At the {budget['name']} budget the models are barely trained: these verdicts exercise the rules, "
                  "they say nothing about the paper.", ""]
    verdicts = check_claims(results)
    lines += [fmt.table(["claim", "verdict", "why"], [[v.claim, f"**{v.verdict}**", v.why] for v in verdicts]), ""]
    lines += ["Differences from the paper's protocol that bear on every verdict:", "",
              *(f"- {difference}" for difference in PROTOCOL_DIFFERENCES), ""]
    for name, module in EXPERIMENTS.items():
        if name in results:
            lines += [f"## {module.TITLE}", "", module.markdown(results[name], f"{figure_prefix}{name}/"), ""]
    missing = [name for name in EXPERIMENTS if name not in results]
    if missing:
        lines += ["## Not run", "", "No results for: " + ", ".join(missing) + ".", ""]
    return "\n".join(lines)


README_START = "<!-- headline results: generated by ipvae paper report --headline README.md, do not edit -->"
README_END = "<!-- end of headline results -->"


SHIPPED_EVAL = Path("pretrained") / "mnist_k512" / "eval" / "eval_t64.json"  # `ipvae eval` of the shipped model
SHIPPED_LABEL = "iP-VAE, shipped pretrained/mnist_k512"
SHIPPED_BUDGET = "`make pretrained`: 6 chained stages, 57 min on 2 CPU cores (pretrained/README.md)"


def _budget_text(budget: dict) -> str:
    """A row's training budget in words, from the experiment's budget fields."""
    limit = budget.get("train_limit")
    images = "all 60,000" if limit is None else f"{limit:,}"
    return f"{budget['name']}: {budget.get('epochs', '?')} epoch(s) on {images} images, T_train {budget.get('t_train', '?')}"


def headline_table(results: dict, shipped: dict | None = None) -> str:
    """Ours on MNIST (R^2, zeros, probes, parameters), one row per model with its training budget and t, from the
    mnist JSON; ``shipped``: the shipped model's `ipvae eval` JSON, its row first (one model: no spread)."""
    mnist = results["mnist"]
    budget, t_test = _budget_text(mnist["budget"]), str(mnist["t_test"])
    rows = []
    if shipped is not None:
        rows.append([SHIPPED_LABEL, SHIPPED_BUDGET, str(shipped["t_test"]), f"{shipped['r2']:.3f}",
                     f"{shipped['zeros']:.3f}", f"{shipped['probe_accuracy']:.3f}" if "probe_accuracy" in shipped else "-",
                     "-", f"{shipped['params']:,.0f}" if "params" in shipped else "-"])
    for row in mnist["rows"].values():
        s = row.get("summary")
        if s:
            rows.append([row["label"], budget, t_test, fmt.spread(s.get("r2")), fmt.spread(s.get("zeros")),
                         fmt.spread(s.get("probe_rates")), fmt.spread(s.get("probe_mean_counts")),
                         fmt.spread(s.get("params"), 0)])
    rows += _pca_rows(mnist)
    return fmt.table(["model", "training budget", "t", "R^2 (spikes)", "zeros", "probe: rates", "probe: mean counts",
                      "params"], rows)


def _pca_rows(mnist: dict) -> list[list[str]]:
    """The dense reference beside the models: PCA with all K components and with as many as the iP-VAE's mean
    active units (the same count of non-zero values per image)."""
    pca = mnist.get("pca")
    if not pca:
        return []
    budget = f"fit on {pca['train_images']:,} training images"
    wanted = {mnist["n_latents"]: f"PCA, k = {mnist['n_latents']} (dense reference)"}
    matched = round(active_units(mnist).get("ipvae", 0.0))
    if matched:
        wanted.setdefault(matched, f"PCA, k = {matched} (the iP-VAE's mean active units)")
    return [[label, budget, "-", fmt.value(pca["r2"][pca["k"].index(k)]), "-", "-", "-", "-"]
            for k, label in sorted(wanted.items()) if k in pca["k"]]


def _shipped_eval(readme: Path) -> dict | None:
    path = readme.parent / SHIPPED_EVAL
    return json.loads(path.read_text()) if path.is_file() else None


def update_readme(readme: Path, results: dict, report: Path) -> bool:
    """Replace the README's headline block (between the markers) with the generated table; False if absent."""
    text = readme.read_text()
    if README_START not in text or README_END not in text or "mnist" not in results:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    mnist = results["mnist"]
    block = (f"{README_START}\nMNIST, {mnist['test_images']} test images at t = {mnist['t_test']}, budget "
             f"{mnist['budget']['name']}, {fmt.over_seeds(mnist['budget']['seeds'])} (from `{report}`):\n\n"
             f"{headline_table(results, _shipped_eval(readme))}\n{README_END}")
    with atomic_path(readme) as temporary:
        temporary.write_text(head + block + tail)
    return True


def write_report(results_dir: Path, out: Path, command: str | None = None, readme: Path | None = None) -> Path:
    """Write ``out`` and copy the figures into ``out``'s sibling folder OUT_STEM/ (linked relatively); at the
    budget that is not a smoke budget also refresh the headline block of ``readme``."""
    results = load_results(results_dir)
    figures_dir = out.parent / out.stem
    for name, result in results.items():
        for figure in result.get("figures", []):
            target = figures_dir / name / figure
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results_dir / name / figure, target)
    command = command or "ipvae " + " ".join(sys.argv[1:])
    text = build_report(results, f"{figures_dir.name}/", command, _wall_clock_lines(Path(results_dir), results))
    with atomic_path(out) as temporary:
        temporary.write_text(text)
    budget = next(iter(results.values()))["budget"]
    if readme is not None and not is_smoke(budget):  # a smoke budget never writes numbers into the README
        update_readme(readme, results, out)
    return out
