"""Encoder-side latent refinement (``effort``): spend encoder compute for fewer bits at the same quality.

The analysis transform gives a latent that is good on average over the training set, not the best one for the
tiles at hand. Refinement searches, for each block's tiles, the latent ``y`` and hyper-latent ``z`` whose rounded
values minimise the model's own rate-distortion cost ``bits per pixel + lambda * 255**2 * MSE`` (the training
loss at the quality's lambda), by gradient steps through the float synthesis, hyper-synthesis and entropy models,
with stochastic Gumbel annealing of the rounding (SGA: Yang, Marino and Mandt, "Improving Inference for Neural
Image Compression", NeurIPS 2020): each value is rounded down or up at random, with probabilities that sharpen to
plain rounding as the temperature falls linearly to zero. The result is coded as any latent is: the decoder needs
nothing new and cannot tell. It runs in floating point, so refined containers are not reproducible across
machines; and only the scale-hyperprior models (bmshj2018-hyperprior and its -light and -fast variants) are refined: the
factorized model has no hyper-latent, the mean-scale models round around their predicted means (not modelled
here), and the context model's rate would need its autoregressive pass in the loop.
"""

from __future__ import annotations

import copy
import threading

import torch
from torch import Tensor

from .architectures import ARCHITECTURE_CLASSES, GainedModel

# the latent coders whose rate the refinement models (sar_codec.models.latent_coders)
REFINABLE_KINDS = ("scale-hyperprior",)
LEARNING_RATE = 1e-2  # Adam's, on the latents; measured best of 5e-3 and 1e-2 at 100 and 300 steps
TEMPERATURE = 0.5  # SGA's starting temperature, falling linearly to zero over the steps
MAX_STEPS = 10_000
SEED = 0  # the Gumbel noise is seeded, so a refinement is repeatable on one machine


def check_refinable(architecture: str, steps: int) -> None:
    """Raise ValueError with one sentence when ``steps`` of refinement cannot be run for ``architecture``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"The effort must be a whole number of refinement steps from 0 to {MAX_STEPS}, "
                         f"not {steps!r}.")
    kind = ARCHITECTURE_CLASSES[architecture].latent_coder_kind
    if steps and kind not in REFINABLE_KINDS:
        raise ValueError(f"{architecture} cannot be refined (its {kind} entropy model is not modelled by the "
                         "refinement); choose bmshj2018-hyperprior(-light, -fast) or no effort.")


def _sga(v: Tensor, tau: float, generator: torch.Generator) -> Tensor:
    """A soft, random rounding of ``v``: down or up with probabilities that become plain rounding as tau -> 0."""
    floor = torch.floor(v)
    r = (v - floor).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)], -1) / tau
    u = torch.rand(logits.shape, generator=generator, device=v.device, dtype=v.dtype).clamp_(1e-10, 1 - 1e-10)
    weights = torch.softmax((logits - torch.log(-torch.log(u))) / tau, -1)
    return floor + weights[..., 1]


class Refiner:
    """The float model's pieces that the refinement differentiates through, frozen (one copy per codec)."""

    def __init__(self, model: GainedModel, device: torch.device):
        self.model = copy.deepcopy(model).float().eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.medians = self.model.entropy_bottleneck._get_medians().detach()
        self._lock = threading.Lock()  # one refinement at a time per codec: the copy's modules are shared

    def _loss(self, x: Tensor, y: Tensor, z: Tensor, inv_gain: Tensor, lmbda: float) -> Tensor:
        """The rate-distortion cost of latents ``y`` and ``z`` as they stand: bits per pixel (the model's
        likelihoods) + lambda 255**2 MSE."""
        m = self.model
        scales, means = m.entropy_parameters_from(m.h_s(z), y)
        y_lik = m.gaussian_conditional.likelihood_lower_bound(m.gaussian_conditional._likelihood(y, scales, means))
        z_cols = z.transpose(0, 1).reshape(z.shape[1], 1, -1)  # (C, 1, N), as the density's forward lays it out
        z_lik = m.entropy_bottleneck.likelihood_lower_bound(m.entropy_bottleneck._likelihood(z_cols)[0])
        bits = -(torch.log2(y_lik).sum() + torch.log2(z_lik).sum())
        mse = torch.mean((m.g_s(y * inv_gain) - x) ** 2)
        return bits / x.numel() + lmbda * 255**2 * mse

    def refine(self, x: Tensor, y: Tensor, quality: int, steps: int, lmbda: float) -> tuple[Tensor, Tensor]:
        """Refined (y, z), unrounded, for tiles ``x`` (B, C, T, T) in [0, 1] whose analysis gave the scaled
        latent ``y``; ``quality`` is the 0-based index whose gains scale it and whose ``lmbda`` weighs the MSE."""
        m = self.model
        q = torch.full((x.shape[0],), quality, dtype=torch.long, device=x.device)
        with self._lock, torch.enable_grad():
            _, inv_gain = m.gains(q)
            y = y.detach().float().clone().requires_grad_(True)
            z = m.h_a(m.hyper_input(y.detach())).detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([y, z], lr=LEARNING_RATE)
            generator = torch.Generator(device=x.device).manual_seed(SEED)
            for step in range(steps):
                tau = TEMPERATURE * (1 - step / steps) + 1e-3
                y_soft = _sga(y, tau, generator)
                z_soft = _sga(z - self.medians, tau, generator) + self.medians
                loss = self._loss(x, y_soft, z_soft, inv_gain, lmbda)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return y.detach(), z.detach()

    @torch.no_grad()
    def cost(self, x: Tensor, y: Tensor, z: Tensor, quality: int, lmbda: float) -> float:
        """The estimated rate-distortion cost (bits per pixel + lambda 255**2 MSE) of the rounded ``y`` and ``z``."""
        q = torch.full((x.shape[0],), quality, dtype=torch.long, device=x.device)
        _, inv_gain = self.model.gains(q)
        return float(self._loss(x, torch.round(y), torch.round(z - self.medians) + self.medians, inv_gain, lmbda))


__all__ = ["REFINABLE_KINDS", "Refiner", "check_refinable", "MAX_STEPS"]
