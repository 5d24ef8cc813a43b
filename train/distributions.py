"""Posterior distributions of the iterative VAEs, as small ``torch.distributions`` subclasses.

``PoissonLatent`` (iP-VAE): spike counts ``z ~ Poisson(r)``, parametrised by the membrane potential
``u = log r`` and capped at ``max_count`` (the hardware's spike payload).

    log_prob(z) = z * u - exp(u) - log(z!)                                     (uncapped)
    rsample     = relaxed count sum_j sigmoid((1 - T_j) / tau),   T_j = sum_{i<=j} E_i / r,  E_i ~ Exp(1)

The arrival times T_j of a unit-time Poisson process with rate r are cumulative sums of Exponential
inter-arrival times; the number of arrivals before time 1 is Poisson(r). Replacing the step
function 1[T_j < 1] with a sigmoid of temperature tau makes the count differentiable in r; as
tau -> 0 the relaxed count becomes the exact count (capped at ``max_count`` draws).

KL between Poisson distributions (exact, registered with ``torch.distributions.kl``):

    KL(Pois(r) || Pois(r0)) = r0 * f(r / r0),  f(y) = 1 - y + y log y
                            = r0 - r + r * (u - u0)

Note: the authors' public code multiplies by the posterior rate instead of the prior rate, which is
exp(u - u0) times the true KL; this module uses the exact form (tested against Monte Carlo and scipy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Distribution, Normal, constraints, register_kl


class PoissonLatent(Distribution):
    """Poisson spike counts with log-rate ``u`` (any shape, typically [B, K])."""

    arg_constraints = {"log_rate": constraints.real}
    support = constraints.nonnegative_integer
    has_rsample = True

    def __init__(self, log_rate: Tensor, max_count: int, validate_args: bool | None = None):
        self.log_rate = log_rate  # [B, K]
        self.max_count = int(max_count)
        super().__init__(batch_shape=log_rate.shape, validate_args=validate_args)

    @property
    def rate(self) -> Tensor:
        return self.log_rate.exp()

    @property
    def mean(self) -> Tensor:
        return self.rate

    @property
    def variance(self) -> Tensor:
        return self.rate

    @property
    def capped_mean(self) -> Tensor:
        """E[min(N, c)] = c - sum_{n<c} (c - n) P(N = n), c = max_count (pmf by p_n = p_{n-1} r / n in float64)."""
        cap = self.max_count
        rate = self.log_rate.double().exp()  # [B, K]
        probability = torch.exp(-rate)  # [B, K] P(N = 0)
        shortfall = cap * probability  # [B, K]
        for n in range(1, cap):
            probability = probability * rate / n
            shortfall = shortfall + (cap - n) * probability
        return (cap - shortfall).to(self.log_rate.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        """Uncapped Poisson log-probability of integer counts ``value``."""
        return value * self.log_rate - self.rate - torch.lgamma(value + 1)

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> Tensor:
        """Exact integer counts, min(Poisson(r), max_count)."""
        with torch.no_grad():
            rate = self.rate.expand(self._extended_shape(sample_shape))
            return torch.poisson(rate, generator=generator).clamp_(max=self.max_count)

    def sample_from_first_arrival(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> Tensor:
        """Exact integer counts min(N, max_count), N ~ Poisson(r), drawn as N = 1[E < r] (1 + Poisson(r - E)).

        E ~ Exp(1) is the first arrival of a unit-time Poisson process of rate r (in units of 1/r); the
        process is memoryless, so the arrivals after E in the remaining time are Poisson(r - E). One
        exponential per neuron, then torch.poisson only for the neurons that spike (its cost grows
        with the number of elements and their rates).
        """
        with torch.no_grad():
            rate = self.rate.expand(self._extended_shape(sample_shape)).reshape(-1)  # [N]
            first = draw_exponential(torch.empty_like(rate), generator)  # [N] E (unit rate, scaled time)
            spiking = flat_nonzero(first < rate)  # [S]
            later = torch.poisson(rate[spiking] - first[spiking], generator=generator)  # [S]
            counts = torch.zeros_like(rate).index_copy_(0, spiking, later.add_(1.0).clamp_(max=self.max_count))
            return counts.reshape(self._extended_shape(sample_shape))

    def rsample(
        self,
        sample_shape=torch.Size(),
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
        fast_noise: bool = False,
    ) -> Tensor:
        """Relaxed counts, differentiable in ``log_rate``; temperature 0 gives exact counts.

        Noise: the inter-arrival times E_1..E_n of every neuron, [n, B, K] (exact counts: torch.poisson).
        ``fast_noise`` draws only what can matter, with the same distribution: E_1 of every neuron, then
        E_2..E_n only for the neurons whose first arrival can matter (``draw_active_arrival_noise``),
        about a fifth of the draws when most neurons are silent; exact counts by
        ``sample_from_first_arrival``. The trainer uses it unless ``TrainConfig.legacy_numerics``.
        ``shard`` (data-parallel training): this batch is rows [start, start + B) of a global batch;
        the noise of the whole global batch is drawn and sliced, so every row gets the same draws
        whatever the number of processes.
        """
        if temperature <= 0.0:
            if shard is not None:
                raise ValueError("exact draws (temperature 0) cannot be sharded over a global batch")
            if fast_noise:
                return self.sample_from_first_arrival(sample_shape, generator=generator)
            return self.sample(sample_shape, generator=generator)
        shape = self._extended_shape(sample_shape)
        log_rate = self.log_rate.expand(shape)  # [B, K]
        with_slope = log_rate.requires_grad and torch.is_grad_enabled()
        with torch.no_grad():
            if fast_noise:
                noise = draw_active_arrival_noise(log_rate, self.max_count, temperature, generator, shard)
                count, slope = _active_count_and_slope(
                    log_rate, torch.exp(-log_rate).reshape(-1), noise.active, noise.units, 1.0 / temperature, with_slope
                )  # [N], [N] or None
            else:
                unit_exponentials = draw_rows((self.max_count, *shape), 1, shard, log_rate, generator, draw_exponential)  # [n, B, K]
                count, slope = _every_arrival_count_and_slope(log_rate, unit_exponentials, temperature, with_slope)
        count = count.reshape(log_rate.shape)  # [B, K]
        if slope is None:
            return count
        return _CountWithSlope.apply(log_rate, count, slope.reshape(log_rate.shape))


class ArrivalNoise(NamedTuple):
    """Unit-rate inter-arrival times of a relaxed count, drawn where they can matter.

    first [B, K]: E_1 of every neuron; active [A]: flat indices (into [B * K]) of the neurons whose
    first arrival E_1 / r can matter at this temperature; units [n, A]: E_1..E_n of those (row 0 is
    their E_1, the rows after it the later draws), one buffer that the sampler overwrites in place.
    A neuron outside ``active`` has every arrival T_j >= T_1 >= 1 + NEGLIGIBLE_LOGIT * tau, where each
    soft step is below exp(-NEGLIGIBLE_LOGIT): its later draws would not change a float count.
    """

    first: Tensor
    active: Tensor
    units: Tensor

    @property
    def later(self) -> Tensor:
        """E_2..E_n of the active neurons, [n - 1, A]."""
        return self.units[1:]

    def dense(self, fill: float = 1.0) -> Tensor:
        """All [n, B, K] inter-arrival times, ``fill`` where a later one was not drawn (any positive
        value gives the same count: those arrivals come after the negligible first one)."""
        n_later = self.later.shape[0]
        flat = self.first.new_full((n_later, self.first.numel()), fill)  # [n - 1, B * K]
        flat[:, self.active] = self.later
        return torch.cat([self.first.reshape(1, *self.first.shape), flat.reshape(n_later, *self.first.shape)])


def draw_active_arrival_noise(
    log_rate: Tensor, max_count: int, temperature: float, generator: torch.Generator | None,
    shard: BatchShard | None = None,
) -> ArrivalNoise:
    """E_1 for every neuron of the (global) batch, then E_2..E_n for the active neurons only.

    The later draws are one [n - 1, A_global] block in the global batch's row-major order; a shard
    takes its columns, found from every rank's active count (``BatchShard.active_offset_and_total``),
    so the draws do not depend on the number of processes. How many numbers are drawn depends on the
    potentials: two runs whose u differ by rounding (thread counts, world sizes) draw the same numbers
    until a first arrival falls between their thresholds, then part (every-arrival noise draws a fixed
    amount).
    """
    with torch.no_grad():
        first = draw_rows(tuple(log_rate.shape), 0, shard, log_rate, generator, draw_exponential)  # [B, K]
        first_arrival = first * torch.exp(-log_rate)  # [B, K] T_1
        active = flat_nonzero(first_arrival < 1.0 + NEGLIGIBLE_LOGIT * temperature)  # [A]
        n_active = active.numel()
        offset, total = (0, n_active) if shard is None else shard.active_offset_and_total(n_active)
        device = generator.device if generator is not None else log_rate.device
        units = torch.empty((max_count, total), dtype=log_rate.dtype, device=device)  # [n, A_global]
        draw_exponential(units[1:], generator)  # E_2..E_n, drawn in place (a contiguous block of rows)
        if shard is not None:
            units = units[:, offset : offset + n_active].contiguous()  # [n, A] this shard's columns
        units = units.to(log_rate.device)
        units[0] = first.reshape(-1).index_select(0, active)  # [A] E_1
    return ArrivalNoise(first=first, active=active, units=units)


@dataclass(frozen=True)
class BatchShard:
    """This process holds rows [start, start + local size) of a global batch of ``global_size`` rows.

    ``exchange_counts`` (needed by the relaxed Poisson sampler's active-neuron noise): given this rank's
    count, every rank's count in rank order (an all-gather of one integer; ``DataParallel.shard``
    provides it)."""

    start: int
    global_size: int
    exchange_counts: Callable[[int], Sequence[int]] | None = None

    def active_offset_and_total(self, count: int) -> tuple[int, int]:
        """(sum of the counts of the ranks before this one, sum over all ranks)."""
        if self.exchange_counts is None:
            raise ValueError("this BatchShard cannot exchange counts with the other ranks (exchange_counts)")
        counts = list(self.exchange_counts(count))
        rows_per_rank = self.global_size // len(counts)
        rank = self.start // rows_per_rank
        return sum(counts[:rank]), sum(counts)


def flat_nonzero(mask: Tensor) -> Tensor:
    """Indices [S] of the True entries of ``mask`` flattened (row-major), int64.

    On the CPU through numpy's flatnonzero: torch 2.3's CPU nonzero takes about 3x as long on the
    [B * K] masks of the training loop, where it runs once per drawn step."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.reshape(-1).nonzero().squeeze(1)


