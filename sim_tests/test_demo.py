"""`ipvae demo` end to end on a small untrained run directory: float evaluation, export, Lava, parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ipvae.cli import main

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from ipvae.train.checkpoint import save_run
    from ipvae.train.config import ModelConfig, RunConfig
    from ipvae.train.model import IterativeVAE

    config = RunConfig(model=ModelConfig(n_latents=24))
    model = IterativeVAE(config.model, generator=torch.Generator().manual_seed(0))
    run_dir = tmp_path_factory.mktemp("run")
    save_run(run_dir, config, model)
    return run_dir


def test_demo_prints_the_table_and_a_passing_parity_verdict(capsys, small_run, tmp_path):
    out = tmp_path / "demo"
    code = main(["demo", str(small_run), "--out", str(out), "--eval-images", "20", "--lava-images", "3", "--lava-steps", "6"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "== Lava simulation (Loihi2SimCfg, fixed_pt): 3 MNIST test images, T = 6" in stdout
    for key in ("spikes_per_inference", "synops_per_inference", "energy_estimate_nj"):
        assert key in stdout
    assert "PARITY OK" in stdout
    assert "== operation counts: re-send every step vs event-driven" in stdout
    feedforward = next(line for line in stdout.splitlines() if line.startswith("synaptic ops, feed-forward"))
    resend, event = (float(cell.replace(",", "")) for cell in feedforward.split()[3:5])
    assert event < resend  # the image is sent once instead of every step
    figures = json.loads(stdout.strip().splitlines()[-1])["figures"]
    assert all((out / name).is_file() for name in ("model.h5", "eval.json", "lava/run.json"))
    assert len(figures) == 5 and all(Path(figure).stat().st_size > 0 for figure in figures)


README = Path(__file__).resolve().parent.parent / "README.md"
PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained" / "mnist_k512"
# the README's demo paragraph: "<event> M vs <re-send> M synaptic ops, <event> vs <re-send> uJ estimated, Lava R^2 <r2>"
README_DEMO_FIGURES = (r"(\d+\.\d\d) M vs (\d+\.\d\d) M synaptic ops,\s+(\d+\.\d) vs (\d+\.\d) uJ estimated,\s+"
                       r"Lava R\^2 (\d\.\d\d\d)")
README_PARITY = r"PARITY OK: \.\.\. (\d+) values"
MILLION = 1e6
NJ_PER_UJ = 1e3


@pytest.mark.slow
def test_the_readme_quotes_what_make_demo_prints(tmp_path, capsys):
    """`make demo` on the shipped model (the same command and defaults); the README's demo figures are its own
    numbers at the README's rounding, so a change of the model, the export or the accounting fails here until
    the paragraph is updated."""
    import re

    if not (PRETRAINED / "config.json").is_file():
        pytest.skip("pretrained/mnist_k512 is not in this checkout")
    out = tmp_path / "demo"
    assert main(["demo", str(PRETRAINED), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    table = json.loads((out / "lava" / "run.json").read_text())
    text = " ".join(README.read_text().split())
    quoted = re.search(README_DEMO_FIGURES, text)
    assert quoted, "the README's demo paragraph no longer quotes the demo's figures in the expected form"
    printed = (f"{table['synops_per_inference'] / MILLION:.2f}", f"{table['resend_synops_per_inference'] / MILLION:.2f}",
               f"{table['energy_estimate_nj'] / NJ_PER_UJ:.1f}", f"{table['resend_energy_estimate_nj'] / NJ_PER_UJ:.1f}",
               f"{table['r2']:.3f}")
    assert quoted.groups() == printed, f"README quotes {quoted.groups()}, make demo prints {printed}"
    parity = re.search(README_PARITY, text)
    assert parity and f"({parity.group(1)} values)" in stdout
