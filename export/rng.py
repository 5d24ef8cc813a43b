"""Counter-based random generator of the integer iP-VAE (docs/fixed_point.md, section 5).

Every uniform number is a pure function of (seed, image_index, step, neuron), so any
implementation, visiting neurons/images/steps in any order or batching, draws the same numbers:

    mix64(z):  z ^= z >> 30; z *= M1; z ^= z >> 27; z *= M2; z ^= z >> 31      (mod 2**64)
    absorb(h, v) = mix64((h ^ v) + GOLDEN)                                        (mod 2**64)
    h = absorb(absorb(absorb(absorb(0, seed), image_index), step), neuron)
    uniform24 = h >> 40                                                            (top 24 bits)

mix64 is the splitmix64 finaliser (Steele, Lea, Flood 2014; constants of Vigna's splitmix64.c).
All arithmetic is on numpy uint64 arrays, which wrap modulo 2**64.
"""

from __future__ import annotations

import numpy as np

from ipvae.export.spec import RNG_BITS

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_MULT_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_MULT_2 = np.uint64(0x94D049BB133111EB)
MIX_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))
WORD_BITS = 64
OUTPUT_SHIFT = np.uint64(WORD_BITS - RNG_BITS)
MASK64 = (1 << WORD_BITS) - 1


def _u64(value) -> np.ndarray:
    """Non-negative integers (Python ints or arrays) as uint64 arrays; negatives are rejected."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu" and not (array.dtype == object):
        raise TypeError(f"generator keys must be integers, got dtype {array.dtype}")
    if array.dtype.kind == "i" and array.size and int(array.min()) < 0:
        raise ValueError("generator keys must be non-negative")
    if array.dtype == object:
        return np.array([int(v) & MASK64 for v in array.ravel()], dtype=np.uint64).reshape(array.shape)
    return array.astype(np.uint64)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (a bijection of 64-bit words)."""
    shift_a, shift_b, shift_c = MIX_SHIFTS
    with np.errstate(over="ignore"):
        z = z ^ (z >> shift_a)
        z = z * MIX_MULT_1
        z = z ^ (z >> shift_b)
        z = z * MIX_MULT_2
        return z ^ (z >> shift_c)


def absorb(state: np.ndarray, value: np.ndarray) -> np.ndarray:
    """One chaining step: mix64((state ^ value) + GOLDEN)."""
    with np.errstate(over="ignore"):
        return mix64((state ^ value) + GOLDEN)


def key_prefix(seed: int, image_index) -> np.ndarray:
    """absorb(absorb(0, seed), image_index): the per-image part of the key (uint64, shape of image_index)."""
    image = _u64(image_index)
    seed_state = absorb(np.zeros((), dtype=np.uint64), _u64(seed))
    return absorb(seed_state, image)


def uniform24_from_prefix(prefix: np.ndarray, step, neuron) -> np.ndarray:
    """Finish the chain from per-image prefixes; shapes broadcast. Returns uint32 in [0, 2**24)."""
    state = absorb(absorb(prefix, _u64(step)), _u64(neuron))
    return (state >> OUTPUT_SHIFT).astype(np.uint32)


def uniform24(seed: int, image_index, step, neuron) -> np.ndarray:
    """Uniform integers in [0, 2**24) keyed by (seed, image_index, step, neuron); arguments broadcast."""
    return uniform24_from_prefix(key_prefix(seed, image_index), step, neuron)


def step_uniforms(seed: int, image_indices: np.ndarray, step: int, n_neurons: int) -> np.ndarray:
    """The draws of one step for a batch of images: U[b, k] = uniform24(seed, image_indices[b], step, k).

    Returns uint32 [B, K].
    """
    prefix = key_prefix(seed, np.asarray(image_indices))[:, None]  # [B, 1]
    neurons = np.arange(n_neurons, dtype=np.uint64)[None, :]  # [1, K]
    return uniform24_from_prefix(prefix, step, neurons)
