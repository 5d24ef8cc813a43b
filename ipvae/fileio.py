"""Atomic file writes: write beside the target, flush to disk, then rename over it.

An interrupted write (Ctrl-C, a full disk, a crash) therefore never leaves a half-written file in
place of a good one; the previous version survives until the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ipvae.errors import OutputPathError


_DEFAULT_FILE_MODE = 0o666


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, _DEFAULT_FILE_MODE & ~_current_umask())  # mkstemp creates 0600
        with open(temporary_path, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary_path, target)
    finally:
        temporary_path.unlink(missing_ok=True)


def write_json(target: str | Path, data: Any) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def prepare_output_dir(path: str | Path) -> Path:
    """Create the output folder ``path`` now, before any work, or raise OutputPathError saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create the folder {path} ({error.strerror or type(error).__name__})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"the folder {path} is not writable")
    return path


def check_output_file(path: str | Path) -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder is created if needed)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; give a file name")
    prepare_output_dir(path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{path} is not writable")
    return path
