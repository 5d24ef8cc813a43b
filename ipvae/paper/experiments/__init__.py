"""The six experiments of the comparison; each module has NAME (its module name), TITLE, run(ctx) -> dict and
markdown(result, figure_prefix) -> str.

NAMES is the one list (the order of ``all`` and of the report); adding an experiment is its module plus its
name here. EXPERIMENTS (name -> module) imports the modules when first asked for, so the command line can
list the names without loading torch.
"""

from __future__ import annotations

import importlib

NAMES = ("mnist", "natural", "convergence", "rotation", "novel", "features")


def __getattr__(name: str):
    if name == "EXPERIMENTS":
        return {experiment: importlib.import_module(f"{__name__}.{experiment}") for experiment in NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
