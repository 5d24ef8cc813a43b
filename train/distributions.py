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

from collections.abc import Callable
from dataclasses import dataclass

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

    def rsample(
        self,
        sample_shape=torch.Size(),
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
    ) -> Tensor:
        """Relaxed counts, differentiable in ``log_rate``; temperature 0 gives exact counts.

        ``shard`` (data-parallel training): this batch is rows [start, start + B) of a global batch;
        the noise of the whole global batch is drawn and sliced, so every row gets the same draws
        whatever the number of processes.
        """
        if temperature <= 0.0:
            if shard is not None:
                raise ValueError("exact draws (temperature 0) cannot be sharded over a global batch")
            return self.sample(sample_shape, generator=generator)
        shape = self._extended_shape(sample_shape)
        log_rate = self.log_rate.expand(shape)  # [B, K]
        with torch.no_grad():
            unit_exponentials = draw_rows((self.max_count, *shape), 1, shard, log_rate, generator, draw_exponential)  # [n, B, K]
        return _RelaxedCount.apply(log_rate, unit_exponentials, temperature)


@dataclass(frozen=True)
class BatchShard:
    """This process holds rows [start, start + local size) of a global batch of ``global_size`` rows."""

    start: int
    global_size: int


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


class _RelaxedCount(torch.autograd.Function):
    """z = sum_j sigmoid((1 - S_j exp(-u)) / tau) with its derivative in u computed in the same pass.

    S_j = E_1 + ... + E_j are the arrival times of a unit-rate process, so T_j = S_j / r are those of
    rate r. Saving dz/du [B, K] instead of the [n, B, K] graph keeps memory and time of the unrolled
    loop small.
        dz/du = sum_j s_j (1 - s_j) * (S_j exp(-u)) / tau,   s_j = sigmoid((1 - S_j exp(-u)) / tau)
    On the CPU only the neurons whose first arrival T_1 can matter (T_1 < 1 + NEGLIGIBLE_LOGIT * tau)
    are computed, gathered into a compact [n, A] block (most neurons fire rarely); the others get
    exactly 0 where the direct sum gives less than 1e-12. The exponentials buffer is overwritten.
    """

    @staticmethod
    def forward(ctx, log_rate: Tensor, unit_exponentials: Tensor, temperature: float) -> Tensor:
        inverse_temperature = 1.0 / temperature
        with_slope = ctx.needs_input_grad[0]
        n_terms = unit_exponentials.shape[0]
        inverse_rate = torch.exp(-log_rate).reshape(-1)  # [N], N = B * K
        exponentials = unit_exponentials.reshape(n_terms, -1)  # [n, N]
        if log_rate.device.type == "cpu":
            first_arrival = exponentials[0] * inverse_rate  # [N]
            can_spike = first_arrival < 1.0 + NEGLIGIBLE_LOGIT * temperature  # [N]
            active = can_spike.nonzero().squeeze(1)  # [A]
            if active.numel() <= COMPACT_FRACTION * inverse_rate.numel():
                arrivals = _cumulative_sum_first_dim(exponentials.index_select(1, active))  # [n, A]
                arrivals.mul_(inverse_rate[active])  # [n, A] T_j
                count_active, slope_active = _soft_count_and_slope(arrivals, inverse_temperature, with_slope)
                count = log_rate.new_zeros(inverse_rate.shape).index_copy_(0, active, count_active)  # [N]
                if with_slope:
                    slope = log_rate.new_zeros(inverse_rate.shape).index_copy_(0, active, slope_active)  # [N]
                    ctx.save_for_backward(slope.reshape(log_rate.shape))  # [B, K]
                return count.reshape(log_rate.shape)
        arrivals = _cumulative_sum_first_dim(exponentials).mul_(inverse_rate)  # [n, N] T_j, in place
        count, slope = _soft_count_and_slope(arrivals, inverse_temperature, with_slope)
        if with_slope:
            ctx.save_for_backward(slope.reshape(log_rate.shape))  # [B, K]
        return count.reshape(log_rate.shape)

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
