"""HDF5 export of the integer model, in lava-dl netx's layout (docs/hdf5_format.md).

``write_model`` writes atomically (temporary file in the same folder, then ``os.replace``).
``read_model`` validates every field and returns typed objects; every failure is one
``ExportFormatError`` line naming the field, never an h5py/KeyError traceback.

Optional datasets (a file without one reads as its default):
``layer/1/neuron/leak_shift`` (int32 scalar, the leak 2**-n; absent: 0, no leak; added in version 1);
``layer/1/neuron/self_weight`` + ``self_weight_exp`` (version 2: the self-inhibition held apart; absent: the
diagonal is inside ``weight_rec``).

Format version 2 stores ``layer/1/weight_exp`` as one exponent per neuron (int64 [K]); version 1 files (one
scalar exponent, the self-inhibition inside ``weight_rec``) still read.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from ipvae.export.integer_model import IntegerModel
from ipvae.export.quantize import accumulator_bounds
from ipvae.export.neurons.base import NeuronModel
from ipvae.export.neurons.registry import neuron_model, neuron_names
from ipvae.export.spec import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INT32_MAX,
    MAX_EXPONENT,
    READABLE_FORMAT_VERSIONS,
    MAX_LEAK_SHIFT,
    NO_LEAK_SHIFT,
    RNG_BITS,
    RNG_NAME,
    FixedPointSpec,
    QuantizedMatrix,
    SelfInhibition,
    SpecError,
    symmetric_max,
)
from ipvae import __version__ as TOOLKIT_VERSION
from ipvae.errors import ExportFormatError, IpvaeError, shown
from ipvae.fileio import atomic_path
from ipvae.limits import ResourceLimitError, check_memory, product

INPUT = "layer/0"
DENSE = "layer/1"
NEURON = "layer/1/neuron"
DECODER = "decoder"
METADATA = "metadata"
CONTENT_HASH = "metadata/content_sha256"
INPUT_PREPARATION = "metadata/input_preparation"
LEAK_SHIFT = f"{NEURON}/leak_shift"  # optional: files written before the leak existed have none (n = 0)
SELF_WEIGHT = f"{NEURON}/self_weight"  # optional (version 2): the self-inhibition mantissas [K]
SELF_WEIGHT_EXP = f"{NEURON}/self_weight_exp"
EXPONENT_LIMIT = MAX_EXPONENT
SHA256_HEX_LENGTH = 64
MAX_STRING_BYTES = 4096  # the longest string a valid export holds is a source path
MAX_UNSHAPED_ELEMENTS = 2**16  # a dataset read without an expected shape (none in format version 1) stays small
MAX_INPUTS, MAX_LATENTS = 2**24, 2**16  # the bounds of a training config (ipvae.train.validation.FIELD_BOUNDS)
CDF_CHECK_BYTES_PER_ENTRY = 3 * 8  # _check_sampler_table: the expected table and the difference, int64
DECODER_ROUNDING_SLACK = 1e-6  # float32 storage of phi vs the float64 it was rounded from, relative to half an LSB
SAMPLER_TABLE_TOLERANCE = 1  # LSBs of 2**-24: scipy's last-ulp differences between machines may flip one floor
INPUT_MAX_RELATIVE_TOLERANCE = 1e-9
INT64, INT32, INT16, UINT32, UINT64 = (np.dtype(t) for t in ("<i8", "<i4", "<i2", "<u4", "<u8"))
FLOAT32, FLOAT64 = np.dtype("<f4"), np.dtype("<f8")
STRING = "string"

# FixedPointSpec field -> the dataset that stores it (for error messages).
SPEC_FIELD_PATHS = {
    "u_frac_bits": f"{NEURON}/u_frac_bits",
    "u_bits": f"{NEURON}/u_bits",
    "u_min_int": f"{NEURON}/u_min",
    "u_max_int": f"{NEURON}/u_max",
    "input_bits": f"{INPUT}/input_bits",
    "weight_bits": f"{DENSE}/num_weight_bits",
    "decoder_bits": f"{DECODER}/num_weight_bits",
    "sampler_frac_bits": f"{NEURON}/sampler_frac_bits",
    "max_spike_count": f"{NEURON}/max_spike_count",
    "seed": f"{NEURON}/seed",
}


@dataclass(frozen=True)
class ExportMetadata:
    """Provenance of an export. content_sha256 is filled in by the writer (hash of every other dataset)."""

    source: str
    source_checkpoint_sha256: str
    calibration: str
    calibration_images: int
    input_max: float
    float_step_size: float
    exponent_rule: str = "max-abs"
    toolkit_version: str = TOOLKIT_VERSION
    created_utc: str = ""
    content_sha256: str = ""
    input_preparation: str = ""  # JSON of ipvae.images.InputPreparation (image shape, how images are prepared); "" none


@dataclass(frozen=True, eq=False)
class ExportedModel:
    model: IntegerModel
    metadata: ExportMetadata
    format_version: int = FORMAT_VERSION


# ----------------------------------------------------------------------------------------------- write


def _string(value: str) -> np.ndarray:
    return np.array(value.encode("utf-8"), dtype=np.bytes_)


def _scalar(value: int | float, dtype: np.dtype) -> np.ndarray:
    return np.array(value, dtype=dtype)


def layout(model: IntegerModel, metadata: ExportMetadata) -> dict[str, np.ndarray]:
    """Every dataset of the file except the content hash: path -> array (the exact stored dtype)."""
    spec = model.spec
    return {
        "format": _string(FORMAT_NAME),
        "format_version": _scalar(FORMAT_VERSION, INT64),
        f"{INPUT}/type": _string("input"),
        f"{INPUT}/shape": np.array([model.n_inputs], dtype=INT64),
        f"{INPUT}/input_bits": _scalar(spec.input_bits, INT64),
        f"{INPUT}/input_scale": _scalar(model.input_scale, FLOAT64),
        f"{DENSE}/type": _string("dense"),
        f"{DENSE}/shape": np.array([model.n_latents], dtype=INT64),
        f"{DENSE}/num_weight_bits": _scalar(spec.weight_bits, INT64),
        f"{DENSE}/weight": model.ff.mantissa.astype(INT16),
        f"{DENSE}/weight_exp": model.ff.row_exponents.astype(INT64),  # [K]: one exponent per neuron
        f"{DENSE}/weight_rec": model.rec.mantissa.astype(INT16),
        f"{DENSE}/weight_rec_exp": _scalar(model.rec.exponent, INT64),
        f"{DENSE}/num_message_bits": _scalar(spec.input_bits, INT64),
        f"{DENSE}/num_message_bits_rec": _scalar(spec.spike_message_bits, INT64),
        f"{NEURON}/type": _string(model.neuron),
        f"{NEURON}/u_frac_bits": _scalar(spec.u_frac_bits, INT64),
        f"{NEURON}/u_bits": _scalar(spec.u_bits, INT64),
        f"{NEURON}/u_min": _scalar(spec.u_min_int, INT64),
        f"{NEURON}/u_max": _scalar(spec.u_max_int, INT64),
        f"{NEURON}/u_prior": model.u_prior.astype(INT32),
        f"{NEURON}/bias": model.bias.astype(INT32),
        LEAK_SHIFT: _scalar(model.leak_shift, INT32),
        **_self_inhibition_datasets(model.self_inhibition),
        f"{NEURON}/max_spike_count": _scalar(spec.max_spike_count, INT64),
        f"{NEURON}/sampler_frac_bits": _scalar(spec.sampler_frac_bits, INT64),
        f"{NEURON}/cdf": model.cdf.astype(UINT32),
        f"{NEURON}/rng": _string(RNG_NAME),
        f"{NEURON}/rng_bits": _scalar(RNG_BITS, INT64),
        f"{NEURON}/seed": _scalar(spec.seed, UINT64),
        f"{NEURON}/n_steps": _scalar(model.n_steps, INT64),
        f"{DECODER}/phi": model.decoder_phi.astype(FLOAT32),
        f"{DECODER}/weight": model.decoder.mantissa.astype(INT16),
        f"{DECODER}/weight_exp": _scalar(model.decoder.exponent, INT64),
        f"{DECODER}/num_weight_bits": _scalar(spec.decoder_bits, INT64),
        f"{METADATA}/toolkit_version": _string(metadata.toolkit_version),
        f"{METADATA}/created_utc": _string(metadata.created_utc),
        f"{METADATA}/source": _string(metadata.source),
        f"{METADATA}/source_checkpoint_sha256": _string(metadata.source_checkpoint_sha256),
        f"{METADATA}/calibration": _string(metadata.calibration),
        f"{METADATA}/calibration_images": _scalar(metadata.calibration_images, INT64),
        f"{METADATA}/input_max": _scalar(metadata.input_max, FLOAT64),
        f"{METADATA}/float_step_size": _scalar(metadata.float_step_size, FLOAT64),
        f"{METADATA}/exponent_rule": _string(metadata.exponent_rule),
        **({INPUT_PREPARATION: _string(metadata.input_preparation)} if metadata.input_preparation else {}),
    }


def _self_inhibition_datasets(self_inhibition: SelfInhibition | None) -> dict[str, np.ndarray]:
    if self_inhibition is None:
        return {}
    return {SELF_WEIGHT: self_inhibition.mantissa.astype(INT16), SELF_WEIGHT_EXP: _scalar(self_inhibition.exponent, INT64)}


def content_digest(datasets: dict[str, np.ndarray]) -> str:
    """sha256 over (path, dtype, shape, bytes) of every dataset but the hash itself, in path order."""
    digest = hashlib.sha256()
    for path in sorted(datasets):
        if path == CONTENT_HASH:
            continue
        array = np.ascontiguousarray(datasets[path])
        header = f"{path}\0{array.dtype.str}\0{array.shape}\0"
        digest.update(header.encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_model(path: str | Path, model: IntegerModel, metadata: ExportMetadata) -> ExportMetadata:
    """Write `model` to `path` atomically; returns the metadata as stored (creation time, content hash)."""
    path = Path(path)
    created = metadata.created_utc or datetime.now(timezone.utc).isoformat(timespec="seconds")
    metadata = ExportMetadata(**{**metadata.__dict__, "created_utc": created, "content_sha256": ""})
    datasets = layout(model, metadata)
    digest = content_digest(datasets)
    datasets[CONTENT_HASH] = _string(digest)
    # Built in memory, then written as plain bytes: a full disk is then one OSError from the write (one line,
    # via atomic_path), not an HDF5 library failure while closing the file (which can crash the process).
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as file:
        for name, array in datasets.items():
            file.create_dataset(name, data=array)
    with atomic_path(path) as temporary:  # the same file mode as every other output
        temporary.write_bytes(buffer.getvalue())
    return ExportMetadata(**{**metadata.__dict__, "content_sha256": digest})


# ------------------------------------------------------------------------------------------------ read


def _fail(field: str, message: str) -> ExportFormatError:
    return ExportFormatError(f"{field}: {message}")


class _Reader:
    """Reads datasets of an open file with dtype/shape/finiteness checks; remembers what it read."""

    def __init__(self, file: h5py.File):
        self.file = file
        self.datasets: dict[str, np.ndarray] = {}

    def array(self, path: str, dtype: np.dtype | str, shape: tuple | None = None) -> np.ndarray:
        try:
            node = self.file.get(path)
        except Exception as error:  # h5py raises assorted types for damaged object headers
            raise _fail(path, f"unreadable ({_first_line(error)})") from None
        if node is None:
            raise _fail(path, "missing")
        if not isinstance(node, h5py.Dataset):
            raise _fail(path, "is a group, expected a dataset")
        self._check_declared(path, node, dtype, shape)  # before a byte of data is read
        try:
            value = np.asarray(node[()])
        except Exception as error:
            raise _fail(path, f"unreadable data ({_first_line(error)})") from None
        if dtype == STRING:
            if value.dtype.kind != "S" or value.shape != ():
                raise _fail(path, f"expected a string, found {value.dtype} with shape {value.shape}")
        elif value.dtype != np.dtype(dtype):
            raise _fail(path, f"dtype {value.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and value.shape != tuple(shape):
            raise _fail(path, f"shape {value.shape}, expected {tuple(shape)}")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise _fail(path, "contains NaN or Inf")
        self.datasets[path] = value
        return value

    @staticmethod
    def _check_declared(path: str, node: h5py.Dataset, dtype: np.dtype | str, shape: tuple | None) -> None:
        """The dataset's declared dtype and shape against the spec, and its size against the memory: a small
        file can declare a (2**31,) int64 dataset of fill values, 16 GiB once read."""
        declared_shape, declared_dtype = tuple(node.shape), node.dtype
        if dtype == STRING:
            if declared_dtype.kind != "S" or declared_shape != ():
                raise _fail(path, f"expected a string, found {declared_dtype} with shape {declared_shape}")
            if declared_dtype.itemsize > MAX_STRING_BYTES:
                raise _fail(path, f"a string of {declared_dtype.itemsize} bytes (at most {MAX_STRING_BYTES} expected)")
            return
        if declared_dtype != np.dtype(dtype):
            raise _fail(path, f"dtype {declared_dtype}, expected {np.dtype(dtype)}")
        if shape is not None and declared_shape != tuple(shape):
            raise _fail(path, f"shape {declared_shape}, expected {tuple(shape)}")
        if shape is None and product(*declared_shape) > MAX_UNSHAPED_ELEMENTS:
            raise _fail(path, f"shape {declared_shape} is larger than any dataset of this format")
        try:
            check_memory(product(*declared_shape, declared_dtype.itemsize), f"reading {path} {declared_shape}")
        except ResourceLimitError as error:
            raise _fail(path, str(error)) from None

    def string(self, path: str, expected: str | None = None) -> str:
        raw = self.array(path, STRING)[()]
        if len(raw) > MAX_STRING_BYTES:
            raise _fail(path, f"a string of {len(raw)} bytes (at most {MAX_STRING_BYTES} expected)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(path, "is not valid UTF-8 text") from None
        if expected is not None and text != expected:
            raise _fail(path, f"{shown(text)}, expected {shown(expected)}")
        return text

    def integer(self, path: str, low: int, high: int, dtype: np.dtype = INT64) -> int:
        value = int(self.array(path, dtype, ())[()])
        if not low <= value <= high:
            raise _fail(path, f"{value} is outside {low}..{high}")
        return value

    def optional_integer(self, path: str, low: int, high: int, dtype: np.dtype, default: int) -> int:
        """``integer`` for a dataset older files lack: ``default`` when nothing is at ``path``.

        Only absence gives the default; a group, a wrong dtype or a value out of range still fails.
        """
        try:
            absent = path not in self.file
        except Exception as error:  # h5py raises assorted types for damaged object headers
            raise _fail(path, f"unreadable ({_first_line(error)})") from None
        return default if absent else self.integer(path, low, high, dtype)

    def real(self, path: str, positive: bool = False) -> float:
        value = float(self.array(path, FLOAT64, ())[()])
        if positive and not value > 0:
            raise _fail(path, f"{value} must be positive")
        return value


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _checked_mantissa(reader: _Reader, path: str, shape: tuple, bits: int) -> np.ndarray:
    mantissa = reader.array(path, INT16, shape)
    limit = symmetric_max(bits)
    if mantissa.size and int(np.abs(mantissa.astype(np.int64)).max()) > limit:
        raise _fail(path, f"mantissa {int(np.abs(mantissa.astype(np.int64)).max())} outside the signed {bits}-bit range +-{limit}")
    return mantissa


def _mantissa(reader: _Reader, path: str, shape: tuple, bits: int, exponent_path: str,
              per_row: bool = False) -> QuantizedMatrix:
    """A quantized matrix; per_row: the exponent dataset holds one exponent per row (version 2's weight_exp)."""
    mantissa = _checked_mantissa(reader, path, shape, bits)
    if not per_row:
        exponent = reader.integer(exponent_path, -EXPONENT_LIMIT, EXPONENT_LIMIT)
        return QuantizedMatrix(mantissa=mantissa, exponent=exponent, bits=bits)
    exponents = reader.array(exponent_path, INT64, (shape[0],))
    if exponents.size and int(np.abs(exponents).max()) > EXPONENT_LIMIT:
        raise _fail(exponent_path, f"an exponent outside -{EXPONENT_LIMIT}..{EXPONENT_LIMIT}")
    if exponents.size and np.all(exponents == exponents[0]):  # one exponent after all: the plain Dense form
        return QuantizedMatrix(mantissa=mantissa, exponent=int(exponents[0]), bits=bits)
    return QuantizedMatrix(mantissa=mantissa, exponent=exponents, bits=bits)


def _self_inhibition(reader: _Reader, version: int, n_latents: int, bits: int,
                     rec: QuantizedMatrix) -> SelfInhibition | None:
    """The self-inhibition held apart (version 2, optional); its presence requires a zero weight_rec diagonal."""
    try:
        present = [path for path in (SELF_WEIGHT, SELF_WEIGHT_EXP) if path in reader.file]
    except Exception as error:  # h5py raises assorted types for damaged object headers
        raise _fail(SELF_WEIGHT, f"unreadable ({_first_line(error)})") from None
    if not present:
        return None
    if version < 2:
        raise _fail(present[0], f"not part of format version {version}")
    if len(present) == 1:
        missing = SELF_WEIGHT if present[0] == SELF_WEIGHT_EXP else SELF_WEIGHT_EXP
        raise _fail(missing, "missing")
    mantissa = _checked_mantissa(reader, SELF_WEIGHT, (n_latents,), bits)
    exponent = reader.integer(SELF_WEIGHT_EXP, -EXPONENT_LIMIT, EXPONENT_LIMIT)
    if np.any(np.diag(rec.mantissa)):
        raise _fail(f"{DENSE}/weight_rec", "has a non-zero diagonal while the self-inhibition is held apart "
                    f"({SELF_WEIGHT}): the diagonal would count twice")
    return SelfInhibition(mantissa=mantissa, exponent=exponent, bits=bits)


def _spec(reader: _Reader) -> FixedPointSpec:
    wide = (-(2**62), 2**62)
    values = {
        "u_frac_bits": reader.integer(SPEC_FIELD_PATHS["u_frac_bits"], *wide),
        "u_bits": reader.integer(SPEC_FIELD_PATHS["u_bits"], *wide),
        "u_min_int": reader.integer(SPEC_FIELD_PATHS["u_min_int"], *wide),
        "u_max_int": reader.integer(SPEC_FIELD_PATHS["u_max_int"], *wide),
        "input_bits": reader.integer(SPEC_FIELD_PATHS["input_bits"], *wide),
        "weight_bits": reader.integer(SPEC_FIELD_PATHS["weight_bits"], *wide),
        "decoder_bits": reader.integer(SPEC_FIELD_PATHS["decoder_bits"], *wide),
        "sampler_frac_bits": reader.integer(SPEC_FIELD_PATHS["sampler_frac_bits"], *wide),
        "max_spike_count": reader.integer(SPEC_FIELD_PATHS["max_spike_count"], *wide),
        "seed": reader.integer(SPEC_FIELD_PATHS["seed"], 0, 2**64 - 1, dtype=UINT64),
    }
    try:
        return FixedPointSpec(**values)
    except SpecError as error:
        raise _fail(SPEC_FIELD_PATHS.get(error.field, NEURON), str(error)) from None


def _read_all(reader: _Reader) -> ExportedModel:
    reader.string("format", FORMAT_NAME)
    version = reader.integer("format_version", -(2**62), 2**62)
    if version not in READABLE_FORMAT_VERSIONS:
        known = ", ".join(str(known) for known in READABLE_FORMAT_VERSIONS)
        raise _fail("format_version", f"unsupported version {version} (this reader knows {known})")
    reader.string(f"{INPUT}/type", "input")
    reader.string(f"{DENSE}/type", "dense")
    neuron_type = reader.string(f"{NEURON}/type")
    if neuron_type not in neuron_names():  # the name picks the neuron model's functions, as netx picks a block by type
        raise _fail(f"{NEURON}/type", f"unknown neuron type {shown(neuron_type)} (known: {', '.join(neuron_names())})")
    neuron = neuron_model(neuron_type)
    reader.string(f"{NEURON}/rng", RNG_NAME)
    reader.integer(f"{NEURON}/rng_bits", RNG_BITS, RNG_BITS)
    n_inputs = int(reader.array(f"{INPUT}/shape", INT64, (1,))[0])
    n_latents = int(reader.array(f"{DENSE}/shape", INT64, (1,))[0])
    for path, size, largest in ((f"{INPUT}/shape", n_inputs, MAX_INPUTS), (f"{DENSE}/shape", n_latents, MAX_LATENTS)):
        if not 1 <= size <= largest:
            raise _fail(path, f"{size} is outside 1..{largest}")
    spec = _spec(reader)
    reader.integer(f"{DENSE}/num_message_bits", spec.input_bits, spec.input_bits)
    reader.integer(f"{DENSE}/num_message_bits_rec", spec.spike_message_bits, spec.spike_message_bits)
    input_scale = reader.real(f"{INPUT}/input_scale", positive=True)
    if input_scale < np.finfo(np.float64).tiny:
        raise _fail(f"{INPUT}/input_scale", f"{input_scale} is subnormal: not a usable scale")
    ff = _mantissa(reader, f"{DENSE}/weight", (n_latents, n_inputs), spec.weight_bits, f"{DENSE}/weight_exp",
                   per_row=version >= 2)
    rec = _mantissa(reader, f"{DENSE}/weight_rec", (n_latents, n_latents), spec.weight_bits, f"{DENSE}/weight_rec_exp")
    self_inhibition = _self_inhibition(reader, version, n_latents, spec.weight_bits, rec)
    u_prior = reader.array(f"{NEURON}/u_prior", INT32, (n_latents,))
    if u_prior.min() < spec.u_min_int or u_prior.max() > spec.u_max_int:
        raise _fail(f"{NEURON}/u_prior", f"values outside [u_min, u_max] = [{spec.u_min_int}, {spec.u_max_int}]")
    bias = reader.array(f"{NEURON}/bias", INT32, (n_latents,))
    leak_shift = reader.optional_integer(LEAK_SHIFT, NO_LEAK_SHIFT, MAX_LEAK_SHIFT, INT32, default=NO_LEAK_SHIFT)
    cdf = reader.array(f"{NEURON}/cdf", UINT32, (spec.n_sampler_bins, spec.max_spike_count))
    if cdf.size and (cdf.max() > 1 << RNG_BITS or np.any(np.diff(cdf.astype(np.int64), axis=1) < 0)):
        raise _fail(f"{NEURON}/cdf", f"must be non-decreasing along counts and at most 2**{RNG_BITS}")
    _check_sampler_table(cdf, spec, neuron)
    n_steps = reader.integer(f"{NEURON}/n_steps", 1, INT32_MAX)
    phi = reader.array(f"{DECODER}/phi", FLOAT32, (n_inputs, n_latents))
    decoder = _mantissa(reader, f"{DECODER}/weight", (n_inputs, n_latents), spec.decoder_bits, f"{DECODER}/weight_exp")
    _check_decoder(phi, decoder)
    metadata = ExportMetadata(
        source=reader.string(f"{METADATA}/source"),
        source_checkpoint_sha256=reader.string(f"{METADATA}/source_checkpoint_sha256"),
        calibration=reader.string(f"{METADATA}/calibration"),
        calibration_images=reader.integer(f"{METADATA}/calibration_images", 0, 2**62),
        input_max=reader.real(f"{METADATA}/input_max", positive=True),
        float_step_size=reader.real(f"{METADATA}/float_step_size", positive=True),
        exponent_rule=reader.string(f"{METADATA}/exponent_rule"),
        toolkit_version=reader.string(f"{METADATA}/toolkit_version"),
        created_utc=reader.string(f"{METADATA}/created_utc"),
        content_sha256=reader.string(CONTENT_HASH),
        input_preparation=_input_preparation(reader, n_inputs),
    )
    model = IntegerModel(
        spec=spec, input_scale=input_scale, ff=ff, rec=rec, bias=bias, u_prior=u_prior, cdf=cdf,
        decoder_phi=phi, decoder=decoder, n_steps=n_steps, leak_shift=leak_shift, neuron=neuron.name,
        self_inhibition=self_inhibition,
    )
    _check_bounds(model)
    implied_input_max = input_scale * spec.input_max
    if not np.isclose(metadata.input_max, implied_input_max, rtol=INPUT_MAX_RELATIVE_TOLERANCE, atol=0.0):
        raise _fail(f"{METADATA}/input_max", f"{metadata.input_max:.6g} differs from input_scale * "
                    f"{spec.input_max} = {implied_input_max:.6g}")
    if content_digest(reader.datasets) != metadata.content_sha256:
        raise _fail(CONTENT_HASH, "does not match the file's contents (modified after export?)")
    return ExportedModel(model=model, metadata=metadata, format_version=version)


def _input_preparation(reader: _Reader, n_inputs: int) -> str:
    """metadata/input_preparation (absent in older files: ""): JSON of an InputPreparation for n_inputs pixels."""
    import json

    from ipvae.images import InputPreparation

    try:
        absent = INPUT_PREPARATION not in reader.file
    except Exception as error:  # h5py raises assorted types for damaged object headers
        raise _fail(INPUT_PREPARATION, f"unreadable ({_first_line(error)})") from None
    if absent:
        return ""
    text = reader.string(INPUT_PREPARATION)
    try:
        preparation = InputPreparation.from_dict(json.loads(text))
    except (ValueError, IpvaeError) as error:
        raise _fail(INPUT_PREPARATION, f"not an input preparation ({shown(error, 100)})") from None
    if preparation.n_inputs != n_inputs:
        raise _fail(INPUT_PREPARATION, f"shape {preparation.shape} does not make the {n_inputs} inputs")
    return text


def _check_sampler_table(cdf: np.ndarray, spec: FixedPointSpec, neuron: NeuronModel) -> None:
    """The stored table is the one the spec implies for the neuron (Poisson: floor(P(N <= n | lambda_idx) * 2**24)),
    up to one LSB."""
    try:
        check_memory(cdf.size * CDF_CHECK_BYTES_PER_ENTRY, f"checking the sampler table {cdf.shape}")
    except ResourceLimitError as error:
        raise _fail(f"{NEURON}/cdf", str(error)) from None
    expected = neuron.build_table(spec).astype(np.int64)  # [n_idx, cap]
    worst = int(np.abs(cdf.astype(np.int64) - expected).max(initial=0))
    if worst > SAMPLER_TABLE_TOLERANCE:
        raise _fail(f"{NEURON}/cdf", f"differs from the {neuron.name} table the spec implies by up to {worst} LSBs "
                    f"(at most {SAMPLER_TABLE_TOLERANCE} allowed)")


def _check_decoder(phi: np.ndarray, decoder: QuantizedMatrix) -> None:
    """phi is what the decoder mantissas were rounded from (max-abs rule): within half an LSB of m * 2**e."""
    step = 2.0 ** decoder.exponent
    error = np.abs(phi.astype(np.float64) - decoder.dequantize())  # [M, K]
    allowed = 0.5 * step * (1.0 + DECODER_ROUNDING_SLACK) + np.abs(phi.astype(np.float64)) * np.finfo(np.float32).eps
    if np.any(error > allowed):
        raise _fail(f"{DECODER}/phi", f"differs from the quantized decoder by up to {float(error.max()):.3g} "
                    f"(more than half an LSB, {0.5 * step:.3g})")


def _check_bounds(model: IntegerModel) -> None:
    bounds = accumulator_bounds(model)
    paths = {
        "ff_dot": f"{DENSE}/weight", "ff_out": f"{DENSE}/weight_exp",
        "rec_dot": f"{DENSE}/weight_rec", "rec_out": f"{DENSE}/weight_rec_exp", "neuron_sum": f"{NEURON}/bias",
    }
    for name, bound in bounds.items():
        if name.endswith("_dot") and not model.spec.lava_compatible:
            continue
        if bound > INT32_MAX:
            raise _fail(paths[name], f"worst-case {name} = {bound} overflows int32")


def read_model(path: str | Path, expected_sha256: str | None = None) -> ExportedModel:
    """Read and validate an export; raises ExportFormatError (one line, naming the field) on any problem.

    The stored content hash detects accidental damage only: whoever edits a file can store a new hash.
    ``expected_sha256``, a hash the user trusts (printed by ``ipvae export``), makes the file the one
    that was exported: any other content is refused.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ExportFormatError(f"{shown(path)} is a folder, not an export file (give the .h5 file written by 'ipvae export')")
        if not path.is_file():
            raise ExportFormatError(f"{shown(path)}: no such file")
    except OSError as error:  # a name too long for the file system
        raise ExportFormatError(f"{shown(path)}: {error.strerror or type(error).__name__}") from None
    try:
        file = h5py.File(path, "r")
    except Exception as error:
        raise ExportFormatError(f"{shown(path)}: not a readable HDF5 file ({shown(_first_line(error), 100)})") from None
    try:
        with file:
            exported = _read_all(_Reader(file))
    except ExportFormatError as error:
        raise ExportFormatError(f"{shown(path)}: {error}") from None
    except Exception as error:  # a damaged file can make h5py fail anywhere; still one line
        raise ExportFormatError(f"{shown(path)}: damaged HDF5 file ({shown(_first_line(error), 100)})") from None
    if expected_sha256 is not None and exported.metadata.content_sha256 != expected_sha256.lower():
        raise ExportFormatError(
            f"{shown(path)}: content sha256 {exported.metadata.content_sha256[:16]}... is not the expected "
            f"{expected_sha256[:16]}...: not the file you trust"
        )
    return exported

