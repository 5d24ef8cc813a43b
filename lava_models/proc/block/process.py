"""PoissonDenseBlock: the iP-VAE layer as one hierarchical Lava Process.

Same structure and attribute names as lava-dl netx's ``RecurrentDense`` block (``synapse``,
``synapse_rec``, ``neuron``, ports ``inp`` / ``out``), with two differences the fixed-point spec
requires (docs/fixed_point.md, section 4.2; docs/lava.md explains why netx's block is not used):
each Dense gets its own weight exponent, sign mode and message bits.
"""

from __future__ import annotations

import typing as ty

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.proc.dense.process import Dense

from ipvae.lava.proc.poisson.process import PoissonNeuron


class PoissonDenseBlock(AbstractProcess):
    """Feed-forward ``Dense`` (input -> neurons) + lateral ``Dense`` (neurons -> neurons) + PoissonNeuron.

    Realizes ``a_in(tau) = W_ff s_in(tau-1) + W_rec z(tau-1)`` into the neuron's single ``a_in`` port
    (Lava sums the two Dense outputs), and ``out = z``.

    Parameters
    ----------
    synapse : dict
        Keyword arguments of the feed-forward ``lava.proc.dense.process.Dense`` (weights [K, M],
        weight_exp, num_weight_bits, sign_mode, num_message_bits).
    synapse_rec : dict
        Keyword arguments of the lateral ``Dense`` (weights [K, K], ...).
    neuron : dict
        Keyword arguments of :class:`PoissonNeuron` (shape, u_prior, bias, ...).

    Ports: ``inp`` [M] (graded input spikes), ``out`` [K] (graded spike counts), ``u_out`` [K]
    (potentials, simulation only).
    """

    def __init__(
        self,
        *,
        synapse: dict,
        synapse_rec: dict,
        neuron: dict,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        super().__init__(name=name, log_config=log_config)
        self.synapse = Dense(**synapse)
        self.synapse_rec = Dense(**synapse_rec)
        self.neuron = PoissonNeuron(**neuron)
        n_latents = self.neuron.a_in.shape
        if self.synapse.a_out.shape != n_latents or self.synapse_rec.a_out.shape != n_latents:
            raise ValueError(
                f"synapse outputs {self.synapse.a_out.shape} / {self.synapse_rec.a_out.shape} "
                f"do not match the {n_latents[0]} neurons"
            )
        if self.synapse_rec.s_in.shape != n_latents:
            raise ValueError(f"lateral synapse takes {self.synapse_rec.s_in.shape[0]} inputs, not {n_latents[0]}")
        self.shape = n_latents
        self.inp = InPort(shape=self.synapse.s_in.shape)
        self.out = OutPort(shape=n_latents)
        self.u_out = OutPort(shape=n_latents)
        self.inp.connect(self.synapse.s_in)
        self.synapse.a_out.connect(self.neuron.a_in)
        self.neuron.s_out.connect(self.synapse_rec.s_in)
        self.synapse_rec.a_out.connect(self.neuron.a_in)
        self.neuron.s_out.connect(self.out)
        self.neuron.u_out.connect(self.u_out)
