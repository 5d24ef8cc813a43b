"""The checkpoint reader that cannot execute code (ipvae.train.importers.safe_torch_zip).

Oracles: torch.load of files these tests made themselves (a round trip must be exact), marker files that a
planted pickle's os.system would create (they must not appear), and the refusal line naming what was found.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ipvae.train.importers.safe_torch_zip import MAX_PICKLE_BYTES, UnsafeCheckpoint, load_torch_zip


class _Planted:
    """A pickle payload that runs a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _replace_entry(path: Path, suffix: str, payload: bytes) -> None:
    """Rewrite one entry (the one whose name ends with ``suffix``) of a zip archive."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            target.writestr(info, payload if info.filename.endswith(suffix) else data)


def test_state_dict_round_trips_exactly(tmp_path):
    generator = torch.Generator().manual_seed(0)
    square = torch.randn(4, 5, generator=generator)
    state = collections.OrderedDict(
        weight=torch.randn(3, 4, generator=generator),
        transposed=square.T,  # non-contiguous strides
        row=square[2],  # an offset into a shared storage
        scalar=torch.tensor(2.5),
        counts=torch.arange(7, dtype=torch.int32)[2:],
        half=torch.randn(3, generator=generator).half(),
        wide=torch.randn(2, 2, generator=generator).double(),
        flags=torch.tensor([True, False]),
        bf16=torch.randn(3, generator=generator).bfloat16(),
        parameter=torch.nn.Parameter(torch.ones(2)),
        empty=torch.zeros(0, 3),
    )
    saved = {"model": state, "metadata": {"step": np.int64(300), "loss": np.float64(1.25), "mean": np.float32(0.5),
                                          "labels": ["a", "b"], "pair": (1, 2.0), "none": None, "set": {1, 2}}}
    path = tmp_path / "state.pt"
    torch.save(saved, path)
    expected = torch.load(path, weights_only=False)  # this test's own file
    loaded = load_torch_zip(path)
    assert list(loaded["model"]) == list(expected["model"])
    for name, tensor in expected["model"].items():
        reference = tensor.detach().float() if tensor.dtype == torch.bfloat16 else tensor.detach()
        assert loaded["model"][name].shape == tuple(reference.shape), name
        assert loaded["model"][name].dtype == reference.numpy().dtype, name
        np.testing.assert_array_equal(loaded["model"][name], reference.numpy(), err_msg=name)
    assert loaded["metadata"] == expected["metadata"]
    assert type(loaded["metadata"]["step"]) is np.int64 and type(loaded["metadata"]["mean"]) is np.float32


def test_planted_reduce_in_a_torch_archive_executes_nothing(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "planted.pt"
    torch.save({"model": {"w": torch.ones(2)}, "metadata": _Planted(marker)}, path)
    with pytest.raises(UnsafeCheckpoint, match=r"posix\.system|os\.system") as refusal:
        load_torch_zip(path)
    assert not marker.exists()
    assert "\n" not in str(refusal.value) and "nothing was executed" in str(refusal.value)


@pytest.mark.parametrize("callable_name", ["eval", "getattr", "exec"])
def test_builtins_that_run_code_are_refused(tmp_path, callable_name):
    path = tmp_path / "gadget.pt"
    torch.save({"w": torch.ones(1)}, path)
    gadget = f"cbuiltins\n{callable_name}\n(S'print(1)'\ntR.".encode()
    _replace_entry(path, "/data.pkl", gadget)
    with pytest.raises(UnsafeCheckpoint, match=f"builtins.{callable_name}"):
        load_torch_zip(path)


def test_plain_pickle_is_refused_unread(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(_Planted(marker), protocol=2))
    with pytest.raises(UnsafeCheckpoint, match="plain pickle"):
        load_torch_zip(path)
    assert not marker.exists()


def test_torchscript_archive_is_refused(tmp_path):
    source = tmp_path / "scripted.py"
    source.write_text(textwrap.dedent("""
        import sys, torch
        class AddOne(torch.nn.Module):
            def forward(self, x):
                return x + 1
        torch.jit.save(torch.jit.script(AddOne()), sys.argv[1])
    """))
    path = tmp_path / "scripted.pt"
    subprocess.run([sys.executable, str(source), str(path)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    with pytest.raises(UnsafeCheckpoint, match="TorchScript"):
        load_torch_zip(path)


def test_truncated_archive_is_one_line(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnsafeCheckpoint, match="corrupt or truncated") as refusal:
        load_torch_zip(path)
    assert "\n" not in str(refusal.value)


def test_strides_that_overrun_the_storage_are_refused(tmp_path):
    path = tmp_path / "overrun.pt"
    torch.save({"w": torch.ones(4)}, path)
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        payload = archive.read(name)
    # the pickle stores size (4,) and stride (1,) as small ints; make the stride 1000
    stride_one = b"K\x04\x85q"  # BININT1 4, TUPLE1 (size)
    assert payload.count(stride_one) >= 1
    tampered = payload.replace(b"K\x04\x85", b"K\x04\x85", 1)
    tampered = tampered.replace(b"K\x01\x85", b"M\xe8\x03\x85", 1)  # stride (1,) -> (1000,)
    assert tampered != payload
    _replace_entry(path, "/data.pkl", tampered)
    with pytest.raises(UnsafeCheckpoint, match="overruns its storage"):
        load_torch_zip(path)


def test_storage_size_must_match_its_reference(tmp_path):
    path = tmp_path / "short.pt"
    torch.save({"w": torch.ones(8)}, path)
    _replace_entry(path, "/data/0", b"\x00" * 4)  # 1 float where the reference declares 8
    with pytest.raises(UnsafeCheckpoint, match="holds 4 bytes"):
        load_torch_zip(path)


def test_oversized_tensor_refused_before_reading(tmp_path):
    path = tmp_path / "big.pt"
    torch.save({"w": torch.ones(1000)}, path)
    with pytest.raises(UnsafeCheckpoint, match="exceeds the limit"):
        load_torch_zip(path, max_tensor_bytes=100)


def test_oversized_pickle_refused(tmp_path, monkeypatch):
    import ipvae.train.importers.safe_torch_zip as module

    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, path)
    monkeypatch.setattr(module, "MAX_PICKLE_BYTES", 10)
    with pytest.raises(UnsafeCheckpoint, match="data.pkl is"):
        load_torch_zip(path)
    assert MAX_PICKLE_BYTES > 10


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("hello")
    with pytest.raises(UnsafeCheckpoint, match="not a torch.save zip"):
        load_torch_zip(path)
