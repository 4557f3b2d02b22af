"""The fit's overlay: the shaded mesh over the photo, a large face shaded at a capped size."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def astronaut(ict_model):
    from face3d.demo import example_image
    from face3d.fit import fit_image

    image = example_image()
    faces = fit_image(image, ict_model)
    assert len(faces) == 1
    return image, faces


def _full_frame(image, faces, model, alpha=0.55) -> np.ndarray:
    """The overlay's blend of a render of the whole image (no crop, no cap), points left out."""
    from face3d.render import render

    out = image.astype(np.float32) / 255.0
    for face in faces:
        with torch.no_grad():
            r = render(face.fit.vertices_cam(model), model.faces, face.fit.intrinsics, image.shape[:2])
        mask = r.mask[0].numpy()[..., None] * alpha
        out = out * (1 - mask) + r.image[0].numpy() * mask
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def test_overlay_shades_the_face_box_like_a_full_frame_render(ict_model, astronaut, monkeypatch):
    import face3d.fit.outputs as outputs

    image, faces = astronaut
    nan = np.full((68, 2), np.nan)  # no points drawn: the shading alone is compared
    unmarked = torch.from_numpy(nan)[None]
    bare = [replace(f, landmarks_detected=nan, fit=replace(f.fit, landmarks_fitted=unmarked)) for f in faces]
    reference = _full_frame(image, bare, ict_model)
    same = outputs.overlay_image(image, bare, ict_model)
    assert np.abs(same.astype(int) - reference).max() <= 1  # the crop renders the same pixels
    monkeypatch.setattr(outputs, "OVERLAY_MAX_PX", 96)  # the astronaut's face box is about 200 px
    capped = outputs.overlay_image(image, bare, ict_model)
    diff = np.abs(capped.astype(int) - reference).max(-1)
    assert diff.mean() < 1.0 and np.mean(diff > 8) < 0.01  # resized shading: only the outline moves
    assert not np.array_equal(capped, same)


def _texture(tmp_path, name, image, face, model):
    from PIL import Image

    from face3d.fit.outputs import texture_layout, write_face

    write_face(tmp_path, name, image, face, model, texture_layout(model), "x.png")
    return np.asarray(Image.open(tmp_path / f"{name}_{face.face_index}.png")).astype(float)


def test_a_large_photo_is_sampled_in_the_face_box_at_the_cap(ict_model, astronaut, monkeypatch, tmp_path):
    import face3d.fit.outputs as outputs

    image, faces = astronaut
    full = _texture(tmp_path, "full", image, faces[0], ict_model)
    monkeypatch.setattr(outputs, "OVERLAY_MAX_PX", 128)  # the 512 px photo is large now, its ~300 px head too
    capped = _texture(tmp_path, "capped", image, faces[0], ict_model)
    a, b = full.sum(-1) > 0, capped.sum(-1) > 0
    both = a & b
    assert abs(int(a.sum()) - int(b.sum())) < 0.05 * a.sum()  # the same texels seen, but near the outline
    psnr = 10 * np.log10(255.0**2 / ((full - capped)[both] ** 2).mean())
    assert 25.0 < psnr < 60.0, psnr  # a 128 px face's texture: the same colours, less detail
