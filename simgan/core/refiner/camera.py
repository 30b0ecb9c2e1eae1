"""A learned camera as the refiner's last stage: optics blur, a tone curve, gain and offset,
and sensor noise, each with a per-image setting drawn from a distribution that R learns.

Why: the two-sample test separates refined eyes from real ones by camera effects a
deterministic, translation-equivariant net makes badly (docs/science.md, "What gives refined
eyes away"): the black level, the blur before the noise, the noise level, and their spread
from image to image. A conv net maps one synthetic eye to one refined eye, so it cannot give
two renderings of the same scene two exposures; a camera that draws its settings per image
can. Sim-to-real work models these effects as explicit stages and learns their parameters
adversarially (Carlson et al., "Sensor Transfer", 2019); here the conv refiner keeps the job
of the scene's appearance (texture, lashes, glints) and this stage the camera's.

Each setting is drawn per image from a learned logit-normal distribution over a fixed range
(:class:`~simgan.core.refiner.settings.LearnedSettings`). The stage starts as (nearly) the
identity: gain 1, offset 0, gamma 1, no noise, a blur of 0.25 px (a kernel of
~[0.0003, 0.9993, 0.0003]: a zero-width blur would have no gradient).
"""

from __future__ import annotations

import torch
from torch import nn

from simgan.core.refiner.settings import LearnedSettings, Setting, normal

# (name, low, high, starting value) in grey levels and pixels. The ranges bound what R may
# learn; they are wide enough for any camera the real crops are likely to come from.
SETTINGS: tuple[Setting, ...] = (
    ("blur_sigma", 0.2, 2.0, 0.25),  # optics, pixels
    ("gamma", 0.4, 2.5, 1.0),  # tone curve exponent (see tone_curve)
    ("gain", 0.4, 1.6, 1.0),  # contrast about mid-grey
    ("offset", -40.0, 40.0, 0.0),  # brightness, grey levels
    ("read_noise", 0.0, 12.0, 0.02),  # noise std, grey levels
    ("shot_noise", 0.0, 0.2, 0.0005),  # noise variance per grey level of signal
)
START_SPREAD = 0.05
"""exp(log_spread) at the start: settings barely vary between images."""
BLUR_RADIUS = 4
"""Half-width of the blur kernel: covers 2 sigma at the largest sigma."""


def tone_curve(img: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """255 x / (x + c (1 - x)) with x = img / 255 and c = 2^gamma - 1: equal to 255 x^gamma at
    0, mid-grey and 255, smooth and cheap, and the identity at gamma = 1."""
    x = img * (1.0 / 255.0)
    c = torch.pow(2.0, gamma) - 1.0
    return 255.0 * x / (x + c * (1.0 - x)).clamp_min(1e-6)


def gaussian_blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with a per-image ``sigma`` (B,), edges
    replicated; differentiable in ``sigma``."""
    b, c, h, w = img.shape
    taps = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-0.5 * (taps[None] / sigma[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, 2r + 1)
    r = BLUR_RADIUS
    # one group per image: (1, B*C, H, W) against B*C kernels
    x = nn.functional.pad(img.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    kc = k.repeat_interleave(c, 0)
    x = nn.functional.conv2d(x, kc[:, None, None, :], groups=b * c)
    x = nn.functional.conv2d(x, kc[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


class LearnedCamera(LearnedSettings):
    """(B, C, H, W) images in [-1, 1] -> the same images through a camera with per-image
    settings drawn from learned distributions (:data:`SETTINGS`), in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__(SETTINGS, START_SPREAD, "camera")

    def draws(self, b: int, c: int, h: int, w: int, generator: torch.Generator | None,
              device: torch.device) -> dict[str, torch.Tensor]:
        """Every random number a forward pass on a (b, c, h, w) batch uses, in a fixed order."""
        return {"eps": self.draw(b, generator, device),
                "noise": normal((b, c, h, w), generator, device)}

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        d = self.draws(b, c, h, w, generator, x.device)
        s = self.settings(d["eps"].to(x.dtype))
        z = d["noise"].to(x.dtype)
        col = {k: v[:, None, None, None] for k, v in s.items()}
        img = (x.clamp(-1.0, 1.0) + 1.0) * 127.5
        img = gaussian_blur(img, s["blur_sigma"])
        img = tone_curve(img.clamp(0.0, 255.0), col["gamma"])
        img = (img - 128.0) * col["gain"] + 128.0 + col["offset"]
        var = col["read_noise"] ** 2 + col["shot_noise"] * img.clamp(0.0, 255.0)
        img = img + torch.sqrt(var + 1e-8) * z
        return (img * (1.0 / 127.5) - 1.0).clamp(-1.0, 1.0)

    def skip(self, b: int, c: int, h: int, w: int, generator: torch.Generator) -> None:
        """Advance ``generator`` as a forward pass on a (b, c, h, w) batch would."""
        self.draws(b, c, h, w, generator, generator.device)