def draw_rows(
    shape: tuple[int, ...],
    row_dim: int,
    shard: BatchShard | None,
    like: Tensor,
    generator: torch.Generator | None,
    fill: Callable[[Tensor, torch.Generator | None], Tensor],
) -> Tensor:
    """A fresh tensor of ``shape`` (dtype and device of ``like``) filled by ``fill(buffer, generator)``,
    a random in-place draw made on the generator's device. With a shard, the draw covers the global
    batch along ``row_dim`` and this shard's rows are returned (contiguous)."""
    device = generator.device if generator is not None else like.device
    if shard is not None:
        global_shape = (*shape[:row_dim], shard.global_size, *shape[row_dim + 1 :])
        drawn = fill(torch.empty(global_shape, dtype=like.dtype, device=device), generator)
        drawn = drawn.narrow(row_dim, shard.start, shape[row_dim]).contiguous()
    else:
        drawn = fill(torch.empty(shape, dtype=like.dtype, device=device), generator)
    return drawn.to(like.device)


def draw_exponential(buffer: Tensor, generator: torch.Generator | None) -> Tensor:
    return buffer.exponential_(generator=generator)


def draw_standard_normal(buffer: Tensor, generator: torch.Generator | None) -> Tensor:
    return buffer.normal_(generator=generator)


