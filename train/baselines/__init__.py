"""Baseline models behind the same interface as the iterative VAE (``ipvae.train.registry.Model``).

One module per algorithm: ``amortized`` (P-VAE / G-VAE with linear, MLP or conv encoders),
``sparse_coding`` (LCA, ISTA, FISTA), ``predictive_coding`` (Rao & Ballard; incremental PC) and
``iterative_amortized`` (Marino et al. 2018). ``ipvae.train.registry.MODEL_MODULES`` maps a config's
``kind`` to its module (``MODEL``, ``OPTIONS``, ``PRESETS``).
"""
