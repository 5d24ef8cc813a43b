"""Tests for ipvae.data: MNIST/IDX loading, rotations, whitened natural patches, bars, dispatch."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from ipvae.errors import DatasetUnavailable, IpvaeError
from ipvae.data import (
    DATASETS,
    VALIDATION_IMAGES,
    get_dataset,
    image_shape,
    load_fashion_mnist,
    load_mnist,
    natural_image_names,
    natural_patches,
    planted_dictionary_data,
    read_idx,
    rotate_images,
    rotated_mnist,
    rotating_sequence,
    split_image_names,
    whiten_image,
)
from ipvae.data.natural import load_gray_image

# Canonical MNIST digit counts (LeCun et al.), digits 0..9.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
SIDE = 28
# grid_sample evaluates pixel centres in float32: a quarter turn lands on pixel centres up to ~3e-6.
ROTATION_ATOL = 1e-5


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    """Independent IDX writer: magic (0, 0, type, ndim), big-endian uint32 sizes, big-endian data."""
    big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian).tobytes()


def write_mnist_dir(directory, images: np.ndarray, labels: np.ndarray, prefix: str = "t10k", gz: bool = False) -> None:
    suffix = ".gz" if gz else ""
    for name, payload in (
        (f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images, 0x08)),
        (f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels, 0x08)),
    ):
        (directory / name).write_bytes(gzip.compress(payload) if gz else payload)


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


# --- MNIST -------------------------------------------------------------------------------------


@pytest.mark.parametrize("split, counts", [("test", MNIST_TEST_COUNTS), ("train", MNIST_TRAIN_COUNTS)])
def test_mnist_shapes_values_and_label_counts(split, counts):
    x, y = load_mnist(split)
    assert x.shape == (sum(counts), 784) and x.dtype == torch.float32
    assert y.shape == (sum(counts),) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # white is exactly 255/255
    scaled = x * 255
    assert torch.allclose(scaled, scaled.round(), atol=1e-4)  # original bytes
    assert torch.bincount(y, minlength=10).tolist() == counts


def test_mnist_returns_fresh_tensors():
    x, y = load_mnist("test")
    x_first = x[0].clone()
    x[0] += 5.0
    y[0] = -1
    x_again, y_again = load_mnist("test")
    assert torch.equal(x_again[0], x_first) and y_again[0] >= 0


# --- IDX -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_matches_bundled_mnist(tmp_path, mnist_test, gz):
    x, y = mnist_test
    n = 64
    images = torch.round(x[:n] * 255).to(torch.uint8).numpy().reshape(n, SIDE, SIDE)
    write_mnist_dir(tmp_path, images, y[:n].numpy().astype(np.uint8), gz=gz)
    x_dir, y_dir = load_mnist("test", data_dir=tmp_path)
    assert torch.equal(x_dir, x[:n]) and torch.equal(y_dir, y[:n])


@pytest.mark.parametrize(
    "dtype, code",
    [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)],
)
def test_read_idx_round_trips_every_type(tmp_path, dtype, code):
    values = np.arange(2 * 3 * 5) - (0 if dtype == np.uint8 else 7)  # negatives where the type allows
    array = values.astype(dtype).reshape(2, 3, 5)
    path = tmp_path / "a.idx"
    path.write_bytes(idx_bytes(array, code))
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and np.array_equal(back, array)


def test_corrupt_idx_files_raise_ipvae_error_naming_the_file(tmp_path):
    images = np.zeros((4, SIDE, SIDE), np.uint8)
    labels = np.arange(4, dtype=np.uint8)
    write_mnist_dir(tmp_path, images, labels)
    image_file = tmp_path / "t10k-images-idx3-ubyte"
    good = image_file.read_bytes()
    corruptions = {
        "truncated": good[:-10],
        "bad magic": b"\x01\x02" + good[2:],
        "unknown type": good[:2] + b"\x07" + good[3:],
        "header cut": good[:6],
        "bad gzip": b"\x1f\x8b" + b"garbage" * 5,
    }
    for what, payload in corruptions.items():
        image_file.write_bytes(payload)
        with pytest.raises(IpvaeError, match="t10k-images-idx3-ubyte") as info:
            load_mnist("test", data_dir=tmp_path)
        assert "\n" not in str(info.value), what
    image_file.write_bytes(good)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels[:3], 0x08))
    with pytest.raises(IpvaeError, match="3 labels for 4 images"):
        load_mnist("test", data_dir=tmp_path)


def test_missing_idx_files_raise_dataset_unavailable(tmp_path):
    with pytest.raises(DatasetUnavailable, match="t10k-images-idx3-ubyte"):
        load_mnist("test", data_dir=tmp_path)


def test_fashion_mnist_missing_names_the_package_and_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetUnavailable) as info:
        load_fashion_mnist("train", data_dir=missing)
    message = str(info.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message and str(missing) in message


def test_fashion_mnist_reads_idx_directory(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, SIDE, SIDE), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5).astype(np.uint8)
    write_mnist_dir(tmp_path, images, labels, prefix="train", gz=True)
    x, y = load_fashion_mnist("train", data_dir=tmp_path)
    assert torch.equal(x, torch.from_numpy(images.reshape(5, -1)).float() / 255)
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()


# --- rotation ------------------------------------------------------------------------------------


def as_grid(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, SIDE, SIDE)


def test_rotation_quarter_turns_match_rot90(mnist_test):
    x = mnist_test[0][:200]
    for quarter_turns in (1, 2, 3, -1):
        expected = torch.rot90(as_grid(x), quarter_turns, dims=(1, 2)).reshape(-1, SIDE * SIDE)
        assert torch.allclose(rotate_images(x, 90.0 * quarter_turns), expected, atol=ROTATION_ATOL)


def test_rotation_is_counter_clockwise():
    image = torch.zeros(SIDE, SIDE)
    image[2, SIDE - 3] = 1.0  # top right
    rotated = as_grid(rotate_images(image.reshape(1, -1), 90.0))[0]
    assert rotated[2, 2] == pytest.approx(1.0, abs=ROTATION_ATOL)  # now top left


def test_rotation_identity_full_turn_and_per_image_angles(mnist_test):
    x = mnist_test[0][:100]
    assert torch.allclose(rotate_images(x, 0.0), x, atol=ROTATION_ATOL)
    assert torch.allclose(rotate_images(x, 360.0), x, atol=1e-4)
    angles = torch.tensor([0.0, 90.0, 180.0, 270.0]).repeat(25)  # [100]
    expected = torch.stack([torch.rot90(img, int(a) // 90, dims=(0, 1)) for img, a in zip(as_grid(x), angles)])
    assert torch.allclose(rotate_images(x, angles), expected.reshape(100, -1), atol=ROTATION_ATOL)
    # A generic angle keeps the mass roughly (a centred digit stays inside the frame).
    turned = rotate_images(x, 33.0)
    assert torch.allclose(turned.sum(1), x.sum(1), rtol=0.05)


def test_rotated_mnist_and_rotating_sequence(mnist_test):
    x, y = rotated_mnist(45.0, split="test", n=10)
    assert x.shape == (10, 784) and torch.equal(y, mnist_test[1][:10])
    assert torch.allclose(x, rotate_images(mnist_test[0][:10], 45.0).clamp(0, 1))
    image = mnist_test[0][0]
    frames = rotating_sequence(image, n_frames=8, degrees_per_frame=15.0)
    assert frames.shape == (8, 784)
    assert torch.equal(frames[0], image)
    assert torch.allclose(frames[3], rotate_images(image[None], 45.0)[0], atol=1e-6)
    half_turn = torch.rot90(as_grid(image)[0], 2).flatten()
    assert torch.allclose(rotating_sequence(image, 7, 90.0)[6], half_turn, atol=ROTATION_ATOL)


# --- natural patches -----------------------------------------------------------------------------


def band_power_ratio(image: np.ndarray, low=(0.01, 0.03), mid=(0.08, 0.12)) -> float:
    """Mean spectral power in a low-frequency ring over a mid-frequency ring (cycles/pixel)."""
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    radius = np.hypot(np.fft.fftfreq(image.shape[0])[:, None], np.fft.fftfreq(image.shape[1])[None, :])

    def ring(lo_hi):
        return power[(radius >= lo_hi[0]) & (radius < lo_hi[1])].mean()

    return ring(low) / ring(mid)


def test_whitening_flattens_the_power_spectrum():
    for name in natural_image_names():
        raw = load_gray_image(name)
        white = whiten_image(raw)
        assert white.shape == raw.shape and white.std() == pytest.approx(1.0)
        # raw ~ 1/f^2 falls steeply; the whitened spectrum is nearly flat below f0.
        assert band_power_ratio(raw) / band_power_ratio(white) > 10, name
        assert band_power_ratio(white) < 10, name


def test_patches_are_zscored_and_mean_free():
    patches = natural_patches("train", n_patches=5000, patch_size=16, seed=0)
    assert patches.shape == (5000, 256) and patches.dtype == torch.float32
    assert torch.allclose(patches.mean(1), torch.zeros(5000), atol=1e-4)
    assert float(patches.std()) == pytest.approx(1.0, abs=0.05)
    assert torch.isfinite(patches).all()
    small = natural_patches("validation", n_patches=100, patch_size=8, seed=0)
    assert small.shape == (100, 64)


def test_train_and_validation_use_disjoint_images():
    train, validation = set(split_image_names("train")), set(split_image_names("validation"))
    assert train and validation and not train & validation
    assert train | validation == set(natural_image_names())
    assert validation == set(VALIDATION_IMAGES) & set(natural_image_names())
    assert len(train) >= 8
    with pytest.raises(IpvaeError):
        natural_patches("test")


def test_patches_are_seeded():
    a = natural_patches("train", n_patches=300, seed=1)
    assert torch.equal(a, natural_patches("train", n_patches=300, seed=1))
    assert not torch.allclose(a, natural_patches("train", n_patches=300, seed=2))
    assert not torch.allclose(a, natural_patches("validation", n_patches=300, seed=1))


# --- bars ----------------------------------------------------------------------------------------


def test_planted_bars_dictionary_and_noise():
    side, noise = 8, 0.05
    data = planted_dictionary_data(4000, side=side, n_active=2.0, noise_std=noise, seed=3)
    k_true = 2 * side
    assert data.x.shape == (4000, side * side) and data.z.shape == (4000, k_true)
    assert data.phi.shape == (side * side, k_true)
    assert data.z.dtype == torch.int64 and int(data.z.min()) >= 0
    atoms = {tuple(column.tolist()) for column in data.phi.T}
    bars = set()
    for index in range(side):
        horizontal, vertical = torch.zeros(side, side), torch.zeros(side, side)
        horizontal[index, :] = 1
        vertical[:, index] = 1
        bars |= {tuple(horizontal.flatten().tolist()), tuple(vertical.flatten().tolist())}
    assert atoms == bars and len(atoms) == k_true
    residual = data.x - data.z.float() @ data.phi.T
    assert float(residual.std()) == pytest.approx(noise, rel=0.05)
    assert float(residual.mean()) == pytest.approx(0.0, abs=5e-3)
    assert float(data.z.sum(1).float().mean()) == pytest.approx(2.0, rel=0.1)  # about n_active bars
    exact = planted_dictionary_data(50, side=4, noise_std=0.0, seed=0)
    assert torch.equal(exact.x, exact.z.float() @ exact.phi.T)
    assert torch.equal(planted_dictionary_data(50, seed=9).x, planted_dictionary_data(50, seed=9).x)


# --- dispatch ------------------------------------------------------------------------------------


def test_dataset_registry():
    assert set(DATASETS) == {"mnist", "fashion_mnist", "natural_patches", "bars"}
    for name in ("mnist", "natural_patches", "bars"):
        for split in ("train", "test"):
            x, y = get_dataset(name, split, seed=0, limit=7)
            height, width = image_shape(name)
            assert x.shape == (7, height * width) and x.dtype == torch.float32
            assert (y is None) == (name != "mnist")
    assert torch.equal(get_dataset("bars", "train", limit=5)[0], get_dataset("bars", "train", limit=9)[0][:5])
    assert not torch.equal(get_dataset("bars", "train", limit=5)[0], get_dataset("bars", "test", limit=5)[0])
    with pytest.raises(IpvaeError, match="mnist, fashion_mnist, natural_patches, bars"):
        get_dataset("cifar", "train")
    with pytest.raises(IpvaeError):
        image_shape("cifar")
    with pytest.raises(IpvaeError):
        get_dataset("mnist", "validation")
