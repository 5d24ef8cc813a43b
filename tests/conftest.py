"""Hypothesis profiles: the default suite draws the same examples on every machine (a red CI run is
reproducible by anyone); `HYPOTHESIS_PROFILE=explore` draws fresh random examples, many more of them."""

import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