def _cumulative_sum_first_dim(values: Tensor) -> Tensor:
    """In-place running sum along dim 0 (several times faster than torch.cumsum on CPU here)."""
    for j in range(1, values.shape[0]):
        values[j] += values[j - 1]
    return values


# A term sigmoid((1 - T) / tau) with T >= 1 + NEGLIGIBLE_LOGIT * tau is below exp(-30) ~ 1e-13, and so
# is its slope term (it decays as exp(-(T - 1) / tau) while T / tau grows only linearly): a neuron whose
# first arrival is that late contributes nothing a float32 count can hold (relative precision 1e-7).
NEGLIGIBLE_LOGIT = 30.0
# Gathering the neurons that can spike pays off on the CPU when at most this fraction of them can.
COMPACT_FRACTION = 0.5


def _soft_count_and_slope(arrival_times: Tensor, inverse_temperature: float, with_slope: bool):
    """sum_j s_j and sum_j s_j (1 - s_j) T_j / tau over dim 0, s_j = sigmoid((1 - T_j) / tau).

    Overwrites nothing; allocates one tensor of the arrivals' shape (the soft steps)."""
    # (1 - T) / tau = 1/tau - T/tau in one pass, then the sigmoid in place
    soft_steps = torch.rsub(arrival_times, inverse_temperature, alpha=inverse_temperature).sigmoid_()  # [n, N]
    count = soft_steps.sum(dim=0)  # [N]
    if not with_slope:
        return count, None
    # sigmoid_backward(g, s) = g * s * (1 - s): the slope terms s (1 - s) T in one pass, in place
    slope_terms = torch.ops.aten.sigmoid_backward(arrival_times, soft_steps, grad_input=soft_steps)  # [n, N]
    return count, slope_terms.sum(dim=0).mul_(inverse_temperature)  # [N], [N]


