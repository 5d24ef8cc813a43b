"""Lava Processes and ProcessModels of the iP-VAE (one folder per Process)."""

from lava_models.lava_import import prepare_lava_import

prepare_lava_import()
