"""Adding a baseline is one module plus one line in ipvae.train.registry.MODEL_MODULES: a toy baseline written
here, registered by that one line, trains, evaluates, saves and reloads through the unchanged commands."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from ipvae.cli import main
from ipvae.train import registry
from ipvae.train.checkpoint import load_run

# A one-step "matched filter" coder: z = max(Phi^T x - threshold, 0) with unit-norm atoms, trained on the
# reconstruction error. Its own setting (the threshold) lives in its OPTIONS dataclass.
TOY_MODULE = '''
from dataclasses import dataclass

import torch

from ipvae.train.baselines.common import UnitNormDictionaryCoder, dictionary_macs, normalize_columns_, zero_fraction
from ipvae.train.config import NON_NEGATIVE, check_options
from ipvae.train.model import LossTerms, StepOutput


@dataclass(frozen=True)
class MatchedFilterOptions:
    threshold: float = 0.1

    def __post_init__(self):
        check_options(self, {"threshold": NON_NEGATIVE})


class MatchedFilter(UnitNormDictionaryCoder):
    def iterate(self, x, n_steps, *, temperature=0.0, generator=None):
        code = torch.relu(x @ self.phi - self.config.options.threshold)  # [B, K]
        for _ in range(n_steps):
            yield StepOutput(code, code, code @ self.phi.T, x.new_zeros(x.shape[0]), ())

    def loss(self, x, n_steps, *, beta=0.0, temperature=0.0, generator=None):
        step = next(self.iterate(x, 1))
        error = (x - step.recon).square()  # [B, M]
        total = 0.5 * error.sum(-1).mean()
        return LossTerms(total=total, nll=total, kl=total.new_zeros(()), mse_per_pixel=error.mean().detach(),
                         zeros=zero_fraction(step.z, relaxed_counts=False))

    def macs_per_inference(self, n_steps):
        return 2 * dictionary_macs(self.config.n_inputs, self.config.n_latents)

    def project_parameters(self):
        normalize_columns_(self.phi)

    def pixel_precision(self):
        return self.phi.new_ones(self.config.n_inputs)


MODEL, OPTIONS = MatchedFilter, MatchedFilterOptions
PRESETS = {"matched_filter": {}}
'''


@pytest.fixture
def toy_kind(tmp_path, monkeypatch):
    (tmp_path / "toy_matched_filter.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.MODEL_MODULES, "matched_filter", "toy_matched_filter")  # the one registry line
    yield "matched_filter"
    sys.modules.pop("toy_matched_filter", None)


def test_a_new_baseline_is_one_module_and_one_registry_line(toy_kind, tmp_path, capsys):
    config = tmp_path / "toy.json"
    config.write_text(json.dumps({"model": {"kind": toy_kind, "options": {"threshold": 0.05}}}))
    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(config), "--data", "mnist", "--train-limit", "100", "--epochs", "1",
                 "--batch-size", "50", "--t-train", "1", "--n-latents", "8", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    run = load_run(run_dir)
    assert run.config.model.options.threshold == 0.05 and type(run.model).__name__ == "MatchedFilter"
    torch.testing.assert_close(run.model.phi.norm(dim=0), torch.ones(8))  # its projection ran after each step
    assert main(["eval", str(run_dir), "--t-test", "2", "--limit", "20", "--probe-train", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["macs_per_inference"] == 2 * 784 * 8 and report["params"] == 784 * 8


def test_its_options_are_validated_by_its_own_dataclass(toy_kind, tmp_path, capsys):
    config = tmp_path / "toy.json"
    config.write_text(json.dumps({"model": {"kind": toy_kind, "options": {"threshold": -1.0}}}))
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) != 0
    error = capsys.readouterr().err.strip()
    assert "MatchedFilterOptions.threshold must be non-negative" in error and "\n" not in error
