"""Atomic file writes: write beside the target, flush to disk, then rename over it.

An interrupted write (Ctrl-C, a full disk, a crash) therefore never leaves a half-written file in
place of a good one; the previous version survives until the new one is complete. A write that fails
(a full disk, a read-only folder) is one ``OutputPathError`` line, its temporary file removed.

Also here: the output-path checks every command makes before its work (an existing file is not replaced
without ``--force``), the one-writer lock of a run directory (``run_dir_lock``: an flock the kernel
releases when its process dies, so a crashed run never leaves it stuck) and the removal of the temporary
files a killed writer left (``remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ipvae.errors import OutputPathError, shown


_DEFAULT_FILE_MODE = 0o666
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = ".", ".tmp"  # atomic_path's temporaries: .<target name>.<random>.tmp
LOCK_FILE = ".ipvae.lock"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(target: Path, error: OSError) -> OutputPathError:
    """One line for a failed write; a full disk says so, and that nothing was replaced."""
    reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or type(error).__name__)
    return OutputPathError(f"cannot write {shown(target)}: {reason}; nothing was written in its place")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success it replaces ``target``.

    An OSError while writing (a full disk) becomes one OutputPathError; the temporary file is removed and
    ``target`` keeps its previous content.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f"{TEMPORARY_PREFIX}{target.name}.", suffix=TEMPORARY_SUFFIX,
                                             dir=target.parent)
        os.close(handle)
    except OSError as error:
        raise write_failure(target, error) from None
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.chmod(temporary_path, _DEFAULT_FILE_MODE & ~_current_umask())  # mkstemp creates 0600
        with open(temporary_path, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary_path, target)
    except OSError as error:
        raise write_failure(target, error) from None
    finally:
        temporary_path.unlink(missing_ok=True)


def write_json(target: str | Path, data: Any) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def prepare_output_dir(path: str | Path) -> Path:
    """Create the output folder ``path`` now, before any work, or raise OutputPathError saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{shown(path)} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"cannot create the folder {shown(path)} ({error.strerror or type(error).__name__})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"the folder {shown(path)} is not writable")
    return path


def check_output_file(path: str | Path, force: bool = False) -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder is created if needed).

    An existing file is refused unless ``force``: a mistyped ``-o`` must not replace someone's file.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{shown(path)} is a folder; give a file name")
    if path.exists() and not force:
        raise OutputPathError(f"{shown(path)} already exists; give another name, or --force to replace it")
    prepare_output_dir(path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{shown(path)} is not writable")
    return path


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the one-writer lock of ``run_dir`` (created if needed); OutputPathError if another process holds it.

    An flock on ``run_dir/.ipvae.lock``: the kernel drops it when the holder exits or is killed, so a crashed
    run never leaves the directory locked (the lock file itself may stay; it holds nothing).
    """
    run_dir = prepare_output_dir(run_dir)
    try:
        handle = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, _DEFAULT_FILE_MODE & ~_current_umask())
    except OSError as error:
        raise write_failure(run_dir / LOCK_FILE, error) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputPathError(
                f"another ipvae process is writing to {shown(run_dir)}; wait for it to end, or use another folder"
            ) from None
        yield run_dir
    finally:
        os.close(handle)  # closing the descriptor releases the lock


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Remove the temporary files of atomic writes that a killed process left in ``directory``.

    Call it only while holding ``run_dir_lock``: then no live writer owns any of them.
    """
    removed = []
    for path in Path(directory).glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"):
        if path.is_file() and not path.is_symlink() and path.name.count(".") >= 3:  # .<name>.<random>.tmp
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save_figure(figure, target: str | Path, dpi: int, tight: bool = False) -> Path:
    """Write a matplotlib figure as PNG atomically (a full disk leaves no half-written file), then close it."""
    import matplotlib.pyplot as plt  # only the callers that draw pay for matplotlib

    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(figure)
    return Path(target)
