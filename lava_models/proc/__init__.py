"""Lava Processes and ProcessModels of the iP-VAE (one folder per Process)."""

from ipvae.lava.lava_import import prepare_lava_import

prepare_lava_import()