def _active_count_and_slope(
    log_rate: Tensor, inverse_rate: Tensor, active: Tensor, active_exponentials: Tensor,
    inverse_temperature: float, with_slope: bool,
) -> tuple[Tensor, Tensor | None]:
    """Count [N] and dz/du [N] (or None) of the neurons in ``active`` [A] from their inter-arrival times
    [n, A] (overwritten); every other neuron gets exactly 0."""
    arrivals = _cumulative_sum_first_dim(active_exponentials)  # [n, A] unit-rate arrival times
    arrivals.mul_(inverse_rate[active])  # [n, A] T_j
    count_active, slope_active = _soft_count_and_slope(arrivals, inverse_temperature, with_slope)
    count = log_rate.new_zeros(inverse_rate.shape).index_copy_(0, active, count_active)  # [N]
    slope = log_rate.new_zeros(inverse_rate.shape).index_copy_(0, active, slope_active) if with_slope else None  # [N]
    return count, slope


def _every_arrival_count_and_slope(
    log_rate: Tensor, unit_exponentials: Tensor, temperature: float, with_slope: bool
) -> tuple[Tensor, Tensor | None]:
    """Count [N] and dz/du [N] (or None) from every neuron's inter-arrival times [n, B, K] (overwritten).

    z = sum_j sigmoid((1 - S_j exp(-u)) / tau), S_j = E_1 + ... + E_j the arrival times of a unit-rate
    process (T_j = S_j / r those of rate r), and
        dz/du = sum_j s_j (1 - s_j) * (S_j exp(-u)) / tau,   s_j = sigmoid((1 - S_j exp(-u)) / tau).
    On the CPU only the neurons whose first arrival T_1 can matter (T_1 < 1 + NEGLIGIBLE_LOGIT * tau)
    are computed, gathered into a compact [n, A] block (most neurons fire rarely); the others get
    exactly 0 where the direct sum gives less than 1e-12.
    """
    inverse_temperature = 1.0 / temperature
    n_terms = unit_exponentials.shape[0]
    inverse_rate = torch.exp(-log_rate).reshape(-1)  # [N], N = B * K
    exponentials = unit_exponentials.reshape(n_terms, -1)  # [n, N]
    if log_rate.device.type == "cpu":
        first_arrival = exponentials[0] * inverse_rate  # [N]
        active = flat_nonzero(first_arrival < 1.0 + NEGLIGIBLE_LOGIT * temperature)  # [A]
        if active.numel() <= COMPACT_FRACTION * inverse_rate.numel():
            return _active_count_and_slope(
                log_rate, inverse_rate, active, exponentials.index_select(1, active), inverse_temperature, with_slope
            )
    arrivals = _cumulative_sum_first_dim(exponentials).mul_(inverse_rate)  # [n, N] T_j, in place
    return _soft_count_and_slope(arrivals, inverse_temperature, with_slope)


class _CountWithSlope(torch.autograd.Function):
    """The relaxed count z [B, K] with its derivative dz/du [B, K], both computed in one no-grad pass.

    Saving dz/du instead of the [n, B, K] graph keeps memory and time of the unrolled loop small;
    backward is the chain rule through it."""

    @staticmethod
    def forward(ctx, log_rate: Tensor, count: Tensor, count_grad_log_rate: Tensor) -> Tensor:
        ctx.save_for_backward(count_grad_log_rate)
        return count

    @staticmethod
    def backward(ctx, grad_count: Tensor):
        (count_grad_log_rate,) = ctx.saved_tensors
        return grad_count * count_grad_log_rate, None, None


def poisson_kl(log_rate: Tensor, prior_log_rate: Tensor) -> Tensor:
    """Elementwise exact KL(Pois(exp(u)) || Pois(exp(u0))) = r0 - r + r (u - u0)."""
    rate = log_rate.exp()
    return prior_log_rate.exp() - rate + rate * (log_rate - prior_log_rate)


@register_kl(PoissonLatent, PoissonLatent)
def _kl_poisson_latent(p: PoissonLatent, q: PoissonLatent) -> Tensor:
    return poisson_kl(p.log_rate, q.log_rate)


def gaussian_kl(mean: Tensor, log_scale: Tensor, prior_mean: Tensor, prior_log_scale: Tensor) -> Tensor:
    """Elementwise KL(N(m, s^2) || N(m0, s0^2)) (closed form, matches torch's Normal KL)."""
    return torch.distributions.kl_divergence(
        Normal(mean, log_scale.exp()), Normal(prior_mean, prior_log_scale.exp())
    )
