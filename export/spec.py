"""Fixed-point formats of the integer iP-VAE (the normative text is docs/fixed_point.md).

``FixedPointSpec`` holds every number format and constant the integer dynamics need; it is a plain
value (frozen) and validates itself. ``QuantizedMatrix`` is a signed-mantissa matrix with one power-of-two
exponent (the form Lava's bit-accurate ``Dense`` consumes) or one per row (applied in the neuron);
``SelfInhibition`` is the lateral matrix's diagonal, held apart in the neuron.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipvae.errors import IpvaeError

FORMAT_NAME = "ipvae-integer-poisson"
FORMAT_VERSION = 2  # 2: per-neuron feed-forward exponents ([K] weight_exp) and the self-inhibition apart
READABLE_FORMAT_VERSIONS = (1, 2)  # version 1: one exponent per matrix, the self-inhibition inside weight_rec
RNG_NAME = "splitmix64-chain-v1"
RNG_BITS = 24  # uniform24 draws integers in [0, 2**RNG_BITS)

MIN_WEIGHT_BITS = 4
MAX_WEIGHT_BITS = 16
LAVA_MAX_WEIGHT_BITS = 8  # Lava's bit-accurate Dense clips weights to 8 bits (+ sign in MIXED mode)
# In SignMode.MIXED, Lava's Dense keeps the top `num_weight_bits` of a 9-bit signed weight
# (clip to [-256, 255], then drop 9 - num_weight_bits low bits): a b-bit mantissa m enters as m << (9 - b).
LAVA_MIXED_WEIGHT_WIDTH = 9
LAVA_SIGN_MODE_MIXED = 1  # lava.utils.weightutils.SignMode.MIXED.value
MAX_STATE_BITS = 24
MAX_INPUT_BITS = 16
MIN_INPUT_BITS = 2
MAX_SPIKE_COUNT_LIMIT = 255
INT32_MAX = 2**31 - 1
NO_LEAK_SHIFT = 0  # leak_shift 0: no leak (the paper's dynamics)
MAX_EXPONENT = 31  # |weight exponent|: anything larger is no sensible shift of an int32 accumulator
MAX_LEAK_SHIFT = 30  # leak = 2**-n with n in 1..30 (2**-30 is below one u-LSB of any reachable offset)


class SpecError(IpvaeError):
    """A fixed-point format that is inconsistent or out of range (the message names the field).

    ``field`` is the offending FixedPointSpec field name when there is one (the HDF5 reader maps it to
    the dataset path).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def symmetric_max(bits: int) -> int:
    """Largest magnitude of a symmetric signed `bits`-bit integer: 2**(bits-1) - 1."""
    return (1 << (bits - 1)) - 1


def leak_term(offset, shift: int):
    """The integer leak (docs/fixed_point.md, section 6.1): round(offset / 2**shift), halves rounded up.

    leak_term(d, n) = (d + 2**(n-1)) >> n (arithmetic shift: floor), and 0 for n = 0 (no leak). ``offset``
    is u - u_prior_int in u-LSBs: a Python int or an int64 array (computed exactly, as the neuron sum is).
    """
    if shift == NO_LEAK_SHIFT:
        return offset * 0  # zeros of the offset's type and shape
    return (offset + (1 << (shift - 1))) >> shift


def shift_by_exponent(accumulated, exponent):
    """floor(accumulated * 2**exponent) of integers (int64 arrays or Python ints): a left shift for
    exponent >= 0, an arithmetic right shift (floor) below. How Lava's Dense scales its accumulator, and
    how the neuron scales its held feed-forward drive.

    ``exponent`` is one integer, or an int array broadcast against ``accumulated`` (one exponent per neuron:
    a [K] vector for [B, K] row sums)."""
    if np.ndim(exponent) == 0:
        exponent = int(exponent)
        if exponent >= 0:
            return accumulated << exponent
        return accumulated >> -exponent
    exponent = np.asarray(exponent, dtype=np.int64)
    return np.where(exponent >= 0, accumulated << np.maximum(exponent, 0), accumulated >> np.maximum(-exponent, 0))


def self_inhibition_term(counts, mantissa, exponent: int) -> np.ndarray:
    """The self-inhibition a neuron adds from its own previous count (docs/fixed_point.md, section 4.4):
    floor(m_k z_k 2**e), int64 [B, K] for counts z [B, K], mantissas m [K] and one exponent e. The one
    definition the integer reference and the Lava ProcessModel call."""
    product_ = np.asarray(counts).astype(np.int64) * np.asarray(mantissa).astype(np.int64)  # [B, K]
    return shift_by_exponent(product_, int(exponent))


def check_leak_shift(leak_shift: int) -> int:
    """The leak shift as an int, or SpecError: an integer in NO_LEAK_SHIFT..MAX_LEAK_SHIFT."""
    if isinstance(leak_shift, bool) or not isinstance(leak_shift, (int, np.integer)):
        raise SpecError(f"leak_shift must be an integer, got {leak_shift!r}", field="leak_shift")
    _check_range("leak_shift", int(leak_shift), NO_LEAK_SHIFT, MAX_LEAK_SHIFT)
    return int(leak_shift)


