"""Named model configurations for side-by-side comparisons: name -> ModelConfig field values.

Gathered from the ``PRESETS`` of every model module in ``ipvae.train.registry.MODEL_MODULES`` (the
iterative VAEs included, so a comparison lists every model under one name space); each preset's kind
is the module's. n_inputs and n_latents come from the caller (K = 512 by default, as in the paper).
"""

from __future__ import annotations

from ipvae.errors import IpvaeError
from ipvae.train.config import ModelConfig
from ipvae.train.registry import kinds, model_module

MODEL_PRESETS: dict[str, dict] = {
    name: dict(kind=kind, **values) for kind in kinds() for name, values in model_module(kind).PRESETS.items()
}


def preset_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of a preset, with field overrides (e.g. n_inputs, n_latents)."""
    if name not in MODEL_PRESETS:
        raise IpvaeError(f"unknown model preset {name!r}; expected one of {sorted(MODEL_PRESETS)}")
    return ModelConfig.from_dict({**MODEL_PRESETS[name], **overrides})
