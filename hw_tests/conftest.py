"""Loihi 2 hardware tests: the sim_tests parity suite with ``Loihi2HwCfg``.

They need Intel's lava-loihi (distributed to INRC members, not on PyPI) and a reachable Loihi 2
system; without them every test here is skipped and the reason is printed at the end of the run.
Host selection: SLURM when lava-loihi reports it available (``lava.utils.loihi.use_slurm_host``),
else ``IPVAE_LOIHI_HOST=<address>`` for a directly attached Kapoho Point (``use_ethernet_host``).
"""

from __future__ import annotations

import os

import pytest

HOST_VARIABLE = "IPVAE_LOIHI_HOST"


def loihi2_unavailable_reason() -> str | None:
    """None when a Loihi 2 run can be attempted, else why not (one line)."""
    try:
        from lava.utils import loihi
    except ImportError as error:
        return f"lava.utils.loihi is not importable ({error})"
    if not loihi.is_installed():
        return "lava-loihi is not installed (Intel's INRC package; Loihi 2 runs need it and a Loihi 2 system)"
    try:
        from lava.utils import slurm

        if slurm.is_available():
            loihi.use_slurm_host()
        elif os.environ.get(HOST_VARIABLE):
            loihi.use_ethernet_host(os.environ[HOST_VARIABLE])
        else:
            return f"lava-loihi is installed but no Loihi 2 host: no SLURM, and {HOST_VARIABLE} is not set"
    except Exception as error:  # host probing failed: report, do not crash the suite
        return f"no usable Loihi 2 host ({type(error).__name__}: {error})"
    return None


def poisson_neuron_has_loihi2_model() -> bool:
    """Whether any ProcessModel of PoissonNeuron runs on a Loihi 2 neurocore (a microcode model)."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
    from lava.magma.core.resources import Loihi2NeuroCore

    from ipvae.lava.proc.poisson.process import PoissonNeuron

    probe = PoissonNeuron(shape=(1,), u_prior=[0], bias=[0], u_min=-1, u_max=1, n_steps=1, max_spike_count=1, seed=0)
    models = ProcGroupDiGraphs._find_proc_models(probe)
    return any(issubclass(resource, Loihi2NeuroCore) for model in models for resource in getattr(model, "required_resources", []))


UNAVAILABLE = loihi2_unavailable_reason()


def pytest_terminal_summary(terminalreporter) -> None:
    if UNAVAILABLE is not None:
        terminalreporter.write_line(f"hw_tests skipped: {UNAVAILABLE}")


@pytest.fixture
def loihi2_run_config():
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    if not poisson_neuron_has_loihi2_model():
        pytest.xfail("PoissonNeuron has no Loihi 2 microcode ProcessModel yet (docs/lava.md: not mapped to hardware)")
    from lava.magma.core.run_configs import Loihi2HwCfg

    return Loihi2HwCfg(select_tag="fixed_pt")