def bits_for_count(count: int) -> int:
    """Unsigned bits needed to carry 0..count."""
    return max(1, int(count).bit_length())


@dataclass(frozen=True)
class FixedPointSpec:
    """Number formats of the integer model.

    u_frac_bits: F, fractional bits of the membrane potential u (u_real = u_int / 2**F).
    u_bits: width of the signed u state; [u_min_int, u_max_int] must fit in it.
    u_min_int / u_max_int: hard saturation bounds of u, in u-LSBs.
    input_bits: signed payload bits of an input graded spike (symmetric range).
    weight_bits: signed mantissa bits of the ff and rec synapses (symmetric range), 4..16.
    decoder_bits: signed mantissa bits of the quantized decoder (energy accounting only).
    sampler_frac_bits: G, fractional bits of u seen by the spike sampler (G <= F).
    max_spike_count: cap, the largest spike count per neuron per step.
    seed: key of the counter-based random generator (0 <= seed < 2**64).
    """

    u_frac_bits: int = 12
    u_bits: int = 24
    u_min_int: int = -8 * 2**12
    u_max_int: int = 4 * 2**12
    input_bits: int = 8
    weight_bits: int = 8
    decoder_bits: int = 8
    sampler_frac_bits: int = 5
    max_spike_count: int = 15
    seed: int = 0

    @classmethod
    def create(cls, *, u_min: float = -8.0, u_max: float = 4.0, u_frac_bits: int = 12, **fields) -> "FixedPointSpec":
        """Spec from real-valued bounds: u_min_int = round(u_min * 2**F), u_max_int = round(u_max * 2**F)."""
        scale = 2.0**u_frac_bits
        return cls(
            u_frac_bits=u_frac_bits,
            u_min_int=int(np.rint(u_min * scale)),
            u_max_int=int(np.rint(u_max * scale)),
            **fields,
        )

    def __post_init__(self) -> None:
        for name in (
            "u_frac_bits", "u_bits", "u_min_int", "u_max_int", "input_bits", "weight_bits",
            "decoder_bits", "sampler_frac_bits", "max_spike_count", "seed",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SpecError(f"{name} must be an integer, got {value!r}", field=name)
        _check_range("u_bits", self.u_bits, 2, MAX_STATE_BITS)
        _check_range("u_frac_bits", self.u_frac_bits, 0, self.u_bits - 1)
        state_min, state_max = -(1 << (self.u_bits - 1)), (1 << (self.u_bits - 1)) - 1
        _check_range("u_min_int", self.u_min_int, state_min, state_max)
        _check_range("u_max_int", self.u_max_int, self.u_min_int + 1, state_max)
        _check_range("input_bits", self.input_bits, MIN_INPUT_BITS, MAX_INPUT_BITS)
        _check_range("weight_bits", self.weight_bits, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS)
        _check_range("decoder_bits", self.decoder_bits, MIN_WEIGHT_BITS, MAX_WEIGHT_BITS)
        _check_range("sampler_frac_bits", self.sampler_frac_bits, 0, self.u_frac_bits)
        _check_range("max_spike_count", self.max_spike_count, 1, MAX_SPIKE_COUNT_LIMIT)
        _check_range("seed", self.seed, 0, 2**64 - 1)

    @property
    def u_scale(self) -> int:
        """u-LSBs per unit of u: 2**F."""
        return 1 << self.u_frac_bits

    @property
    def u_min(self) -> float:
        return self.u_min_int / self.u_scale

    @property
    def u_max(self) -> float:
        return self.u_max_int / self.u_scale

    @property
    def input_max(self) -> int:
        return symmetric_max(self.input_bits)

    @property
    def weight_max(self) -> int:
        return symmetric_max(self.weight_bits)

    @property
    def sampler_shift(self) -> int:
        """F - G: right shift from u-LSBs to sampler bins."""
        return self.u_frac_bits - self.sampler_frac_bits

    @property
    def n_sampler_bins(self) -> int:
        """Rows of the inverse-CDF table: ((u_max_int - u_min_int) >> (F - G)) + 1."""
        return ((self.u_max_int - self.u_min_int) >> self.sampler_shift) + 1

    @property
    def spike_message_bits(self) -> int:
        """Graded-spike payload bits of a spike count 0..cap (Dense rec num_message_bits)."""
        return bits_for_count(self.max_spike_count)

    @property
    def lava_compatible(self) -> bool:
        """Whether Lava's bit-accurate Dense can hold the synapse mantissas (weight_bits <= 8)."""
        return self.weight_bits <= LAVA_MAX_WEIGHT_BITS


@dataclass(frozen=True, eq=False)
class QuantizedMatrix:
    """Signed mantissas with power-of-two exponents: effective value = mantissa * 2**exponent.

    ``exponent`` is one integer for the whole matrix, or an integer vector [rows] (one exponent per row, i.e.
    per postsynaptic neuron: the per-neuron feed-forward layout of format version 2). For synapses the unit
    is u-LSBs per unit of presynaptic payload; Dense computes a_i = floor(sum_j mantissa[i, j] * s[j] *
    2**exponent_i) (a left shift when the exponent is >= 0).
    """

    mantissa: np.ndarray  # [rows, cols] int16
    exponent: int | np.ndarray  # one int, or int64 [rows]
    bits: int

    def __post_init__(self) -> None:
        limit = symmetric_max(self.bits)
        if self.mantissa.ndim != 2 or self.mantissa.dtype.kind != "i":
            raise SpecError(f"mantissa must be a 2-D signed integer array, got {self.mantissa.dtype} {self.mantissa.shape}")
        if self.mantissa.size and int(np.abs(self.mantissa.astype(np.int64)).max()) > limit:
            raise SpecError(f"mantissa outside the symmetric signed {self.bits}-bit range +-{limit}")
        if np.ndim(self.exponent) == 0:
            object.__setattr__(self, "exponent", int(self.exponent))
        elif np.shape(self.exponent) != (self.mantissa.shape[0],) or np.asarray(self.exponent).dtype.kind not in "iu":
            raise SpecError(f"row exponents must be an integer vector of {self.mantissa.shape[0]}, "
                            f"got {np.asarray(self.exponent).dtype} {np.shape(self.exponent)}")
        else:
            object.__setattr__(self, "exponent", np.asarray(self.exponent, dtype=np.int64).copy())

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mantissa.shape)

    @property
    def per_row(self) -> bool:
        """Whether each row has its own exponent."""
        return np.ndim(self.exponent) == 1

    @property
    def row_exponents(self) -> np.ndarray:
        """The exponent of every row, int64 [rows] (the one exponent repeated for a shared-exponent matrix)."""
        return np.broadcast_to(np.asarray(self.exponent, dtype=np.int64), (self.mantissa.shape[0],)).copy()

    def exponent_text(self) -> str:
        """'exp +1', or 'exp -5..-1 per row' (for summaries)."""
        if not self.per_row:
            return f"exp {self.exponent:+d}"
        return f"exp {int(self.exponent.min()):+d}..{int(self.exponent.max()):+d} per row"

    def dequantize(self) -> np.ndarray:
        """Effective real weights mantissa * 2**exponent, float64 [rows, cols]."""
        return self.mantissa.astype(np.float64) * np.exp2(self.row_exponents.astype(np.float64))[:, None]

    def lava_dense_kwargs(self) -> dict:
        """Keyword arguments for ``lava.proc.dense.process.Dense`` (bit-accurate model).

        weights = m << (9 - b), weight_exp = e - (9 - b), num_weight_bits = b, sign_mode = MIXED.
        Lava's clip to [-256, 255] and truncation of 9 - b low bits are then exact no-ops.
        Add ``num_message_bits`` yourself (input_bits for ff, spike_message_bits for rec).
        """
        if self.bits > LAVA_MAX_WEIGHT_BITS:
            raise SpecError(
                f"{self.bits}-bit mantissas do not fit Lava's 8-bit Dense synapse (reference-only file)"
            )
        if self.per_row:
            raise SpecError("a matrix with one exponent per row is not one Lava Dense (its exponents apply in the neuron)")
        from lava.utils.weightutils import SignMode  # imported here: the spec itself does not need Lava

        shift = LAVA_MIXED_WEIGHT_WIDTH - self.bits
        return {
            "weights": self.mantissa.astype(np.int32) << shift,
            "weight_exp": int(self.exponent - shift),
            "num_weight_bits": int(self.bits),
            "sign_mode": SignMode.MIXED,
        }


