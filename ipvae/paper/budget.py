"""The one training and evaluation budget every experiment shares, in several sizes.

LONG (``make results``: every MNIST model 10 epochs, one seed) is the headline, docs/results.md. FULL
(``make results-spread``: 1 epoch, 3 seeds) gives the seed-to-seed spread beside it and is sized for about two
hours on a 2-core CPU. Measured: 107 minutes of wall clock from the first experiment's start to the last
result (the two halves side by side, one thread each, on the project's 2-core AMD EPYC while other jobs shared
it; docs/results-spread.md). Training took 2-10 minutes per MNIST model and seed at one epoch (iP-VAE 5.4,
iterative amortized 9.6), the natural-patch sweep 19-24 minutes per half, convergence 6, rotation 10, novel
data 7. The report prints the minutes each model actually took. QUICK is a smoke budget (all six experiments
in minutes on an idle machine, one seed; the report states the wall clock against its 10-minute target)
whose numbers only show that the commands work. PAPER is the paper's budget (400 epochs, 5 seeds) for a
machine that can afford it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ipvae.errors import IpvaeError


@dataclass(frozen=True)
class Budget:
    """Sizes of every run.  train_limit None: the whole training split.

    n_latents: K of every model (512, as in the paper).

    epochs / batch_size / t_train / train_limit: MNIST training of every model.
    natural_*: the natural-patch training of the rate-distortion sweep (natural_betas per family).
    seeds: training seeds per model (the tables show mean +- std over them).
    t_test: inference steps at evaluation; curve_steps: the convergence experiment's last step.
    test_images / probe_train_images: evaluation sizes (first N of each split).
    rotation_angles: degrees; lava_images / lava_steps: the sample run through the Lava simulator.
    smoke: a budget that only shows the commands run (its numbers are not results: no verdicts, no headline).
    """

    name: str
    n_latents: int
    epochs: int
    batch_size: int
    t_train: int
    train_limit: int | None
    seeds: tuple[int, ...]
    natural_epochs: int
    natural_train_limit: int | None
    natural_betas: tuple[float, ...]
    t_test: int
    curve_steps: int
    curve_images: int
    test_images: int
    probe_train_images: int
    rotation_angles: tuple[float, ...]
    rotation_images: int
    novel_images: int
    lava_images: int
    lava_steps: int
    smoke: bool = False

    def describe(self) -> dict:
        return dataclasses.asdict(self)


ROTATION_ANGLES = tuple(float(angle) for angle in range(0, 181, 15))

FULL = Budget(
    name="full",
    n_latents=512,
    epochs=1,
    batch_size=100,
    t_train=16,
    train_limit=None,
    seeds=(0, 1, 2),
    natural_epochs=2,
    natural_train_limit=None,
    natural_betas=(0.25, 1.0, 4.0),
    t_test=16,
    curve_steps=1000,
    curve_images=500,
    test_images=2000,
    probe_train_images=5000,
    rotation_angles=ROTATION_ANGLES,
    rotation_images=1000,
    novel_images=2000,
    lava_images=20,
    lava_steps=16,
)

QUICK = Budget(
    name="quick",
    n_latents=512,
    epochs=1,
    batch_size=100,
    t_train=16,
    train_limit=2000,
    seeds=(0,),
    natural_epochs=1,
    natural_train_limit=2000,
    natural_betas=(0.25, 4.0),
    t_test=16,
    curve_steps=100,
    curve_images=100,
    test_images=300,
    probe_train_images=600,
    rotation_angles=ROTATION_ANGLES,
    rotation_images=200,
    novel_images=300,
    lava_images=4,
    lava_steps=8,
    smoke=True,
)

# The longer CPU budget: every MNIST model trained 10 epochs (FULL: 1), one seed; the 3-seed FULL budget gives
# the spread. About 10x FULL's training minutes; resumable like every budget (ipvae.paper.zoo).
LONG = dataclasses.replace(FULL, name="long", epochs=10, seeds=(0,))

PAPER = dataclasses.replace(FULL, name="paper", epochs=400, natural_epochs=300, seeds=(0, 1, 2, 3, 4),
                            test_images=10_000, probe_train_images=60_000, rotation_images=10_000,
                            novel_images=10_000, curve_images=1000)



def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise IpvaeError(f"unknown budget {name!r}; expected one of {', '.join(BUDGETS)}")
    return BUDGETS[name]


# seconds, for the smoke tests: not a result of any kind
TINY = dataclasses.replace(
    QUICK, name="tiny", n_latents=32, train_limit=200, natural_train_limit=200, natural_betas=(1.0,), curve_steps=20,
    curve_images=20, test_images=40, probe_train_images=60, rotation_angles=(0.0, 90.0, 180.0),
    rotation_images=30, novel_images=40, lava_images=1, lava_steps=2, t_test=4, t_train=4,
)

BUDGETS = {budget.name: budget for budget in (FULL, LONG, QUICK, PAPER, TINY)}
