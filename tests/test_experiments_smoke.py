"""Smoke test of `ipvae paper`: all six experiments and the report at the tiny budget, and bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ipvae.paper.budget import TINY
from ipvae.paper.experiments import EXPERIMENTS
from ipvae.paper.zoo import MODELS, run_config

SMOKE_MODELS = ("ipvae", "lca")  # the exported model and a baseline (every entry's config: test below)
from ipvae.cli import main


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    images = np.random.default_rng(0).integers(0, 256, size=(12, 28, 28)).astype(np.uint8)
    np.save(root / "mine.npy", images)
    results = root / "results"
    assert main(["paper", "all", "--budget", "tiny", "--out", str(results), "--threads", "1", "--models", *SMOKE_MODELS,
                 "--dataset", f"mine={root / 'mine.npy'}"]) == 0
    report = root / "report" / "results.md"
    assert main(["bench", "report", "--budget", "tiny", "--out", str(results), "--report", str(report)]) == 0  # the alias
    assert "Wall clock from the first experiment" in report.read_text()
    loaded = {name: json.loads((results / name / f"{name}.json").read_text()) for name in EXPERIMENTS}
    return results, report, loaded


@pytest.mark.parametrize("entry", MODELS, ids=lambda entry: entry.name)
def test_every_model_entry_has_a_valid_configuration(entry):
    for data in ("mnist", "natural_patches"):
        config = run_config(entry, TINY, 0, data, beta=1.0)
        assert config.model.n_latents == TINY.n_latents and config.train.seed == 0


def test_every_experiment_writes_json_figures_and_markdown(bench):
    results, report, loaded = bench
    for name, result in loaded.items():
        assert result["budget"]["name"] == "tiny" and result["device"]
        assert (results / name / f"{name}.md").read_text().startswith("# ")
        for figure in result["figures"]:
            assert (results / name / figure).stat().st_size > 0
            assert (report.parent / "results" / name / figure).is_file()  # copied beside the report
    text = report.read_text()
    assert "tiny (smoke) budget" in text and "## Which of the paper's claims" in text
    assert all(module.TITLE in text for module in EXPERIMENTS.values())


def test_mnist_rows_match_closed_forms_and_the_lava_sample_matches_the_reference(bench):
    _, _, loaded = bench
    rows = loaded["mnist"]["rows"]
    m, k, t = 784, TINY.n_latents, TINY.t_test
    ipvae = rows["ipvae"]["runs"][0]
    assert ipvae["params"] == m * k + m + 1 + 2 * k  # Phi, log sigma, log lr, u_prior, log b
    assert ipvae["macs_per_inference"] == 2 * t * m * k  # one drive and one decode of M x K per step
    assert 0.0 <= ipvae["zeros"] <= 1.0 and 0.0 <= ipvae["probe_mean_counts"] <= 1.0
    assert rows["ipvae_int8"]["runs"][0]["weight_bits"] == 8
    assert rows["ipvae_lava"]["sample"]["identical_to_reference"]
    assert set(rows) == {*SMOKE_MODELS, "ipvae_int8", "ipvae_lava"}


def test_mnist_bits_per_image_are_within_the_plug_in_ceilings_and_come_from_the_decoded_codes(bench):
    import torch

    from ipvae.paper.experiments.mnist import load
    from ipvae.paper.measure import final_codes
    from ipvae.paper.rate import QUANTIZATION_BITS, bits_per_image
    from ipvae.train.checkpoint import load_run

    results, _, loaded = bench
    mnist = loaded["mnist"]
    n, k = mnist["test_images"], TINY.n_latents
    for name, row in mnist["rows"].items():
        if "runs" in row:  # N images show at most log2 N bits per unit; a real-valued unit at most 8
            ceiling = k * (math.log2(n) if name in ("ipvae", "ipvae_int8") else min(QUANTIZATION_BITS, math.log2(n)))
            assert 0.0 <= row["runs"][0]["bits_per_image"] <= ceiling + 1e-9, name
    pca = mnist["pca"]
    assert len(pca["bits_per_image"]) == len(pca["r2_quantized"]) == len(pca["k"])
    for components, bits, exact, rounded in zip(pca["k"], pca["bits_per_image"], pca["r2"], pca["r2_quantized"]):
        assert 0.0 < bits <= components * min(QUANTIZATION_BITS, math.log2(n)) + 1e-9
        assert rounded <= exact + 1e-12  # the exact projection is the nearest point of the subspace
    # The codes the rate counts are the ones the R^2 decodes: a second pass reproduces the stored zeros exactly.
    model = load_run(results / "models" / "mnist" / "ipvae" / "seed0").model
    x_test, _ = load("test", TINY.test_images)
    codes = final_codes(model, x_test, TINY.t_test, seed=0)  # [N, K]
    run = mnist["rows"]["ipvae"]["runs"][0]
    assert float((codes == 0).double().mean()) == pytest.approx(run["zeros"], abs=1e-9)
    assert bits_per_image(codes.double().numpy()) == pytest.approx(run["bits_per_image"], abs=1e-9)
    assert torch.equal(codes, codes.round())  # spike counts
    text = (results / "mnist" / "mnist.md").read_text()
    assert "bits / image" in text and "rate_distortion.png" in mnist["figures"]


def test_mnist_markdown_and_figure_accept_results_written_before_the_rate(bench, tmp_path):
    import copy

    from ipvae.paper.context import Context
    from ipvae.paper.experiments import mnist as experiment

    _, _, loaded = bench
    old = copy.deepcopy(loaded["mnist"])
    for row in old["rows"].values():
        for run in row.get("runs", []):
            run.pop("bits_per_image", None)
        row.get("summary", {}).pop("bits_per_image", None)
    for key in ("bits_per_image", "r2_quantized"):
        old["pca"].pop(key)
    assert "bits / image" in experiment.markdown(old, "")  # the column stays, with "-"
    ctx = Context(tmp_path, TINY, (), "test device")
    assert (tmp_path / "mnist" / experiment._plot_rate_distortion(ctx, old)).stat().st_size > 0


def test_derived_numbers_follow_from_the_stored_ones(bench):
    _, _, loaded = bench
    for model in loaded["natural"]["models"].values():
        for point in model["points"]:
            assert point["d_t_end"] == pytest.approx(math.hypot(1 - point["r2_t_end"], 1 - point["zeros_t_end"]))
    for model in loaded["rotation"]["models"].values():
        run = model["runs"][0]
        assert len(run["mse_ratio"]) == len(TINY.rotation_angles) and run["mse_ratio"][0] == 1.0
    for model in loaded["convergence"]["models"].values():
        assert model["runs"][0]["step"][-1] == TINY.curve_steps
    datasets = loaded["novel"]["datasets"]
    assert "mine" in datasets and "hershey" in datasets
    assert "probe_rates" not in datasets["mine"]["models"]["ipvae"]["runs"][0]  # no labels: reconstruction only


def test_a_rerun_reuses_the_stored_parts(bench):
    results, _, loaded = bench
    assert main(["bench", "mnist", "--budget", "tiny", "--out", str(results), "--models", *SMOKE_MODELS]) == 0
    again = json.loads((results / "mnist" / "mnist.json").read_text())
    assert again["rows"]["ipvae"]["runs"] == loaded["mnist"]["rows"]["ipvae"]["runs"]


def test_the_experiment_names_are_their_modules_and_list_without_torch():
    import subprocess
    import sys

    assert all(module.NAME == name for name, module in EXPERIMENTS.items())
    probe = "import sys, ipvae.paper.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_an_unknown_experiment_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["bench", "nope", "--budget", "tiny", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--models", "nope"], "unknown model"),
    (["--dataset", "broken"], "NAME=PATH"),
    (["--dataset", "x=/nonexistent.npy"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main(["bench", "mnist", "--budget", "tiny", "--out", str(tmp_path), *argv]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_report_without_results_and_mixed_budgets_are_refused(tmp_path, capsys, bench):
    results, _, _ = bench
    assert main(["bench", "report", "--out", str(tmp_path), "--report", str(tmp_path / "r.md")]) == 2
    assert main(["bench", "mnist", "--quick", "--out", str(results)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert "no experiment results" in errors[0] and "'tiny' budget" in errors[1]


def test_the_readme_headline_block_is_rewritten_from_the_json(tmp_path, bench):
    from ipvae.paper.report import README_END, README_START, load_results, update_readme

    results_dir, _, loaded = bench
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\noutro\n")
    assert update_readme(readme, load_results(results_dir), tmp_path / "r.md")
    text = readme.read_text()
    r2 = loaded["mnist"]["rows"]["ipvae"]["summary"]["r2"]["mean"]
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text and f"{r2:.3f}" in text


def test_the_report_rewrites_a_headline_block_only_where_asked(tmp_path, bench, monkeypatch):
    from ipvae.paper import report as report_module

    results_dir, _, _ = bench
    monkeypatch.setattr(report_module, "is_smoke", lambda budget: False)  # as the full budget would
    monkeypatch.chdir(tmp_path)
    original = f"intro\n{report_module.README_START}\nold\n{report_module.README_END}\n"
    Path("README.md").write_text(original)
    assert main(["paper", "report", "--budget", "tiny", "--out", str(results_dir), "--report", "r.md"]) == 0
    assert Path("README.md").read_text() == original  # the README in the working folder is left alone
    assert main(["paper", "report", "--budget", "tiny", "--out", str(results_dir), "--report", "r.md",
                 "--headline", "README.md"]) == 0
    assert "old" not in Path("README.md").read_text()


def test_smoke_budgets_are_told_apart_by_their_own_field():
    from ipvae.paper.budget import BUDGETS
    from ipvae.paper.report import is_smoke

    assert {name for name, budget in BUDGETS.items() if is_smoke(budget.describe())} == {"quick", "tiny"}
    long = BUDGETS["long"]
    assert long.epochs >= 10 and long.seeds == (0,) and not long.smoke  # the longer CPU budget
    assert is_smoke({"name": "quick"}) and not is_smoke({"name": "full"})  # JSON written before the field existed