@dataclass(frozen=True, eq=False)
class SelfInhibition:
    """The lateral matrix's diagonal held apart (format version 2): one signed mantissa per neuron and one
    exponent. Neuron k adds floor(mantissa_k * z_k * 2**exponent) from its own count of the previous step
    (docs/fixed_point.md, section 4.4); the lateral Dense then holds the off-diagonal entries only."""

    mantissa: np.ndarray  # [K] int16
    exponent: int
    bits: int

    def __post_init__(self) -> None:
        limit = symmetric_max(self.bits)
        if self.mantissa.ndim != 1 or self.mantissa.dtype.kind != "i":
            raise SpecError(f"self-inhibition mantissas must be a 1-D signed integer array, got "
                            f"{self.mantissa.dtype} {self.mantissa.shape}")
        if self.mantissa.size and int(np.abs(self.mantissa.astype(np.int64)).max()) > limit:
            raise SpecError(f"self-inhibition mantissa outside the symmetric signed {self.bits}-bit range +-{limit}")
        object.__setattr__(self, "exponent", int(self.exponent))

    def term(self, counts: np.ndarray) -> np.ndarray:
        """floor(mantissa_k * z_k * 2**exponent), int64 [B, K], for the previous step's counts z [B, K]."""
        return self_inhibition_term(counts, self.mantissa, self.exponent)

    def dequantize(self) -> np.ndarray:
        """The effective diagonal mantissa * 2**exponent, float64 [K]."""
        return self.mantissa.astype(np.float64) * 2.0**self.exponent


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SpecError(f"{name} = {value} is outside {low}..{high}", field=name)
