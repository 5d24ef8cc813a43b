"""config.json written before the per-kind options (every kind's settings as flat ModelConfig fields) still
loads: the shipped models, their stage configs and the older run directories describe the same model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ipvae.cli import build_parser
from ipvae.train.checkpoint import load_run
from ipvae.train.cli import build_config
from ipvae.train.config import LEGACY_OPTION_FIELDS, ModelConfig, RunConfig
from ipvae.train.registry import build_model, kinds, options_type

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_CONFIGS = sorted(REPO_ROOT.glob("pretrained/**/config.json"))
STAGE_CONFIGS = sorted(path for path in REPO_ROOT.glob("pretrained/**/*.json")
                       if path.name != "config.json" and "model" in json.loads(path.read_text()))

# A config.json as every run wrote it before the options: all 27 fields, here with values no default has.
FLAT_VALUES = dict(encoder="mlp", hidden_size=7, conv_channels=3, sparse_algorithm="fista", sparsity=0.3,
                   nonnegative=False, inference_rate=0.5, prior_precision=0.2, incremental=True, incremental_rate=0.02)


def assert_describes(config: ModelConfig, written: dict) -> None:
    """Every field written in the old layout is where the new layout keeps it, with the same value."""
    core = {item.name for item in dataclasses.fields(ModelConfig)} - {"options"}
    for name, value in written.items():
        if name == "options":  # a config written in the new layout (its options, or none for the iP-VAE)
            assert (config.options is None) == (value is None), name
        elif name in core:
            assert getattr(config, name) == value, name
        elif config.options is not None and hasattr(config.options, name):
            assert getattr(config.options, name) == value, name
        else:  # a setting of another kind, which this kind never read
            assert name in LEGACY_OPTION_FIELDS, name


def test_the_repository_ships_configs_of_the_old_layout():
    assert len(RUN_CONFIGS) >= 4 and len(STAGE_CONFIGS) >= 5
    layouts = [set(LEGACY_OPTION_FIELDS) <= set(json.loads(path.read_text())["model"]) for path in RUN_CONFIGS]
    assert sum(layouts) >= 3  # the shipped model among them (one older run predates the baselines' fields)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda path: str(path.parent.relative_to(REPO_ROOT)))
def test_every_shipped_run_directory_loads_to_the_model_it_was_trained_as(path):
    written = json.loads(path.read_text())
    run = load_run(path.parent)  # its weights load strictly into the model the migrated config builds
    assert_describes(run.config.model, written["model"])
    assert run.config.train == RunConfig.from_dict(written).train
    assert RunConfig.from_dict(run.config.to_dict()) == run.config  # the new layout round-trips


@pytest.mark.parametrize("path", STAGE_CONFIGS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_stage_config_builds_the_model_it_names(path):
    args = build_parser().parse_args(["train", "--config", str(path), "--out", "unused"])
    written = json.loads(path.read_text())["model"]
    assert_describes(build_config(args).model, written)


@pytest.mark.parametrize("kind", kinds())
def test_a_flat_config_of_every_kind_keeps_its_own_settings(kind):
    written = {**dataclasses.asdict(ModelConfig(n_inputs=16, n_latents=4)), **FLAT_VALUES, "kind": kind}
    del written["options"]
    config = ModelConfig.from_dict(written)
    assert_describes(config, written)
    expected = options_type(kind)
    assert (config.options is None) if expected is None else isinstance(config.options, expected)
    build_model(config)  # and it builds


def test_flat_fields_override_a_partial_options_section():
    config = ModelConfig.from_dict({"kind": "sparse_coding", "options": {"sparsity": 0.4}, "sparse_algorithm": "ista"})
    assert (config.options.sparsity, config.options.sparse_algorithm) == (0.4, "ista")


def test_an_unknown_option_is_refused_by_name():
    with pytest.raises(TypeError, match="SparseCodingOptions has no field"):
        ModelConfig.from_dict({"kind": "sparse_coding", "options": {"encoder": "mlp"}})
    with pytest.raises(ValueError, match="takes no options"):
        ModelConfig(kind="iterative", options={"sparsity": 0.1})
