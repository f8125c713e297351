"""How the optimised parameters become stimuli.

With Adam every element moves by about the learning rate at each step whatever its gradient, so
directly optimised stimuli keep white-noise-like sample-to-sample jitter that the teacher ignores
(RR-interval stimuli: 2.4 to 8.5 times the real persons' sample-to-sample variability, 9 % of
their power in the top third of the spectrum, where real series have under 0.1 %). Optimising
a latent tensor seen through a fixed low-pass filter keeps that jitter out of the stimuli, not
only out of the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GaussianSmoothing(nn.Module):
    """Depthwise Gaussian low-pass along time (standard deviation `sigma` samples, kernel
    +- 4 sigma, reflected at the edges); identity when `sigma` is 0."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"smoothing sigma must be >= 0 samples, got {sigma}")
        self.sigma = float(sigma)
        half = math.ceil(4 * sigma)
        t = torch.arange(-half, half + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (t / sigma) ** 2) if sigma > 0 else torch.ones(1)
        self.register_buffer("kernel", (kernel / kernel.sum()).view(1, 1, -1), persistent=False)

    @property
    def gain(self) -> float:
        """Standard deviation of the output for unit white noise in."""
        return float(self.kernel.pow(2).sum().sqrt())

    def forward(self, x: Tensor) -> Tensor:
        if self.sigma == 0:
            return x
        half = self.kernel.shape[-1] // 2
        if x.shape[-1] <= half:
            raise ValueError(
                f"smoothing sigma {self.sigma} needs more than {half} samples per stimulus, "
                f"got {x.shape[-1]}; lower synthesis.smoothing"
            )
        n, c, t = x.shape
        # Every series as a channel of one depthwise convolution: on CPU, oneDNN's depthwise
        # path runs forward+backward ~6x as fast as a (n*c, 1, t) batch through one
        # single-channel kernel (same outputs; the input gradient differs by float rounding)
        padded = F.pad(x.reshape(1, n * c, t), (half, half), mode="reflect")
        kernel = self.kernel.to(x.dtype).expand(n * c, 1, -1)
        return F.conv1d(padded, kernel, groups=n * c).reshape(n, c, t)
