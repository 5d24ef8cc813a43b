"""Crafted inputs for the hostile-input tests: code-running payloads, a tiny trained run, a tiny export,
and the oracle every bad input must meet (one printable line of at most ~300 characters, non-zero exit)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Tuple

import torch

from ipvae.cli import main

MESSAGE_LIMIT = 300
TINY_RUN_CONFIG = {"model": {"n_latents": 8},
                   "train": {"data": "bars", "train_limit": 200, "epochs": 1, "batch_size": 20, "t_train": 4, "seed": 5,
                             "checkpoint_every_steps": 1}}


class _SystemCall:
    """A pickle whose loading runs a shell command (``__reduce__`` -> os.system)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def pickle_payload(marker: Path) -> bytes:
    """A pickle that creates ``marker`` (through os.system) when it is unpickled."""
    return pickle.dumps({"step": 3, "weights": _SystemCall(f"touch '{marker}'")})


class _FileWriter(torch.nn.Module):
    """A TorchScript module whose ``__setstate__`` creates a file: it runs when the archive is loaded."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.blob = torch.zeros(1, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.marker, self.blob, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.training = state[2]
        self.blob = torch.from_file(state[0], shared=True, size=1, dtype=torch.uint8)  # creates the file


def torchscript_payload(marker: Path, scratch: Path) -> bytes:
    """A TorchScript archive (torch.jit.script + torch.jit.save) that creates ``marker`` when loaded."""
    path = scratch / "payload.pt"
    torch.jit.save(torch.jit.script(_FileWriter(str(marker))), str(path))
    return path.read_bytes()


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``ipvae argv`` in this process: (exit code, stderr); argparse's SystemExit counts as an exit."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line_refusal(code: int, err: str) -> str:
    """The oracle: a non-zero exit and one printable line of at most MESSAGE_LIMIT characters, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err[:2000]
    assert len(lines[0]) <= MESSAGE_LIMIT, lines[0]
    assert lines[0].isprintable(), repr(lines[0])
    return lines[0]
