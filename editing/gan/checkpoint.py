"""Generator checkpoints: ``config.json`` (the architecture dataclasses) beside ``weights.pt``.

A shipped model folder holds everything needed to rebuild it (the diffusers convention)::

    <folder>/config.json   {"kind": "texture" | "2d", "texture": {...}, "deform": {...} | null, ...}
    <folder>/weights.pt    {"texture": state_dict, "deform": state_dict | absent}

``kind = "texture"`` is the 3D path's clean-up generator alone; ``kind = "2d"`` is the 2D-only
DefGAN baseline (a deformation generator followed by its own texture generator).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from editing.gan.networks import DeformationGenerator, GeneratorConfig, TextureGenerator
from face3d.assets import asset_path
from face3d.errors import Face3DError
from face3d.io import atomic_write_bytes, atomic_write_json

KINDS = ("texture", "2d")
SHIPPED: dict[str, Path] = {"texture": asset_path("gan3d"), "2d": asset_path("defgan")}
"""Where the shipped weights of each kind live (``config.json`` + ``weights.pt``)."""


@dataclass(frozen=True)
class GeneratorBundle:
    """Loaded generators of one method.

    Attributes:
        kind: ``"texture"`` (3D path clean-up) or ``"2d"`` (2D-only baseline).
        texture: the texture generator ``G_tex``.
        deform: the deformation generator ``G_def`` (``kind == "2d"`` only).
        size: the square crop side the generators were trained on (pixels).
        meta: free-form provenance saved with the weights (command, step, data).
    """

    kind: str
    texture: TextureGenerator
    deform: DeformationGenerator | None
    size: int
    meta: dict

    def to(self, device) -> GeneratorBundle:
        return dataclasses.replace(
            self,
            texture=self.texture.to(device),
            deform=None if self.deform is None else self.deform.to(device),
        )


def save_generators(
    folder: str | os.PathLike,
    texture: TextureGenerator,
    deform: DeformationGenerator | None = None,
    size: int = 128,
    meta: dict | None = None,
) -> Path:
    """Write ``config.json`` and ``weights.pt`` atomically into ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = "texture" if deform is None else "2d"
    states = {"texture": _cpu_state(texture)}
    if deform is not None:
        states["deform"] = _cpu_state(deform)
    buf = io.BytesIO()
    torch.save(states, buf)
    atomic_write_bytes(folder / "weights.pt", buf.getvalue())
    atomic_write_json(
        folder / "config.json",
        {
            "kind": kind,
            "size": size,
            "texture": dataclasses.asdict(texture.config),
            "deform": None if deform is None else dataclasses.asdict(deform.config),
            "meta": meta or {},
        },
    )
    return folder


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_generators(folder: str | os.PathLike, map_location="cpu") -> GeneratorBundle:
    """Rebuild the generators saved by :func:`save_generators` (no network access).

    Raises:
        Face3DError: a missing, unreadable or inconsistent ``config.json`` / ``weights.pt`` (the
            message names the file).
    """
    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "weights.pt"
    for p in (w_path, cfg_path):
        if not p.is_file():
            raise Face3DError(f"generator file {p} does not exist (train one with `face3d train`)")
    try:
        cfg = json.loads(cfg_path.read_text())
        kind = cfg["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        texture = TextureGenerator(GeneratorConfig(**cfg["texture"]))
        deform = DeformationGenerator(GeneratorConfig(**cfg["deform"])) if kind == "2d" else None
        size = int(cfg.get("size", 128))
    except (ValueError, KeyError, TypeError) as err:
        raise Face3DError(f"generator config {cfg_path} is invalid: {err}") from None
    try:
        states = torch.load(w_path, map_location=map_location, weights_only=True)
        texture.load_state_dict(states["texture"])
        if deform is not None:
            deform.load_state_dict(states["deform"])
    except Exception as err:  # noqa: BLE001 - any unpickling/shape error means a corrupt file
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise Face3DError(
            f"generator weights {w_path} are corrupt or do not match {cfg_path}: {msg}"
        ) from None
    texture.eval()
    if deform is not None:
        deform.eval()
    return GeneratorBundle(kind, texture, deform, size, cfg.get("meta", {}))


def shipped_generators(kind: str, required: bool = False, map_location="cpu") -> GeneratorBundle | None:
    """The shipped generators of ``kind`` (:data:`SHIPPED`), or None when absent and not ``required``.

    Raises:
        Face3DError: ``required`` and the weights are missing, or they exist but are corrupt.
    """
    folder = SHIPPED[kind]
    if not required and not (folder / "weights.pt").is_file():
        return None
    bundle = load_generators(folder, map_location)
    if bundle.kind != kind:
        raise Face3DError(f"{folder / 'config.json'} holds kind {bundle.kind!r}, expected {kind!r}")
    return bundle
