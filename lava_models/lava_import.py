"""Import Lava in a process where something has already fixed multiprocessing's start method.

Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')`` (without ``force``)
when it is first imported. That raises "context has already been set" if anything in the process has
already fixed the default context -- tqdm does, by creating its multiprocessing lock the first time a
bar is made -- so training and then running Lava in one Python process failed. ``prepare_lava_import``
imports that module first: normally when no context is fixed yet, and with the call made harmless when
the fixed context is already 'fork' (what Lava asks for). Any other fixed method is refused in one line.
"""

from __future__ import annotations

import importlib
import multiprocessing
import sys

from ipvae.errors import IpvaeError

LAVA_MESSAGING_MODULE = "lava.magma.runtime.message_infrastructure.multiprocessing"
LAVA_START_METHOD = "fork"


def prepare_lava_import() -> None:
    """Import Lava's multiprocessing module so that later Lava imports cannot fail on the start method."""
    if LAVA_MESSAGING_MODULE in sys.modules:
        return
    current = multiprocessing.get_start_method(allow_none=True)
    if current is None:
        importlib.import_module(LAVA_MESSAGING_MODULE)
        return
    if current != LAVA_START_METHOD:
        raise IpvaeError(
            f"Lava needs the {LAVA_START_METHOD!r} multiprocessing start method; this process already uses {current!r}"
        )
    original = multiprocessing.set_start_method

    def keep_fork(method, force=False):
        if method != LAVA_START_METHOD:
            original(method, force=force)

    multiprocessing.set_start_method = keep_fork
    try:
        importlib.import_module(LAVA_MESSAGING_MODULE)
    finally:
        multiprocessing.set_start_method = original
