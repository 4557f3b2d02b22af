"""Generator checkpoints: ``config.json`` (the architecture dataclasses) beside ``weights.pt``,
read and written by :mod:`face3d.pretrained`.

A shipped model folder holds everything needed to rebuild it (the diffusers convention)::

    <folder>/config.json   {"kind": "texture" | "2d", "texture": {...}, "deform": {...} | null, ...}
    <folder>/weights.pt    {"texture": state_dict, "deform": state_dict | absent}

``kind = "texture"`` is the 3D path's clean-up generator alone; ``kind = "2d"`` is the 2D-only
DefGAN baseline (a deformation generator followed by its own texture generator).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from editing.gan.networks import DeformationGenerator, GeneratorConfig, TextureGenerator
from face3d.assets import asset_path
from face3d.errors import Face3DError
from face3d.pretrained import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    config_error,
    cpu_state,
    load_pretrained,
    load_state,
    save_pretrained,
)

KINDS = ("texture", "2d")
WHAT = "generator"  # what the checkpoint error messages call it
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
    weights = {"texture": cpu_state(texture)}
    if deform is not None:
        weights["deform"] = cpu_state(deform)
    config = {
        "kind": "texture" if deform is None else "2d",
        "size": size,
        "texture": dataclasses.asdict(texture.config),
        "deform": None if deform is None else dataclasses.asdict(deform.config),
        "meta": meta or {},
    }
    return save_pretrained(folder, config, weights)


def load_generators(folder: str | os.PathLike) -> GeneratorBundle:
    """Rebuild the generators saved by :func:`save_generators` (no network access), on the CPU
    (:meth:`GeneratorBundle.to` moves them).

    Raises:
        Face3DError: a missing, unreadable or inconsistent ``config.json`` / ``weights.pt`` (the
            message names the file).
    """
    cfg, states = load_pretrained(folder, WHAT, "train one with `face3d train`")
    try:
        kind = cfg["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        texture = TextureGenerator(GeneratorConfig(**cfg["texture"]))
        deform = DeformationGenerator(GeneratorConfig(**cfg["deform"])) if kind == "2d" else None
        size = int(cfg.get("size", 128))
    except (ValueError, KeyError, TypeError) as err:
        raise config_error(folder, WHAT, err) from None
    states = states if isinstance(states, dict) else {}  # not a dict: load_state names the file
    load_state(texture, states.get("texture"), folder, WHAT)
    if deform is not None:
        load_state(deform, states.get("deform"), folder, WHAT)
    return GeneratorBundle(kind, texture, deform, size, cfg.get("meta", {}))


AUTO_KEY = "refine_auto"
"""The ``meta`` entry of a texture generator's ``config.json`` that lets ``--refine auto`` use it:
written true only when the generator beat the hand-made fill on the held-out mouth cycle
(``scripts/bench/bench_mouth_cycle.py``; the README says which way the shipped weights went)."""


def auto_refines(bundle: GeneratorBundle | None) -> bool:
    """Whether ``--refine auto`` uses ``bundle``: a texture generator that earned it (:data:`AUTO_KEY`)."""
    return bundle is not None and bundle.kind == "texture" and bundle.meta.get(AUTO_KEY) is True


WIN_BINS, KEEP_BINS = ("[0,30)", "[30,60)"), ("[60,90]",)
"""Where a texture generator must beat the hand-made fill on the mouth cycle (the paired PSNR
difference's interval above :data:`WIN_DB`, the median PSNR at least :data:`MIN_PSNR_DB`) and where
it must merely not lose (the interval reaching zero). Its mouths must also look at least as real as
the fill's: KID over all faces no higher."""

WIN_DB, MIN_PSNR_DB = 0.3, 21.0
"""The mouth cycle's win: the paired PSNR gain's lower bound (dB) and the generator's median PSNR."""


def cycle_verdict(per_bin: dict) -> tuple[bool, str]:
    """Whether a texture generator earned ``--refine auto``, from the per-bin summary of
    ``scripts/bench/bench_mouth_cycle.py`` (``psnr_diff``: [mean, low, high] of gan - none, dB, per
    |yaw| bin; ``"all"``: ``kid_none`` and ``kid_gan``, the realism of the mouths over all faces).

    Returns:
        (earned, the reason in one line).
    """
    for b in WIN_BINS + KEEP_BINS:
        if b not in per_bin:
            return False, f"no faces in {b}"
        _, lo, hi = per_bin[b]["psnr_diff"]
        if b in WIN_BINS and not lo > WIN_DB:
            gain = f"[{lo:+.2f}, {hi:+.2f}] dB"
            return False, f"{b}: the PSNR gain's interval {gain} does not lie above {WIN_DB}"
        psnr = per_bin[b].get("psnr_gan_median", MIN_PSNR_DB)
        if b in WIN_BINS and psnr < MIN_PSNR_DB:
            return False, f"{b}: median mouth PSNR {psnr:.1f} dB, under {MIN_PSNR_DB}"
        if b in KEEP_BINS and not hi >= 0:
            return False, f"{b}: worse than the fill, [{lo:+.2f}, {hi:+.2f}] dB"
    kid_fill, kid_gen = per_bin.get("all", {}).get("kid_none"), per_bin.get("all", {}).get("kid_gan")
    if kid_fill is None or kid_gen is None:
        return False, "no realism (KID) measured"
    if kid_gen > kid_fill:
        diff = per_bin["all"].get("kid_diff")
        paired = f"; difference {diff[0]:+.1f} [{diff[1]:+.1f}, {diff[2]:+.1f}]" if diff else ""
        kids = f"KID x100 {kid_gen:.1f} against {kid_fill:.1f}{paired}"
        return False, f"its mouths look less real than the fill's ({kids})"
    return True, "beats the fill at [0,30) and [30,60), is not worse at [60,90], and looks as real"


def shipped_generators(kind: str, required: bool = False) -> GeneratorBundle | None:
    """The shipped generators of ``kind`` (:data:`SHIPPED`), or None when absent and not ``required``.

    Raises:
        Face3DError: ``required`` and the weights are missing, or they exist but are corrupt.
    """
    folder = SHIPPED[kind]
    if not required and not (folder / WEIGHTS_NAME).is_file():
        return None
    bundle = load_generators(folder)
    if bundle.kind != kind:
        raise Face3DError(f"{folder / CONFIG_NAME} holds kind {bundle.kind!r}, expected {kind!r}")
    return bundle
