"""Lava imports after something (tqdm) has fixed the multiprocessing context: fresh interpreters."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIX_CONTEXT = "import tqdm; tqdm.tqdm(total=1, disable=True).close(); import multiprocessing as mp; mp.RLock()"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_plain_lava_import_fails_once_the_context_is_fixed():
    """The defect this module works around: Lava's import calls set_start_method('fork') unforced."""
    result = _run(f"{FIX_CONTEXT}; import lava.magma.runtime.message_infrastructure.multiprocessing")
    assert result.returncode != 0 and "context has already been set" in result.stderr


def test_our_processes_import_after_the_context_is_fixed():
    result = _run(
        f"{FIX_CONTEXT}; import ipvae.lava.proc.poisson.process; "
        "import multiprocessing as mp; print(mp.get_start_method())"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fork"


def test_another_fixed_start_method_is_refused_in_one_line():
    result = _run(
        "import multiprocessing as mp; mp.set_start_method('spawn'); "
        "from ipvae.lava.lava_import import prepare_lava_import; prepare_lava_import()"
    )
    assert result.returncode != 0 and "needs the 'fork' multiprocessing start method" in result.stderr
