"""The unknowns of the residual fit (:mod:`face3d.fit.residual`): a convolutional generator's
weights (the reparametrisation ``D = f_theta(s)``) or free per-vertex values, and the split of the
displacement into a smooth part and detail.

**The split.** With ``smooth_cm`` > 0 the unknowns hold two fields in [-1, 1], ``a`` and ``b``, per
displacement channel; the displacement is

    D = smooth_scale * lowpass(a) + detail_scale * (b - lowpass(b)) / 2

``lowpass`` a Gaussian of about ``smooth_cm`` (on the UV map for the generator, by lazy neighbour
averaging on the mesh for free values). Both parts are bounded (``|smooth| <= smooth_scale``,
``|detail| <= detail_scale``, cm): the smooth part bends the face (the landmarks and its own
magnitude penalty hold it), the detail has no local mean, so it cannot move the face's shape, only
add relief. ``smooth_cm`` = 0 is the unsplit ``D = output_scale * tanh(.)``.
"""

from __future__ import annotations

import torch
from torch import nn

from face3d.filters import gaussian_blur
from face3d.fit.residual_mesh import MeshOperators, cached, normals, sample_at_vertices


class ResidualGenerator(nn.Module):
    """``f_theta(s)``: fixed noise (1, C0, h, w) -> (1, out_channels, h * 2^k, w * 2^k) map.

    conv3x3 + LeakyReLU at the latent size, then ``k`` blocks of bilinear x2 upsampling,
    conv3x3 + LeakyReLU; a final conv3x3 (zero-initialised, so the map starts at 0) and
    ``tanh * output_scale``.
    """

    def __init__(
        self,
        latent_size: tuple[int, int] = (16, 32),
        latent_channels: int = 16,
        channels: tuple[int, ...] = (32, 16, 8),
        output_scale: float = 1.0,
        seed: int = 0,
        out_channels: int = 3,
    ):
        super().__init__()
        with torch.random.fork_rng():  # deterministic, and the global generator is left alone
            torch.manual_seed(seed)
            self.register_buffer("noise", torch.rand(1, latent_channels, *latent_size) * 0.1)
            layers: list[nn.Module] = [
                nn.Conv2d(latent_channels, channels[0], 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
            for cin, cout in zip(channels[:-1], channels[1:], strict=True):
                layers += [
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(cin, cout, 3, padding=1),
                    nn.LeakyReLU(0.2),
                ]
            self.body = nn.Sequential(*layers)
            self.head = nn.Conv2d(channels[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.output_scale = float(output_scale)

    def forward(self) -> torch.Tensor:
        return torch.tanh(self.head(self.body(self.noise))) * self.output_scale


def texel_cm(model, ops: MeshOperators, map_size: tuple[int, int]) -> float:
    """Median template length (cm) of one texel of a ``map_size`` UV map over the region's triangles."""

    def make() -> float:
        f, t, uv = ops.faces, model.template.detach().float().cpu(), ops.corner_uvs
        inside = ops.region[f].all(1)
        edge = (t[f[:, 1]] - t[f[:, 0]]).norm(dim=-1)[inside]
        tex = ((uv[:, 1] - uv[:, 0]) * torch.tensor([map_size[1], map_size[0]])).norm(dim=-1)[inside]
        return float((edge / tex.clamp(min=1e-6)).median())

    return cached(model, ("texel_cm", tuple(map_size)), make)


def mesh_lowpass(x: torch.Tensor, ops: MeshOperators, iterations: int) -> torch.Tensor:
    """(V, C) per-vertex values averaged lazily with their neighbours ``iterations`` times."""
    for _ in range(iterations):
        x = x - 0.5 * ops.laplacian(x)
    return x


class Displacement:
    """The residual's unknowns (see the module doc): the generator's weights (``"conv"``), free
    per-vertex values (``"free"``) or none; C = 1 channel along the linear fit's normals or 3 in
    model space. ``config`` is a :class:`face3d.fit.residual.ResidualConfig`."""

    def __init__(self, model, ops: MeshOperators, base: torch.Tensor, config):
        self.ops, self.config = ops, config
        self.along = normals(base, ops) if config.displacement == "normal" else None  # (1, V, 3)
        self.C = nc = 1 if self.along is not None else 3
        self.split = config.smooth_cm > 0
        raw = 2 * nc if self.split else nc
        V = base.shape[1]
        self.gen = None
        self.free = torch.zeros(1, V, raw, requires_grad=config.parametrisation == "free")
        c = config
        if c.parametrisation == "conv":
            scale = 1.0 if self.split else c.output_scale
            self.gen = ResidualGenerator(c.latent_size, c.latent_channels, c.channels, scale, c.seed, raw)
        self.params = [self.free] if self.free.requires_grad else []
        if self.gen is not None:
            self.params = list(self.gen.parameters())
        self.lr0 = c.lr if self.gen is not None else c.free_lr
        if self.split:
            self.sigma = c.smooth_cm / texel_cm(model, ops, c.map_size)
            # lazy averaging adds half the mean squared edge length to the variance per pass
            e = base[0, ops.edges[:, 0]] - base[0, ops.edges[:, 1]]
            self.passes = max(1, round(c.smooth_cm**2 / (0.5 * float((e**2).sum(-1).mean()))))

    def _split_map(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 2C, H, W) in [-1, 1] -> smooth and detail (1, C, H, W) maps, cm."""
        a, b = raw[:, : self.C], raw[:, self.C :]
        c = self.config
        detail = b - gaussian_blur(b, self.sigma)
        return c.smooth_scale * gaussian_blur(a, self.sigma), c.detail_scale * 0.5 * detail

    def _split_vertices(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, V, 2C) free values -> smooth and detail (1, V, C), cm."""
        g, c = torch.tanh(raw[0]), self.config
        a, b = g[:, : self.C], g[:, self.C :]
        lp = mesh_lowpass(torch.cat([a, b], 1), self.ops, self.passes)
        return (c.smooth_scale * lp[:, : self.C])[None], (c.detail_scale * 0.5 * (b - lp[:, self.C :]))[None]

    def parts(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(total (1, V, 3), smooth (1, V, 3) or None, map (1, C', Hd, Wd) or None): the current model-space
        offsets, differentiable in the parameters, their smooth part (when split) and the generator's
        displacement map in cm (``"conv"``)."""
        smooth, disp = None, None
        if self.gen is not None:
            disp = self.gen()
            if self.split:
                s_map, d_map = self._split_map(disp)
                disp = s_map + d_map
                smooth = self._offsets(sample_at_vertices(s_map, self.ops))
            total = self._offsets(sample_at_vertices(disp, self.ops))
        elif self.split:
            s, d = self._split_vertices(self.free)
            smooth, total = self._offsets(s), self._offsets(s + d)
        else:
            total = self._offsets(self.free)
        return total, smooth, disp

    def _offsets(self, x: torch.Tensor) -> torch.Tensor:
        """(1, V, C) -> (1, V, 3) model-space offsets."""
        return x if self.along is None else x * self.along
