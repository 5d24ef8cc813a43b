"""The stable recipe on whitened inputs: `ipvae train` on natural_patches or with --patches gets the weaker lateral L1
(ipvae.train.config.WHITENED_LATERAL_L1), every other field and every other input the stable recipe unchanged."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
from PIL import Image

from ipvae.cli import build_parser
from ipvae.train.cli import build_config
from ipvae.train.config import STABLE_RECIPE, WHITENED_LATERAL_L1, recipe_sections

PATCH = 8
IMAGE_SIDE = 40  # > PATCH + 2 * the whitening's border margin (16)


def _built(*flags: str):
    return build_config(build_parser().parse_args(["train", "--out", "unused", *flags]))


def _phases(config) -> list[dict]:
    return [dataclasses.asdict(phase) for phase in config.train.phases]


def _expected_whitened_phases() -> list[dict]:
    phases = copy.deepcopy(STABLE_RECIPE["train"]["phases"])
    for phase in phases:
        phase["lateral_l1"] = WHITENED_LATERAL_L1 if phase["lateral_l1"] else 0.0
    return phases


def test_natural_patches_get_the_weaker_lateral_penalty_and_nothing_else_changes():
    natural, mnist = _built("--data", "natural_patches"), _built("--data", "mnist")
    assert WHITENED_LATERAL_L1 < max(phase["lateral_l1"] for phase in STABLE_RECIPE["train"]["phases"])
    assert _phases(natural) == _expected_whitened_phases()
    assert _phases(mnist) == STABLE_RECIPE["train"]["phases"]
    assert dataclasses.replace(natural.train, phases=(), data="mnist") == dataclasses.replace(mnist.train, phases=())
    assert dataclasses.replace(natural.model, n_inputs=mnist.model.n_inputs) == mnist.model


def test_a_users_images_are_whitened_only_with_patches(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 256, (IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
    assert _phases(_built("--data", str(tmp_path), "--patches", str(PATCH))) == _expected_whitened_phases()
    assert _phases(_built("--data", str(tmp_path))) == STABLE_RECIPE["train"]["phases"]


def test_the_plain_recipe_is_untouched_and_the_sections_are_copies():
    assert _built("--data", "natural_patches", "--recipe", "plain").train.phases == ()
    assert recipe_sections("plain", "natural_patches", None) == {"model": {}, "train": {}}
    sections = recipe_sections("stable", "natural_patches", None)
    sections["train"]["phases"][1]["lateral_l1"] = -1.0  # a copy: the module's recipe is not changed
    assert STABLE_RECIPE["train"]["phases"][1]["lateral_l1"] > 0
