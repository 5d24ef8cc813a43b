"""Named model configurations for side-by-side comparisons: name -> ModelConfig field values.

The iterative VAEs are included so a comparison lists every model under one name space; n_inputs
and n_latents come from the caller (K = 512 by default, as in the paper).
"""

from __future__ import annotations

from ipvae.errors import IpvaeError
from ipvae.train.config import ModelConfig

MODEL_PRESETS: dict[str, dict] = {
    "ip_vae": dict(kind="iterative", family="poisson"),
    "ig_vae": dict(kind="iterative", family="gaussian"),
    "ig_relu_vae": dict(kind="iterative", family="gaussian_relu"),
    **{
        f"amortized_{family}_{encoder}": dict(kind="amortized", family=family, encoder=encoder)
        for family in ("poisson", "gaussian", "gaussian_relu")
        for encoder in ("linear", "mlp", "conv")
    },
    "lca": dict(kind="sparse_coding", sparse_algorithm="lca"),
    "ista": dict(kind="sparse_coding", sparse_algorithm="ista"),
    "fista": dict(kind="sparse_coding", sparse_algorithm="fista"),
    "predictive_coding": dict(kind="predictive_coding"),
    "incremental_pc": dict(kind="predictive_coding", incremental=True),
    "iterative_amortized": dict(kind="iterative_amortized"),
}


def preset_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of a preset, with field overrides (e.g. n_inputs, n_latents)."""
    if name not in MODEL_PRESETS:
        raise IpvaeError(f"unknown model preset {name!r}; expected one of {sorted(MODEL_PRESETS)}")
    return ModelConfig(**{**MODEL_PRESETS[name], **overrides})
