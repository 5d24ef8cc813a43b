"""Inference dynamics of the iterative VAE family, one module per algorithm behind one interface.

Every family module provides pure functions (no state is kept anywhere):

    initial_state(params, batch_size)              -> State        the prior, before any data
    draw(state, params, temperature, generator, shard=None) -> LatentSample z and its noise (recon None)
    sample(state, params, temperature, generator)  -> LatentSample z with its reconstruction Phi z
    update(state, latent, drive, params)           -> State        the update given Phi^T D (x - Phi z)
    step(state, latent, x, params)                 -> State        one natural-gradient update (= update
                                                                   with the drive through pixel space)
    kl(state, prior_state, params)                 -> [B]          KL(q_t || q_{t-1}) summed over K
    features(state)                                -> [B, K]       rates / means (probe features)
    expected_code(state, params)                   -> [B, K]       E[z] (decoding from rates)
    potential(state)                               -> [B, K]       the membrane-potential-like variable

``FAMILY_DYNAMICS`` is the one table that maps a config's ``family`` name to its module;
``VARIANT_DYNAMICS`` maps a config's ``dynamics`` (other than "toolkit") to the module that replaces it
(``authors_poisson``: the authors' public code's update, for imported models); ``dynamics_module`` picks.
"""

from __future__ import annotations

from types import ModuleType

from ipvae.train.inference import authors_poisson, gaussian, poisson
from ipvae.train.inference.common import (
    InferenceParams,
    LatentSample,
    PrecisionWeightedTerms,
    clamp_potential,
    decode,
    precision_weighted_terms,
    reconstruction_drive,
    soft_clamp,
    weighted_gram,
)

FAMILY_DYNAMICS: dict[str, ModuleType] = {
    "poisson": poisson,
    "gaussian": gaussian,
    "gaussian_relu": gaussian,
}
VARIANT_DYNAMICS: dict[str, ModuleType] = {"authors": authors_poisson}  # keys: ipvae.train.config.DYNAMICS


def dynamics_module(family: str, dynamics: str = "toolkit") -> ModuleType:
    """The step functions of a config's ``family`` and ``dynamics`` (ModelConfig validates the pair)."""
    return FAMILY_DYNAMICS[family] if dynamics == "toolkit" else VARIANT_DYNAMICS[dynamics]

__all__ = [
    "FAMILY_DYNAMICS",
    "VARIANT_DYNAMICS",
    "dynamics_module",
    "InferenceParams",
    "LatentSample",
    "PrecisionWeightedTerms",
    "weighted_gram",
    "clamp_potential",
    "decode",
    "precision_weighted_terms",
    "reconstruction_drive",
    "soft_clamp",
]
