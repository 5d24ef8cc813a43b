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
    ) -> Tensor:
        """Relaxed counts, differentiable in ``log_rate``; temperature 0 gives exact counts."""
        if temperature <= 0.0:
            return self.sample(sample_shape, generator=generator)
        shape = self._extended_shape(sample_shape)
        log_rate = self.log_rate.expand(shape)  # [B, K]
        with torch.no_grad():
            unit_exponentials = torch.empty(
                (self.max_count, *shape), dtype=log_rate.dtype, device=log_rate.device
            ).exponential_(generator=generator)  # [n, B, K]
            unit_arrivals = _cumulative_sum_first_dim(unit_exponentials)  # [n, B, K] arrivals at rate 1
        return _RelaxedCount.apply(log_rate, unit_arrivals, temperature)


def _cumulative_sum_first_dim(values: Tensor) -> Tensor:
    """In-place running sum along dim 0 (several times faster than torch.cumsum on CPU here)."""
    for j in range(1, values.shape[0]):
        values[j] += values[j - 1]
    return values


class _RelaxedCount(torch.autograd.Function):
    """z = sum_j sigmoid((1 - S_j exp(-u)) / tau) with its derivative in u computed in the same pass.

    S_j are the arrival times of a unit-rate process, so T_j = S_j / r are those of rate r. Saving
    dz/du [B, K] instead of the [n, B, K] graph keeps memory and time of the unrolled loop small.
        dz/du = sum_j s_j (1 - s_j) * (S_j exp(-u)) / tau,   s_j = sigmoid((1 - S_j exp(-u)) / tau)
    """

    @staticmethod
    def forward(ctx, log_rate: Tensor, unit_arrivals: Tensor, temperature: float) -> Tensor:
        arrival_times = unit_arrivals * torch.exp(-log_rate)  # [n, B, K]
        soft_steps = torch.sigmoid((1.0 - arrival_times) / temperature)  # [n, B, K]
        count = soft_steps.sum(dim=0)  # [B, K]
        if ctx.needs_input_grad[0]:
            slope = soft_steps * (1.0 - soft_steps) * arrival_times  # [n, B, K]
            ctx.save_for_backward(slope.sum(dim=0) / temperature)  # [B, K]
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
