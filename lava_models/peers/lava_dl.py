"""lava-dl's two halves, imported once: ``slayer`` (training, blocks, ``export_hdf5``) and ``netx`` (the HDF5
network loader that builds Lava processes). Importing slayer prints notes about optional packages (the
Prophesee toolbox, CUDA) on stdout and stderr; they are kept off the toolkit's output."""

from __future__ import annotations

import contextlib
import io

from ipvae.lava.lava_import import prepare_lava_import

prepare_lava_import()  # Lava's multiprocessing start method, also after tqdm or training fixed one
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lava.lib.dl import netx, slayer  # noqa: F401

NETX_NETWORK = "lava.lib.dl.netx.hdf5.Network"
