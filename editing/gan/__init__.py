"""DefGAN generators at inference: aligned face crops (:mod:`~editing.gan.crop`), the networks
(:mod:`~editing.gan.networks`), their checkpoints (:mod:`~editing.gan.checkpoint`), the clean-up
of 3D edits and the 2D-only baseline (:mod:`~editing.gan.refine`). Training: :mod:`editing.train`."""

from editing.gan.checkpoint import GeneratorBundle, load_generators, save_generators, shipped_generators
from editing.gan.refine import deform_2d, refine_face_edit, refine_image_edit, texture_2d

__all__ = [
    "GeneratorBundle",
    "deform_2d",
    "load_generators",
    "refine_face_edit",
    "refine_image_edit",
    "save_generators",
    "shipped_generators",
    "texture_2d",
]
