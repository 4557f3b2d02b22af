"""DefGAN / GANimation networks at a CPU-friendly size.

- :class:`TextureGenerator` ``G_tex(I, y) -> (T, M)``; the edited image is ``M * I + (1 - M) * T``
  (:func:`apply_attention`): T is a colour texture, M an attention mask in [0, 1] (1 keeps the input).
- :class:`DeformationGenerator` ``G_def(I, y_src, y_tgt) -> flow``: a dense 2D displacement in
  normalised image coordinates, applied with ``grid_sample`` (:func:`warp`).
- :class:`Discriminator`: a patch realism head and an expression head regressing the 53 ARKit
  weights (as GANimation and DefGAN regress Action Units).

Every network is built from a frozen config dataclass saved beside its weights
(:mod:`editing.gan.checkpoint`), so a checkpoint alone rebuilds it. Images are (B, 3, H, W) floats in
[0, 1]; expressions are (B, K) ARKit weights in [0, 1] (K = 53 for ICT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from face3d.filters import gaussian_blur


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a generator (U-Net: strided-conv encoder, residual bottleneck, skip decoder).

    Attributes:
        kind: ``"texture"`` (outputs T and M) or ``"deform"`` (outputs a flow field).
        n_expr: K, the expression vector length (53 ARKit weights); ``deform`` takes 2K (source, target).
        base: channels of the first level; level i has ``base * 2**min(i, 3)``.
        n_down: stride-2 downsamplings (128 px -> 16 px with 3).
        n_res: residual blocks at the bottleneck.
        cond: channels the expression vector is projected to and broadcast over the image.
        max_flow: ``deform`` only: the largest displacement, as a fraction of the half image size
            (normalised coordinates span [-1, 1]).
        flow_stride: ``deform`` only: the flow is predicted at 1/flow_stride resolution and
            upsampled bilinearly (a smooth field, like muscle motion).
        extra_inputs: channels given beside the image (the cycle-trained texture generator takes
            1: the mask of the pixels the edit synthesised, in [0, 1]).
        film: also modulate the bottleneck and every decoder level by the condition (FiLM:
            ``h * (1 + gamma(y)) + beta(y)``, after their instance norm). Without it the condition
            reaches the network only as constant input channels, which the stem's instance norm
            removes (all but the zero-padded border): the output barely depends on the target.
        detail_sigma: ``texture`` only: T keeps the input's detail layer, ``T = G_s * T_net +
            (I - G_s * I)`` clamped to [0, 1], with ``G_s`` a Gaussian blur of this sigma (pixels of
            the generator's crop): the network paints the colour and shading, the input (for the
            cycle-trained generator: the hand fill) keeps the fine structure (0: off, T = T_net).
    """

    kind: str = "texture"
    n_expr: int = 53
    base: int = 16
    n_down: int = 3
    n_res: int = 3
    cond: int = 16
    max_flow: float = 0.15
    flow_stride: int = 4
    extra_inputs: int = 0
    film: bool = False
    detail_sigma: float = 0.0

    def __post_init__(self):
        if self.kind not in ("texture", "deform"):
            raise ValueError(f"GeneratorConfig.kind must be 'texture' or 'deform', got {self.kind!r}")
        if self.n_down < 1 or self.base < 4 or self.n_expr < 1 or self.extra_inputs < 0:
            raise ValueError(
                "GeneratorConfig: n_down >= 1, base >= 4, n_expr >= 1 and extra_inputs >= 0 are required"
            )
        if self.detail_sigma < 0:
            raise ValueError(f"GeneratorConfig.detail_sigma must be >= 0, got {self.detail_sigma}")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of the discriminator.

    Attributes:
        n_expr: K, the length of the regressed expression vector.
        base: channels of the first stride-2 conv (doubling per level, at most 8x).
        n_down: stride-2 levels (128 px -> 8 x 8 patches with 4).
        extra_inputs: channels given beside the image (a mask-aware discriminator, as in inpainting
            GANs, takes 1: where the judged image was synthesised, in [0, 1]; 0: the image alone).
        spectral_norm: spectral normalisation of the convolutions. It bounds how much the logits
            can differ between images that differ little; a critic of pastes that equal the photo
            but in a few dozen pixels needs it off to move from chance.
    """

    n_expr: int = 53
    base: int = 24
    n_down: int = 4
    extra_inputs: int = 0
    spectral_norm: bool = True

    def __post_init__(self):
        if self.extra_inputs < 0 or self.n_down < 1 or self.base < 1:
            raise ValueError("DiscriminatorConfig: extra_inputs >= 0, n_down >= 1 and base >= 1 are required")


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=True)


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            _norm(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, bias=False),
            _norm(c),
        )

    def forward(self, x):
        return x + self.body(x)


class _UNet(nn.Module):
    """Conditioned U-Net trunk: (B, 3, H, W) image + (B, C) condition -> (B, base, H, W) features."""

    def __init__(self, n_cond_in: int, cfg: GeneratorConfig):
        super().__init__()
        self.project = nn.Linear(n_cond_in, cfg.cond)
        chans = [cfg.base * 2 ** min(i, 3) for i in range(cfg.n_down + 1)]
        self.stem = nn.Sequential(
            nn.Conv2d(3 + cfg.extra_inputs + cfg.cond, chans[0], 3, padding=1, bias=False),
            _norm(chans[0]),
            nn.ReLU(True),
        )
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 4, 2, 1, bias=False), _norm(b), nn.ReLU(True))
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.res = nn.Sequential(*[_ResBlock(chans[-1]) for _ in range(cfg.n_res)])
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(b + a, a, 3, padding=1, bias=False), _norm(a), nn.ReLU(True))
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.out_channels = chans[0]
        self.film = (
            nn.ModuleList(_film(n_cond_in, c) for c in [chans[-1], *reversed(chans[:-1])])
            if cfg.film
            else None
        )

    def forward(
        self, image: torch.Tensor, cond: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, _, H, W = image.shape
        c = self.project(cond)[:, :, None, None].expand(B, -1, H, W)
        inputs = [image * 2 - 1] + ([] if extra is None else [extra * 2 - 1])
        x = self.stem(torch.cat([*inputs, c], 1))
        skips = [x]
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = self.res(skips.pop())
        films = [None] * (len(self.up) + 1) if self.film is None else [f(cond) for f in self.film]
        x = _modulate(x, films[0])
        for layer, film in zip(reversed(self.up), films[1:], strict=True):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = _modulate(layer(torch.cat([x, skip], 1)), film)
        return x


def _film(n_in: int, channels: int) -> nn.Linear:
    """The condition -> (gamma, beta) of ``channels`` features, starting at the identity."""
    layer = nn.Linear(n_in, 2 * channels)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _modulate(x: torch.Tensor, film: torch.Tensor | None) -> torch.Tensor:
    if film is None:
        return x
    gamma, beta = film[:, :, None, None].chunk(2, 1)
    return x * (1 + gamma) + beta


def _check_inputs(image: torch.Tensor, exprs: list[torch.Tensor], n_expr: int) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
    for y in exprs:
        if y.shape != (image.shape[0], n_expr):
            raise ValueError(
                f"expression must be (B, {n_expr}) = ({image.shape[0]}, {n_expr}), got {tuple(y.shape)}"
            )


def _check_extra(image: torch.Tensor, extra: torch.Tensor | None, n: int, owner: str) -> None:
    """``extra`` must be (B, n, H, W) like ``image`` when ``n`` > 0, and None otherwise."""
    if n and (extra is None or extra.shape != (image.shape[0], n, *image.shape[-2:])):
        got = None if extra is None else tuple(extra.shape)
        raise ValueError(f"extra must be (B, {n}, H, W) for this {owner}, got {got}")
    if not n and extra is not None:
        raise ValueError(f"this {owner} takes no extra inputs")


class TextureGenerator(nn.Module):
    """``G_tex(I, y[, s]) -> (T, M)``: T (B, 3, H, W) colour in [0, 1], M (B, 1, H, W) attention in
    [0, 1]; ``s`` (B, extra_inputs, H, W) in [0, 1] when the config has extra inputs (the mask of
    what the edit synthesised)."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        if config.kind != "texture":
            raise ValueError("TextureGenerator needs GeneratorConfig(kind='texture')")
        self.config = config
        self.trunk = _UNet(config.n_expr, config)
        self.to_texture = nn.Conv2d(self.trunk.out_channels, 3, 3, padding=1)
        self.to_mask = nn.Conv2d(self.trunk.out_channels, 1, 3, padding=1)
        nn.init.constant_(self.to_mask.bias, 2.0)  # start close to "keep the input"

    def forward(
        self,
        image: torch.Tensor,
        expression: torch.Tensor,
        extra: torch.Tensor | None = None,
        detail: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``detail=False``: T without the detail head (:func:`keep_detail`), for a caller that
        applies it at another resolution (the photo's: :func:`editing.gan.refine.refine_face_edit`)."""
        _check_inputs(image, [expression], self.config.n_expr)
        _check_extra(image, extra, self.config.extra_inputs, "generator")
        h = self.trunk(image, expression, extra)
        texture, mask = torch.sigmoid(self.to_texture(h)), torch.sigmoid(self.to_mask(h))
        if detail and self.config.detail_sigma > 0:
            texture = keep_detail(texture, image, self.config.detail_sigma)
        return texture, mask


def keep_detail(texture: torch.Tensor, image: torch.Tensor, sigma: float) -> torch.Tensor:
    """The detail head: ``G_s * texture + (image - G_s * image)`` clamped to [0, 1], on (B, 3, H, W)
    tensors in [0, 1], ``G_s`` a Gaussian blur of ``sigma`` pixels (``GeneratorConfig.detail_sigma``)."""
    return (gaussian_blur(texture, sigma) + image - gaussian_blur(image, sigma)).clamp(0, 1)


def apply_attention(image: torch.Tensor, texture: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``M * I + (1 - M) * T``: image, texture (B, 3, H, W), mask (B, 1, H, W)."""
    return mask * image + (1 - mask) * texture


class DeformationGenerator(nn.Module):
    """``G_def(I, y_src, y_tgt) -> flow``: (B, 2, H, W) displacement (x, y) in normalised coordinates."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig(kind="deform")):
        super().__init__()
        if config.kind != "deform":
            raise ValueError("DeformationGenerator needs GeneratorConfig(kind='deform')")
        self.config = config
        self.trunk = _UNet(2 * config.n_expr, config)
        self.to_flow = nn.Conv2d(self.trunk.out_channels, 2, 3, padding=1)
        nn.init.zeros_(self.to_flow.weight)
        nn.init.zeros_(self.to_flow.bias)

    def forward(self, image: torch.Tensor, y_src: torch.Tensor, y_tgt: torch.Tensor) -> torch.Tensor:
        _check_inputs(image, [y_src, y_tgt], self.config.n_expr)
        H, W = image.shape[-2:]
        s = self.config.flow_stride
        small = F.interpolate(image, size=(H // s, W // s), mode="area") if s > 1 else image
        flow = (
            torch.tanh(self.to_flow(self.trunk(small, torch.cat([y_src, y_tgt], 1)))) * self.config.max_flow
        )
        return F.interpolate(flow, size=(H, W), mode="bilinear", align_corners=False) if s > 1 else flow


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: output(p) = image(p + flow(p)), bilinear, border padding.

    Args:
        image: (B, C, H, W); flow: (B, 2, H, W) in normalised coordinates (x, y), [-1, 1] spans the image.
    """
    B, _, H, W = image.shape
    ys = torch.linspace(-1 + 1 / H, 1 - 1 / H, H, device=image.device, dtype=image.dtype)
    xs = torch.linspace(-1 + 1 / W, 1 - 1 / W, W, device=image.device, dtype=image.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]
    grid = grid + flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Discriminator(nn.Module):
    """Patch realism logits (B, 1, h, w) and expression weights (B, K) in [0, 1]; with
    ``config.extra_inputs`` it also takes (B, extra_inputs, H, W) maps in [0, 1] beside the image
    (the mask of what was synthesised)."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        sn = nn.utils.spectral_norm if config.spectral_norm else (lambda m: m)
        layers, c = [], 3 + config.extra_inputs
        for i in range(config.n_down):
            nc = config.base * 2 ** min(i, 3)
            layers += [sn(nn.Conv2d(c, nc, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            c = nc
        self.trunk = nn.Sequential(*layers)
        self.patch = sn(nn.Conv2d(c, 1, 3, padding=1))
        self.expression = nn.Linear(c, config.n_expr)

    def features(self, image: torch.Tensor, extra: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The trunk's activations after every level (the last one feeds both heads)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        _check_extra(image, extra, self.config.extra_inputs, "discriminator")
        h = image * 2 - 1 if extra is None else torch.cat([image * 2 - 1, extra * 2 - 1], 1)
        out = []
        for layer in self.trunk:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                out.append(h)
        return out

    def forward(
        self, image: torch.Tensor, extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(image, extra)[-1]
        return self.patch(h), torch.sigmoid(self.expression(h.mean((2, 3))))


def n_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
