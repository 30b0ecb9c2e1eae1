"""The SimGAN refiner R: a fully convolutional ResNet that maps a synthetic image to a refined one.

Paper (eye task): conv3x3 64 -> 4 ResNet blocks (two conv3x3 64 each) -> conv1x1 -> 1 map, no
striding or pooling, so every output pixel sees a small neighbourhood of its input pixel and the
geometry (hence the label) can stay where it is. The hand task uses 7x7 kernels and 10 blocks;
both are this class with other arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from simgan.core.refiner.camera import LearnedCamera
from simgan.core.refiner.codec import BlockCodec
from simgan.core.refiner.depth_sensor import LearnedDepthSensor

if TYPE_CHECKING:
    from simgan.core.refiner.params import RefinerNetParams

Output = Literal["residual", "tanh"]
Saturation = Literal["clamp", "straight_through"]
Padding = Literal["zeros", "replicate", "reflect"]


HOLES_INIT_LOGIT = -2.0  # the holes map's starting logit: no hole (< 0), sigmoid' ~0.1


class ResBlock(nn.Module):
    """conv-ReLU-conv plus an identity skip, then ReLU (same padding, constant width)."""

    def __init__(self, width: int, kernel: int, padding: Padding = "zeros") -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(width, width, kernel, padding=pad, padding_mode=padding)
        self.conv2 = nn.Conv2d(width, width, kernel, padding=pad, padding_mode=padding)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class Refiner(nn.Module):
    """R(x) for images in [-1, 1] of shape (B, C, H, W); the output has the input's shape.

    ``output`` chooses how the last 1x1 map becomes an image:

    - ``"residual"`` (default): ``clamp(x + r, -1, 1)`` with the last conv initialised to zero,
      so R starts as the exact identity. Why: self-regularisation asks R to stay close to x, and
      a residual refiner only has to learn the *appearance difference*; it needs no
      self-regularisation pretraining to reach the identity (the tanh refiner spends hundreds of
      steps on that and still blurs fine detail such as glints and the pupil edge), and the
      adversarial signal acts on the difference from the first step. ``clamp`` passes the
      gradient everywhere except at saturated pixels, which are few.
    - ``"tanh"``: ``tanh(r)`` as in the public re-implementations of the paper; needs
      ``pretrain_refiner_steps`` to learn the identity first.

    ``noise_channels`` > 0 (not in the paper; its "future work") feeds that many channels of
    standard Gaussian noise next to the image. A deterministic, translation-equivariant net
    cannot put sensor noise or fine texture on a flat synthetic region (the output of a flat
    patch is flat), so without noise the only "realism" it can add is tone and blur. The
    noise is drawn from ``generator`` (or the global torch RNG), so runs stay reproducible.
    ``noise_scales``: the noise is drawn at each of these scales (1 = per pixel; s > 1: an
    (H/s, W/s) field upsampled bilinearly), ``noise_channels`` maps per scale. Coarse noise lets
    R add blotchy, spatially correlated texture (skin, sensor shading) that per-pixel noise
    through a few 3x3 layers cannot make.
    ``padding``: how every conv sees beyond the image edge. With ``"zeros"`` (the paper's
    and PyTorch's default) the edge pixels see a black frame and R learns a different change
    there: on the stand-in eyes a 1-2 px frame darkened ~30 grey levels less than the
    interior, a seam no real crop has. ``"replicate"``/``"reflect"`` remove that seam.
    ``grid_period`` > 0 feeds the pixel's phase in a ``grid_period`` block grid anchored at
    the image origin (one-hot x mod p and y mod p, 2p channels). Real crops stored as JPEG
    carry 8x8 block artefacts fixed to that grid; a translation-equivariant R cannot place
    them, and they alone made the stand-in's otherwise perfectly refined eyes separable from
    real (docs/science.md, "What gives refined eyes away").
    ``saturation``: how the residual output is kept in [-1, 1]. ``"clamp"`` gives saturated
    pixels no gradient, so once R pushes a pixel past black it cannot learn to lift it back:
    on the default stand-in 0.85 % of refined pixels (the pupils, in 96 % of eyes) sat at
    exactly 0, where real pupils are ~28 grey levels. ``"straight_through"`` clamps the value
    but passes the gradient as if it had not (the straight-through estimator).
    ``codec``: R's output is JPEG-quantised in 8x8 blocks anchored at the image origin, at a
    per-image quality drawn from ``codec_quality`` (low, high) (:class:`BlockCodec`), as the
    real camera stored its crops.
    ``warp_px`` > 0 lets R move pixels as well as change them: a second 1x1 map gives a
    displacement field of at most ``warp_px`` pixels per axis (``warp_px * tanh``), the input is
    resampled along it (bilinear) and the residual is added to the result. Why: real depth
    sensors make ragged silhouettes (boundaries displaced by a pixel or two, fingers broken
    up), which a residual refiner can only paint as dark or bright dots beside a clean edge;
    a displacement moves the edge itself. Like the residual, the map starts at zero (R is the
    identity) and the label term keeps the joints where they are.
    ``holes``: a third 1x1 map decides, per pixel, "no reading": where its logit is > 0 the
    output is -1 (background / missing depth), elsewhere it is the refined value. The decision
    is hard, its gradient that of sigmoid(logit) (straight-through). Why: a depth sensor either
    reads a pixel or not, and a smooth network driven by noise can only approximate a missing
    pixel by a dark smear (the chains of nearly-black pixels refined depth showed, docs/hand.md);
    a hard choice makes holes exactly. The map starts at weights 0 and bias -2 (no hole
    anywhere: R starts as the identity); which pixels drop can depend on the noise inputs.
    ``camera``: R's output goes through a learned camera (:class:`LearnedCamera`: blur, tone
    curve, gain and offset, sensor noise, each setting drawn per image from a learned
    distribution), before the codec if there is one. Why: a conv net gives one synthetic
    scene one appearance, while real crops vary in exposure, blur and noise from image to
    image; the conv layers keep the scene's appearance, the camera the capture's.
    ``depth_sensor``: R's output goes through a learned depth sensor
    (:class:`LearnedDepthSensor`: a ragged silhouette, a band of missing depth along it,
    flying pixels, edge holes, depth noise, each amount drawn per image from a learned
    distribution). It only removes or perturbs depth, so the trainer holds the label and
    self-regularisation terms to R's output before it (``forward(..., with_scene=True)``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 64,
        blocks: int = 4,
        kernel: int = 3,
        output: Output = "residual",
        noise_channels: int = 0,
        noise_scales: tuple[int, ...] = (1,),
        padding: Padding = "zeros",
        grid_period: int = 0,
        codec: bool = False,
        codec_quality: tuple[int, int] = (75, 95),
        saturation: Saturation = "clamp",
        warp_px: float = 0.0,
        holes: bool = False,
        camera: bool = False,
        depth_sensor: bool = False,
        scene: bool = True,
        label_terms: str = "output",
    ) -> None:
        super().__init__()
        if label_terms not in ("output", "scene"):
            raise ValueError(f"label_terms must be 'output' or 'scene', got {label_terms!r}")
        self.label_terms = label_terms
        if not scene and (warp_px > 0 or holes or not (camera or depth_sensor or codec)):
            raise ValueError("scene: false leaves R without conv layers: it needs a capture "
                             "stage (camera, depth_sensor or codec) and no warp_px or holes, "
                             "which act on the conv layers' features")
        self.channels = in_channels
        if noise_channels < 0:
            raise ValueError(f"noise_channels must be >= 0, got {noise_channels}")
        if not noise_scales or min(noise_scales) < 1:
            raise ValueError(f"noise_scales must be >= 1, got {noise_scales}")
        self.noise_channels = noise_channels
        self.noise_scales = tuple(noise_scales)
        if output not in ("residual", "tanh"):
            raise ValueError(f"output must be 'residual' or 'tanh', got {output!r}")
        self.output = output
        if saturation not in ("clamp", "straight_through"):
            raise ValueError(
                f"saturation must be 'clamp' or 'straight_through', got {saturation!r}")
        self.saturation = saturation
        if grid_period < 0:
            raise ValueError(f"grid_period must be >= 0, got {grid_period}")
        self.grid_period = grid_period
        if warp_px < 0 or (warp_px > 0 and output != "residual"):
            raise ValueError(f"warp_px must be >= 0, and 0 unless output is 'residual'; got "
                             f"{warp_px} with output {output!r}")
        self.warp_px = float(warp_px)
        self.head: nn.Module | None = None
        self.warp: nn.Conv2d | None = None
        self.holes: nn.Conv2d | None = None
        if scene:
            self._build_scene_layers(in_channels, width, blocks, kernel, padding, holes)
        self.camera = LearnedCamera() if camera else None
        self.sensor = LearnedDepthSensor() if depth_sensor else None
        self.codec = BlockCodec(tuple(codec_quality)) if codec else None

    def _build_scene_layers(self, in_channels: int, width: int, blocks: int, kernel: int,
                            padding: Padding, holes: bool) -> None:
        """The conv layers that paint the scene (and the warp and holes maps they feed)."""
        extra = self.noise_channels * len(self.noise_scales) + 2 * self.grid_period
        self.head = nn.Sequential(
            nn.Conv2d(in_channels + extra, width, kernel,
                      padding=kernel // 2, padding_mode=padding),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*(ResBlock(width, kernel, padding) for _ in range(blocks)))
        self.tail = nn.Conv2d(width, in_channels, 1)
        if self.output == "residual":
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        if self.warp_px > 0:
            self.warp = nn.Conv2d(width, 2, 1)
            nn.init.zeros_(self.warp.weight)
            nn.init.zeros_(self.warp.bias)
        if holes:
            self.holes = nn.Conv2d(width, in_channels, 1)
            nn.init.zeros_(self.holes.weight)
            nn.init.constant_(self.holes.bias, HOLES_INIT_LOGIT)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                with_scene: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """R(x); with ``with_scene``, (the scene R painted before its capture stages, R(x)):
        the scene before a depth sensor, or before every capture stage with ``label_terms:
        scene``; else the same tensor twice. Without conv layers the scene is x."""
        out = x if self.head is None else self._paint(x, generator)
        scene = out  # what the label terms judge when judges_scene, before every capture stage
        if self.sensor is not None:
            out = self.sensor(out, generator)
        if self.camera is not None:
            out = self.camera(out, generator)
        if self.codec is not None:
            out = self.codec(out, generator)
        if not with_scene:
            return out
        return (scene, out) if self.judges_scene else (out, out)

    @property
    def judges_scene(self) -> bool:
        """Whether the label terms judge a scene apart from the output (see ``forward``)."""
        return self.sensor is not None or (
            self.label_terms == "scene" and (self.camera is not None or self.codec is not None))

    def _paint(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The conv layers' scene: x changed by the residual (or tanh) map, warp and holes."""
        assert self.head is not None
        inp = x
        if self.noise_channels:
            inp = torch.cat([x, *self._noise(x, generator)], 1)
        if self.grid_period:
            inp = torch.cat([inp, self._grid_phase(x)], 1)
        features = self.blocks(self.head(inp))
        r = self.tail(features)
        if self.output == "tanh":
            out = torch.tanh(r)
        else:
            base = x if self.warp is None else self._displace(x, features)
            out = self._saturate(base + r)
        if self.holes is not None:
            out = self._drop(out, self.holes(features))
        return out

    @staticmethod
    def _drop(out: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
        """-1 where ``logit`` > 0, ``out`` elsewhere; gradient of the soft mask sigmoid(logit)."""
        soft = torch.sigmoid(logit)
        mask = (logit > 0).to(out.dtype) + soft - soft.detach()
        return out - mask * (out + 1.0)

    def _displace(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """x resampled (bilinear, border-replicated) at each pixel plus R's displacement."""
        b, _, h, w = x.shape
        d = self.warp_px * torch.tanh(self.warp(features))  # (B, 2, H, W): du, dv in pixels
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype=x.dtype,
                             device=x.device)
        gy, gx = torch.meshgrid(torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device),
                                torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device),
                                indexing="ij")
        grid = torch.stack((gx, gy), -1) + d.permute(0, 2, 3, 1) * scale
        return nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                         align_corners=True)

    def _saturate(self, y: torch.Tensor) -> torch.Tensor:
        """clamp(y, -1, 1); with ``straight_through`` its gradient is 1 everywhere."""
        clamped = y.clamp(-1.0, 1.0)
        if self.saturation == "clamp":
            return clamped
        return y + (clamped - y).detach()

    def _grid_phase(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2p, H, W): one-hot of column mod p, then of row mod p."""
        b, _, h, w = x.shape
        p = self.grid_period
        phases = torch.arange(p, device=x.device)
        cols = (torch.arange(w, device=x.device) % p == phases[:, None]).to(x.dtype)
        rows = (torch.arange(h, device=x.device) % p == phases[:, None]).to(x.dtype)
        grid = torch.cat([cols[:, None, :].expand(p, h, w), rows[:, :, None].expand(p, h, w)])
        return grid.expand(b, -1, -1, -1)

    def _noise(self, x: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
        """Gaussian noise maps at every scale, drawn in scale order from ``generator``."""
        b, _, h, w = x.shape
        device = generator.device if generator is not None else x.device
        maps = []
        for s, size in zip(self.noise_scales, self._noise_sizes(h, w), strict=True):
            z = torch.randn(b, self.noise_channels, *size, generator=generator, device=device)
            z = z.to(x.device, x.dtype)
            if s > 1:
                z = nn.functional.interpolate(z, size=(h, w), mode="bilinear",
                                              align_corners=False)
            maps.append(z)
        return maps

    def _noise_sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        return [(-(-h // s), -(-w // s)) for s in self.noise_scales]

    @property
    def draws_noise(self) -> bool:
        """Whether a forward pass draws random numbers (noise inputs or codec qualities)."""
        return bool(self.noise_channels and self.head is not None) or any(
            stage is not None for stage in (self.sensor, self.camera, self.codec))

    def skip_noise(self, b: int, h: int, w: int, generator: torch.Generator) -> None:
        """Advance ``generator`` as refining a (b, 1, h, w) batch would, without refining it:
        a shard that starts at row k then draws the noise the whole run draws for row k."""
        for size in self._noise_sizes(h, w) if self.noise_channels and self.head else []:
            torch.randn(b, self.noise_channels, *size, generator=generator,
                        device=generator.device)
        for stage in (self.sensor, self.camera):
            if stage is not None:
                stage.skip(b, self.channels, h, w, generator)
        if self.codec is not None:
            self.codec.draw(b, generator, generator.device)


def apply_refiner(
    refiner: nn.Module, x: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """R(x), with noise inputs (if any) drawn from ``generator`` instead of the global RNG, so
    that scoring, samples and refinement give the same output whenever they are repeated."""
    if getattr(refiner, "draws_noise", False):
        return refiner(x, generator=generator)
    return refiner(x)


def scene_and_refined(
    refiner: nn.Module, x: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the scene the label terms judge, R(x)) as :func:`apply_refiner` draws them; a
    refiner whose label terms judge its output (or not a :class:`Refiner`) gives R(x) twice."""
    if not getattr(refiner, "judges_scene", False):
        out = apply_refiner(refiner, x, generator)
        return out, out
    return refiner(x, generator=generator, with_scene=True)


def refiner_file(
    state: dict[str, torch.Tensor], net: RefinerNetParams, selection: dict[str, Any]
) -> dict[str, Any]:
    """The content of a trained refiner's file: weights, architecture, how it was selected.

    The architecture travels with the weights so that :func:`load_refiner` needs no params.
    """
    return {"state_dict": state, "net": net.model_dump(mode="json"), "selection": selection}


def load_refiner(saved: dict[str, Any], device: torch.device | str = "cpu") -> Refiner:
    """The refiner of a file written from :func:`refiner_file`, on ``device``, in eval mode."""
    refiner = Refiner(**saved["net"])
    refiner.load_state_dict(saved["state_dict"])
    return refiner.to(device).eval()
