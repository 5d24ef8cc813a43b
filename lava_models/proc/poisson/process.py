"""PoissonNeuron: the membrane-potential neuron of the iterative Poisson VAE, as a Lava Process."""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var

from ipvae.export.neurons.poisson import NAME as POISSON
from ipvae.export.neurons.registry import neuron_names
from ipvae.export.spec import MAX_LEAK_SHIFT

# Placeholder shape of the sampler table for the floating_pt model, which computes exact Poisson CDFs.
NO_TABLE_SHAPE = (1, 1)


class PoissonNeuron(AbstractProcess):
    """Population of iP-VAE neurons: u is a log firing rate, the output a Poisson spike count per step.

    The population holds B images side by side (``shape = (B, K)``, row b = one image), and works in
    windows of ``n_steps + 1`` timesteps (window ``n`` of a run occupies global timesteps
    ``n (T+1) + 1 .. (n+1)(T+1)`` and holds images ``image_offset + n B + b``):

    - window timestep 1:  u := u_prior, drive := 0 (what arrives, the previous window's traffic, is discarded)
    - window timestep tau = 2..T+1:  drive += drive_in;
      u := clamp(u + ff(drive) + a_in + self(z_last) + bias - leak(u - u_prior))
      with ff(drive) = floor(drive * 2**ff_exponent_k) (fixed_pt; one exponent per neuron) or drive (floating_pt),
      self(z_last) = floor(self_weight_k * z_last * 2**self_exponent) the self-inhibition from the neuron's own
      count of the previous timestep (fixed_pt exports of format version 2; 0 otherwise), and the restoring
      force leak(d) = (d + 2**(n-1)) >> n for ``leak_shift`` n (fixed_pt) or ``leak`` * d (floating_pt); 0
      without a leak
    - every timestep: z ~ min(Poisson(exp(u)), max_spike_count), drawn by inverse-CDF sampling from
      the counter-based uniform U = ipvae.export.rng.uniform24(seed, image_index, step, neuron) with
      step = tau - 1, and sent on ``s_out`` as a graded spike whose payload is the count z.
    - optional stopping rule (``stop_window`` > 0, ipvae.export.events): once an image has converged its
      neurons neither update nor sample for the rest of the window (z = 0, u held).

    ``drive_in`` carries the feed-forward synapse's row sums of the input *events* (sigma-delta
    changes; a static image is one event per non-zero pixel at the start of the window); the neuron
    holds their sum in the ``drive`` register (docs/fixed_point.md, section 11). ``a_in`` is the
    lateral term ``-lr Phi^T D Phi z`` (one-timestep Dense delay).

    The two ProcessModels differ in arithmetic (see docs/lava.md and docs/fixed_point.md):

    - ``floating_pt``: u real (float64); clamp = the float model's soft upper clamp
      ``u_max - softplus(u_max - y)`` (or, with ``hard_upper_clamp``, saturation at u_max, as the
      PyTorch model with the same flag) then a hard floor at ``u_min``; z from the exact Poisson CDF of
      ``exp(u)`` (``cdf`` unused).
    - ``fixed_pt``: u integer in u-LSBs (``u_frac_bits`` fractional bits), sum exact then saturated to
      [u_min, u_max], the leak one rounded arithmetic shift of u - u_prior; z by table lookup
      ``cdf[clip((u - u_min) >> (F - G), 0, n_idx - 1)]``, bit-exact to the integer reference
      ``ipvae.export.reference.run_reference``.

    Parameters
    ----------
    shape : tuple of int
        ``(B, K)``: images side by side, neurons per image.
    u_prior : numpy.ndarray
        Initial potential of every window and the potential the leak pulls towards, [K] (float log
        rates, or int u-LSBs for fixed_pt).
    bias : numpy.ndarray
        Drive added every step, [K] (``-lr b``; int u-LSBs for fixed_pt).
    ff_exponent : int or numpy.ndarray, optional
        fixed_pt: exponent e_ff applied to the held drive register, one for all neurons or one per neuron [K].
        Default 0.
    self_weight : numpy.ndarray, optional
        fixed_pt: the self-inhibition mantissas [K] (the lateral diagonal held apart; the lateral Dense then
        has a zero diagonal). Default: none (zeros).
    self_exponent : int, optional
        fixed_pt: the exponent of ``self_weight``. Default 0.
    stop_window, stop_tolerance : int, optional
        The stopping rule of ipvae.export.events (0: never stop). Default 0.
    u_min, u_max : float or int
        Clamp bounds of u (u-LSBs for fixed_pt).
    n_steps : int
        T, inference steps per image; a window is T + 1 timesteps.
    max_spike_count : int
        Cap of the spike count per neuron and step (payload of the graded spike).
    seed : int
        Key of the counter-based generator, 0 <= seed < 2**64 (kept in proc_params: it may not fit int64).
    image_offset : int, optional
        Global index of the first image of the run (the generator key); default 0.
    cdf : numpy.ndarray, optional
        fixed_pt: uint32 inverse-CDF table [n_idx, max_spike_count] (values 0..2**24).
    u_frac_bits : int, optional
        fixed_pt: F, fractional bits of u. Default 12.
    sampler_frac_bits : int, optional
        fixed_pt: G, fractional bits of u seen by the sampler (G <= F). Default 5.
    num_message_bits : int, optional
        Payload bits of the output graded spike (bits of 0..max_spike_count). Default 4.
    hard_upper_clamp : bool, optional
        floating_pt: saturate u at u_max (as fixed_pt always does) instead of the soft clamp. Default False.
    leak : float, optional
        floating_pt: fraction of u - u_prior removed every step, in [0, 1) (``ModelConfig.leak``). Default 0.
    leak_shift : int, optional
        fixed_pt: n, the leak 2**-n applied as ``(u - u_prior + 2**(n-1)) >> n``; 0 (default): no leak.
    neuron : str, optional
        The neuron model whose step functions both ProcessModels call (ipvae.export.neurons.registry; an
        export's ``layer/1/neuron/type``). Default ``"POISSON"``, the dynamics described above.

    Ports: ``a_in`` (InPort [B, K], lateral input), ``drive_in`` (InPort [B, K], feed-forward row
    sums of input events), ``s_out`` (OutPort [B, K], graded spike counts), ``u_out`` (OutPort
    [B, K], the potential each timestep, for observation in simulation; not a hardware port).
    Vars: ``u``, ``drive``, ``z_last`` (state), ``u_prior``, ``bias``, ``cdf``, ``ff_exponent``, ``self_weight``.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        u_prior: np.ndarray,
        bias: np.ndarray,
        u_min: float,
        u_max: float,
        n_steps: int,
        max_spike_count: int,
        seed: int,
        image_offset: int = 0,
        cdf: ty.Optional[np.ndarray] = None,
        u_frac_bits: int = 12,
        sampler_frac_bits: int = 5,
        num_message_bits: int = 4,
        hard_upper_clamp: bool = False,
        leak: float = 0.0,
        leak_shift: int = 0,
        ff_exponent: ty.Union[int, np.ndarray] = 0,
        self_weight: ty.Optional[np.ndarray] = None,
        self_exponent: int = 0,
        stop_window: int = 0,
        stop_tolerance: int = 0,
        neuron: str = POISSON,
        name: ty.Optional[str] = None,
        log_config: ty.Optional[LogConfig] = None,
    ) -> None:
        _check_neuron_arguments(shape, u_prior, bias, u_min, u_max, n_steps, max_spike_count, seed, image_offset, cdf)
        _check_leak_arguments(leak, leak_shift)
        if neuron not in neuron_names():
            raise ValueError(f"unknown neuron {neuron!r} (registered: {', '.join(neuron_names())})")
        super().__init__(
            shape=shape,
            n_steps=int(n_steps),
            max_spike_count=int(max_spike_count),
            seed=int(seed),
            image_offset=int(image_offset),
            u_min=u_min,
            u_max=u_max,
            u_frac_bits=int(u_frac_bits),
            sampler_frac_bits=int(sampler_frac_bits),
            num_message_bits=int(num_message_bits),
            hard_upper_clamp=bool(hard_upper_clamp),
            leak=float(leak),
            leak_shift=int(leak_shift),
            self_exponent=int(self_exponent),
            stop_window=int(stop_window),
            stop_tolerance=int(stop_tolerance),
            neuron=str(neuron),
            name=name,
            log_config=log_config,
        )
        table = np.zeros(NO_TABLE_SHAPE, dtype=np.int64) if cdf is None else np.asarray(cdf, dtype=np.int64)
        shape = tuple(int(n) for n in shape)
        population = np.broadcast_to(np.asarray(u_prior), shape)  # [B, K]
        self.a_in = InPort(shape=shape)
        self.drive_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u_out = OutPort(shape=shape)
        n_latents = shape[1]
        ff_exponents = np.broadcast_to(np.asarray(ff_exponent, dtype=np.int64), (n_latents,)).copy()  # [K]
        self_weights = np.zeros(n_latents, np.int64) if self_weight is None else np.asarray(self_weight, np.int64)
        if self_weights.shape != (n_latents,):
            raise ValueError(f"self_weight must have shape {(n_latents,)}, got {self_weights.shape}")
        self.u = Var(shape=shape, init=population.copy())
        self.drive = Var(shape=shape, init=np.zeros(shape, dtype=population.dtype))
        self.u_prior = Var(shape=(shape[1],), init=np.asarray(u_prior).copy())
        self.bias = Var(shape=(shape[1],), init=np.asarray(bias).copy())
        self.cdf = Var(shape=table.shape, init=table)
        self.ff_exponent = Var(shape=(n_latents,), init=ff_exponents)
        self.self_weight = Var(shape=(n_latents,), init=self_weights)
        self.z_last = Var(shape=shape, init=np.zeros(shape, dtype=population.dtype))  # the counts sent last timestep

    @property
    def n_steps(self) -> int:
        return self.proc_params["n_steps"]

    @property
    def batch(self) -> int:
        return self.proc_params["shape"][0]


def _check_neuron_arguments(shape, u_prior, bias, u_min, u_max, n_steps, max_spike_count, seed, image_offset, cdf):
    """Reject inconsistent construction arguments with a ValueError naming the argument."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (B, K) with B, K >= 1, got {shape}")
    for name, array in (("u_prior", u_prior), ("bias", bias)):
        if np.shape(array) != (shape[1],):
            raise ValueError(f"{name} must have shape {(shape[1],)}, got {np.shape(array)}")
        if not np.all(np.isfinite(np.asarray(array, dtype=np.float64))):
            raise ValueError(f"{name} contains NaN or Inf")
    if not u_min < u_max:
        raise ValueError(f"u_min ({u_min}) must be below u_max ({u_max})")
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be positive, got {n_steps}")
    if int(max_spike_count) < 1:
        raise ValueError(f"max_spike_count must be positive, got {max_spike_count}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in 0..2**64-1, got {seed}")
    if int(image_offset) < 0:
        raise ValueError(f"image_offset must be non-negative, got {image_offset}")
    if cdf is not None and (np.ndim(cdf) != 2 or np.shape(cdf)[1] != int(max_spike_count)):
        raise ValueError(f"cdf must be [n_idx, {max_spike_count}], got shape {np.shape(cdf)}")


def _check_leak_arguments(leak, leak_shift):
    """Reject a leak outside [0, 1) or a leak shift outside 0..MAX_LEAK_SHIFT (ValueError naming it)."""
    if not (np.isfinite(leak) and 0.0 <= float(leak) < 1.0):
        raise ValueError(f"leak must be in [0, 1), got {leak}")
    if isinstance(leak_shift, bool) or int(leak_shift) != leak_shift or not 0 <= int(leak_shift) <= MAX_LEAK_SHIFT:
        raise ValueError(f"leak_shift must be an integer in 0..{MAX_LEAK_SHIFT}, got {leak_shift}")
