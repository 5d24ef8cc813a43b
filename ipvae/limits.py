"""Size limits: what a request needs in memory, checked against the machine before anything is allocated.

Every command that sizes arrays from flags or files (``--steps``, ``--t-test``, ``--limit``, ``-n``,
``--n-latents``, ``--t-train``, ``--batch-size``, a config.json, an export's shapes) estimates the bytes
its largest buffers take and calls :func:`check_memory` first, so that a request the machine cannot hold
is refused in one line that says how much it would need, instead of a traceback from the allocator, a
machine swapping to a halt or a run that never ends. The estimates count only the buffers the code
certainly allocates (a lower bound): a request refused here could not have run.

Also here: JSON read with a bounded size and nesting depth (``loads_bounded``), because Python's json
module recurses once per nesting level and a hostile file of 100,000 brackets ends in RecursionError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ipvae.errors import IpvaeError

BYTES_PER_KIB = 1024
MEMINFO = Path("/proc/meminfo")
# cgroup v2 and v1 limits of this process's container (absent outside one)
CGROUP_LIMIT_FILES = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
CGROUP_USAGE_FILES = (Path("/sys/fs/cgroup/memory.current"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"))
USABLE_FRACTION = 0.9  # of the available memory: the rest stays for the interpreter, libraries and the OS
MAX_JSON_DEPTH = 64  # the deepest JSON the toolkit writes is 5 levels (a train state's optimizer values)
MAX_JSON_BYTES = 4 * 2**20  # a train state's header is a few kB (plus ~200 bytes per finished epoch)
QUOTE, BACKSLASH = ord('"'), ord("\\")
OPENERS, CLOSERS = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)
# Bytes per element of the buffers the estimates count.
FLOAT32_BYTES, FLOAT64_BYTES, INT16_BYTES, INT32_BYTES = 4, 8, 2, 4
# Tensors autograd keeps per neuron (or pixel) and inference step while training an iterative model
# (u, z, the relaxed sampler's soft count, rates, the reconstruction's terms): measured, rounded down.
TRAIN_TENSORS_PER_STEP = 4
PARAMETER_COPIES = 4  # weights, gradients and two optimizer moments
REFERENCE_CHUNK_IMAGES = 256  # ipvae.lava.pipeline: the integer reference runs this many images per call
LAVA_BATCH_IMAGES = 32  # ipvae.lava.runner: the default images side by side in one Lava population


class ResourceLimitError(IpvaeError):
    """A request that needs more memory than the machine has (the message says how much)."""


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < BYTES_PER_KIB or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= BYTES_PER_KIB
    raise AssertionError("unreachable")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int:
    """Bytes this process can still allocate: MemAvailable, or less where a container limit is lower."""
    available = None
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * BYTES_PER_KIB
                break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file, usage_file in zip(CGROUP_LIMIT_FILES, CGROUP_USAGE_FILES):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None:
            available = min(available, max(0, limit - usage))
    return available


def check_memory(needed: int, what: str, available: int | None = None) -> None:
    """Refuse (ResourceLimitError, one line) when ``needed`` bytes exceed what this machine can hold.

    ``what`` names the request, e.g. "--steps 1000000000 for 1 image of 512 neurons".
    """
    available = available_memory() if available is None else available
    if needed > USABLE_FRACTION * available:
        raise ResourceLimitError(
            f"{what} needs at least {format_bytes(needed)} of memory, more than the "
            f"{format_bytes(available)} available on this machine; ask for less"
        )


def product(*factors: int) -> int:
    """Exact integer product (no overflow, unlike numpy's int64 arithmetic on huge flags)."""
    result = 1
    for factor in factors:
        result *= int(factor)
    return result


def inference_record_bytes(n_images: int, n_steps: int, n_latents: int, n_inputs: int, *,
                           record_u: bool = False, backends: int = 1, frames: int = 1, lava: bool = False) -> int:
    """``ipvae run`` / ``parity``: the spike counts [T+1, N, K] int16 every backend keeps (and the potentials,
    int32, when recorded), the integer reference's potentials of one chunk of images [T+1, B, K] int32, the
    inputs [N, F, M] float64, and on Lava the input frames of one batch [T, B, M] int32."""
    record = product(n_steps + 1, n_images, n_latents, INT16_BYTES + (INT32_BYTES if record_u else 0), backends)
    chunk = product(n_steps + 1, min(n_images, REFERENCE_CHUNK_IMAGES), n_latents, INT32_BYTES)
    inputs = product(n_images, frames, n_inputs, FLOAT64_BYTES)
    held_frames = product(n_steps, min(n_images, LAVA_BATCH_IMAGES), n_inputs, INT32_BYTES) if lava else 0
    return record + chunk + inputs + held_frames


def evaluation_bytes(n_images: int, n_steps: int, n_latents: int, n_inputs: int, batch_size: int,
                     n_curves: int = 8) -> int:
    """``ipvae eval``: the test images [N, M] float32, one batch's state [B, K], the codes at T [N, K] and
    the per-step sums (n_curves float64 values per step)."""
    return (product(n_images, n_inputs, FLOAT32_BYTES) + product(min(n_images, batch_size), n_latents + n_inputs, FLOAT32_BYTES)
            + product(n_images, n_latents, 2 * FLOAT32_BYTES) + product(n_steps, n_curves, FLOAT64_BYTES))


def training_bytes(n_images: int, n_inputs: int, n_latents: int, batch_size: int, t_train: int) -> int:
    """``ipvae train`` (iterative models): the training images [N, M] float32, the weights Phi [M, K] with
    their gradients and optimizer moments, and the graph autograd keeps over the t_train unrolled steps."""
    images = product(n_images, n_inputs, FLOAT32_BYTES)
    weights = product(n_inputs, n_latents, FLOAT32_BYTES, PARAMETER_COPIES)
    graph = product(t_train, batch_size, n_latents + n_inputs, FLOAT32_BYTES, TRAIN_TENSORS_PER_STEP)
    return images + weights + graph


def images_bytes(n_images: int, n_inputs: int) -> int:
    """A data set of n_images images [N, M] as float32 (what the loaders return)."""
    return product(n_images, n_inputs, FLOAT32_BYTES)


# --------------------------------------------------------------------------------------------- JSON


class JsonLimitError(ValueError):
    """JSON text too large or nested too deep (raised before json parses it)."""


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, brackets inside strings skipped; vectorised
    (no recursion, no per-character Python loop). A quote is escaped when an odd run of backslashes precedes it."""
    codes = np.frombuffer(raw, dtype=np.uint8)  # [n]
    if codes.size == 0:
        return 0
    index = np.arange(codes.size, dtype=np.int64)
    last_plain = np.maximum.accumulate(np.where(codes != BACKSLASH, index, -1))  # last non-backslash at or before i
    backslashes_before = index - 1 - np.concatenate(([-1], last_plain[:-1]))  # the run just before i
    quotes = (codes == QUOTE) & (backslashes_before % 2 == 0)
    outside = np.cumsum(quotes) % 2 == 0  # brackets are never quotes, so the toggle at a quote does not matter
    steps = (np.isin(codes, OPENERS) & outside).astype(np.int64) - (np.isin(codes, CLOSERS) & outside)
    return int(np.cumsum(steps).max(initial=0))


def loads_bounded(text: str | bytes, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads after checking size and nesting depth; JsonLimitError or json.JSONDecodeError (ValueErrors).

    Integers longer than Python's digit limit and other decoder failures also come out as ValueError.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > max_bytes:
        raise JsonLimitError(f"{len(raw)} bytes of JSON, more than the {max_bytes} allowed")
    depth = json_depth(raw)
    if depth > max_depth:
        raise JsonLimitError(f"JSON nested {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(raw)
    except RecursionError:  # defensive: the depth check above already bounds the recursion
        raise JsonLimitError("JSON nested too deep") from None
    except UnicodeDecodeError:
        raise JsonLimitError("JSON that is not UTF-8 text") from None


def read_json_file(path: str | Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON file read with the size checked before reading it whole (OSError, ValueError on failure)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise JsonLimitError(f"{size} bytes of JSON, more than the {max_bytes} allowed")
    return loads_bounded(path.read_bytes(), max_bytes, max_depth)


# ---------------------------------------------------------------------------------------- flag types

MAX_FLAG_DIGITS = 30  # an integer flag longer than this is refused before int() parses it


def integer_flag(low: int, high: int | None = None):
    """An argparse type: an integer in low..high (high None: no upper bound; memory checks come later)."""
    import argparse

    def parse(text: str) -> int:
        stripped = text.strip()
        if len(stripped) > MAX_FLAG_DIGITS or not stripped.lstrip("+-").isdigit():
            raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high if high is not None else 'any'}, "
                                             f"got {text[:40]!r}")
        value = int(stripped)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer in {low}..{high if high is not None else 'any'}, got {value}")
        return value

    return parse
