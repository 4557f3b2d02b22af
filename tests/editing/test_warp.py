"""editing.warp: the backward map of a moved surface, the motion field around it, the warp."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from editing.warp import (
    MINIFY_SIGMA,
    STILL_PX,
    WarpConfig,
    dense_motion,
    despeckle,
    moving,
    surface_map,
    warp_image,
)
from face3d.render import RenderConfig, rasterize


def _plane(n: int = 12, z: float = 50.0, half: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A grid of (n x n) vertices in the plane z (cm), facing the camera, and its triangles."""
    xs = torch.linspace(-half, half, n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, xs, indexing="xy")
    verts = torch.stack([X.reshape(-1), Y.reshape(-1), torch.full((n * n,), z, dtype=torch.float64)], -1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            faces += [(i, i + n, i + 1), (i + 1, i + n, i + n + 1)]
    return verts[None], torch.tensor(faces, dtype=torch.int64)


def _map(v_src, v_tgt, faces, K, size=(96, 96)):
    cfg = RenderConfig(backend="fast")
    src, _, _ = rasterize(v_src, faces, K, size, cfg)
    tgt, _, _ = rasterize(v_tgt, faces, K, size, cfg)
    return surface_map(tgt, v_src, v_tgt, faces, K, src.zbuf[..., 0], src.pix_to_face[..., 0] >= 0)


def test_a_translated_surface_gives_the_analytic_motion():
    """Moving a fronto-parallel plane by t cm at depth z moves its image by f t / z pixels: each
    target pixel shows what the photo showed f t / z pixels back."""
    v_src, faces = _plane()
    K = torch.tensor([[400.0, 400.0, 47.5, 47.5]], dtype=torch.float64)
    t = 0.3
    m = _map(v_src, v_src + torch.tensor([t, -0.5 * t, 0.0], dtype=torch.float64), faces, K)
    assert m.seen.sum() > 2000
    h, w = m.seen.shape
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    motion = m.source_px - np.stack([gx, gy], -1)
    shift = 400.0 * t / 50.0  # 2.4 px
    np.testing.assert_allclose(motion[m.seen][:, 0], -shift, atol=1e-3)
    np.testing.assert_allclose(motion[m.seen][:, 1], 0.5 * shift, atol=1e-3)
    np.testing.assert_allclose(m.normal_source[m.seen], m.normal_target[m.seen], atol=1e-6)


def test_a_surface_facing_away_is_not_seen_unless_two_sided():
    v_src, faces = _plane()
    K = torch.tensor([[400.0, 400.0, 47.5, 47.5]], dtype=torch.float64)
    flipped = faces[:, [0, 2, 1]]  # the same plane, its normals pointing away from the camera
    cfg = RenderConfig(backend="fast")
    frags, _, _ = rasterize(v_src, flipped, K, (96, 96), cfg)
    depth, covered = frags.zbuf[..., 0], frags.pix_to_face[..., 0] >= 0
    one_sided = surface_map(frags, v_src, v_src, flipped, K, depth, covered)
    two_sided = surface_map(
        frags, v_src, v_src, flipped, K, depth, covered, faces_two_sided=torch.ones(len(faces), dtype=bool)
    )
    assert one_sided.covered.sum() > 2000 and not one_sided.seen.any()
    assert (two_sided.seen == two_sided.covered).all()


def test_dense_motion_keeps_the_known_motion_and_vanishes_far_away():
    h, w = 240, 300
    known = np.zeros((h, w), bool)
    known[80:160, 100:200] = True
    motion = np.zeros((h, w, 2), np.float32)
    motion[known] = (3.0, -2.0)
    dense = dense_motion(motion, known, face_size=100.0, config=WarpConfig(smooth_px=0.8))
    np.testing.assert_allclose(dense[known], motion[known], atol=1e-5)  # a constant field stays exact
    assert np.abs(dense[:5]).max() < STILL_PX and np.abs(dense[:, :5]).max() < STILL_PX
    step = max(np.abs(np.diff(dense, axis=0)).max(), np.abs(np.diff(dense, axis=1)).max())
    assert step < 1.0  # continuous: no seam (a jump of the whole 3.6 px) at the known region's border
    hole = known.copy()
    hole[118:122, 148:152] = False  # a few hidden pixels inside take their neighbours' motion
    filled = dense_motion(motion, hole, 100.0)[118:122, 148:152]
    np.testing.assert_allclose(filled, np.broadcast_to([3.0, -2.0], filled.shape), atol=0.05)


def test_zero_motion_keeps_every_byte_and_small_motion_too():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert np.array_equal(warp_image(image, np.zeros((40, 50, 2), np.float32)), image)
    tiny = np.full((40, 50, 2), 0.8 * STILL_PX / np.sqrt(2), np.float32)
    assert np.array_equal(warp_image(image, tiny), image) and not moving(tiny).any()
    shifted = warp_image(image, np.full((40, 50, 2), (1.0, 0.0), np.float32))
    np.testing.assert_array_equal(shifted[:, :-1], image[:, 1:])  # whole pixels: an exact shift


@pytest.mark.parametrize("dx", [0.25, 0.5])
def test_a_subpixel_shift_keeps_a_smooth_image_close(dx):
    y, x = np.mgrid[0:40, 0:50]
    image = np.rint(127 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.uint8)[..., None].repeat(3, -1)
    out = warp_image(image, np.full((40, 50, 2), (dx, 0.0), np.float32)).astype(float)
    want = (127 + 100 * np.sin((x + dx) / 5.0) * np.cos(y / 7.0))[..., None]
    assert np.abs(out - want)[2:-2, 2:-3].max() < 2.0


def _warp_whole_image(image: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """The reference: :func:`warp_image`'s lookup, scale and blend over every pixel."""
    h, w = image.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + motion[..., 0], gy + motion[..., 1]
    out = cv2.remap(image, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    jx = np.gradient(mx, axis=1) * np.gradient(my, axis=0)
    jy = np.gradient(mx, axis=0) * np.gradient(my, axis=1)
    blend = np.clip(np.abs(jx - jy) - 1.0, 0.0, 1.0)[..., None]
    if (blend > 0.05).any():
        soft = cv2.remap(cv2.GaussianBlur(image, (0, 0), MINIFY_SIGMA), mx, my, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        out = np.clip(out * (1.0 - blend) + soft * blend + 0.5, 0, 255).astype(np.uint8)
    still = np.hypot(motion[..., 0], motion[..., 1]) < STILL_PX
    out[still] = image[still]
    return out


@pytest.mark.parametrize("corner", [False, True])
def test_the_warp_in_the_moving_box_equals_the_whole_image_lookup(corner):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:90, 0:120].astype(np.float32)
    cy, cx = (0.0, 0.0) if corner else (50.0, 70.0)  # a bump at the image's corner or inside it
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 9.0**2)).astype(np.float32)
    motion = np.stack([4.0 * bump, -6.0 * bump * (yy - cy) / 9.0], -1).astype(np.float32)  # compresses
    motion[np.hypot(motion[..., 0], motion[..., 1]) < 1e-3] = 0.0  # a box, not the whole image
    out = warp_image(image, motion)
    assert moving(motion).mean() < 0.5 and not np.array_equal(out, image)
    assert np.array_equal(out, _warp_whole_image(image, motion))


def test_despeckle_removes_the_edits_dots_and_keeps_the_photos_own():
    """A dark dot the edit made on smooth skin is replaced by its neighbours' median; a freckle of
    the photo, moved 3 px by the warp, stays; so do a drawn line and every unchanged pixel."""
    photo = np.full((20, 20, 3), 180, np.uint8)
    photo[5, 5] = 40  # the photo's own freckle
    out = photo.copy()
    out[5, 5] = 180
    out[5, 8] = 40  # the freckle, moved 3 px right: sampled from (5, 5)
    out[12, 12] = 30  # a dot the edit made
    out[16, 2:9] = 20  # a line (an outline), not a dot
    motion = np.zeros((20, 20, 2), np.float32)
    motion[5, 8] = (-3.0, 0.0)
    fixed = despeckle(out, photo, motion, np.zeros((20, 20), bool))
    assert (fixed[12, 12] == 180).all()
    assert (fixed[5, 8] == 40).all() and (fixed[16, 2:9] == 20).all()
    untouched = np.ones((20, 20), bool)
    untouched[12, 12] = False
    assert (fixed[untouched] == out[untouched]).all()
    drawn = np.zeros((20, 20), bool)
    drawn[5, 8] = True  # drawn, it came from no photo pixel: a dot like any other
    assert (despeckle(out, photo, motion, drawn)[5, 8] == 180).all()
    assert despeckle(photo, photo, motion, drawn) is photo  # nothing changed, nothing to do


def _two_depths(h: int = 40, w: int = 80, near_from: int = 40):
    """A SurfaceMap: a near surface (depth 10 cm) on columns >= near_from in front of a far one
    (13 cm), everything seen; the far surface moves (0, 6) px, the near one not at all."""
    from editing.warp import SurfaceMap

    depth = np.full((h, w), 13.0, np.float32)
    depth[:, near_from:] = 10.0
    covered = np.ones((h, w), bool)
    zeros3 = np.zeros((h, w, 3), np.float32)
    smap = SurfaceMap(
        np.zeros((h, w, 2), np.float32), covered, covered, np.zeros((h, w), np.int64), zeros3, zeros3, depth
    )
    motion = np.zeros((h, w, 2), np.float32)
    motion[:, :near_from, 1] = 6.0
    return smap, motion


def test_the_surface_behind_an_occluding_contour_takes_the_occluders_motion():
    from editing.warp import hold_behind_occluders

    smap, motion = _two_depths()
    config = WarpConfig(occluder_band_frac=0.1, occluder_jump_cm=1.0)  # band: 10 px at face size 100
    held = hold_behind_occluders(motion, smap, np.ones((40, 80), bool), 100.0, config)
    np.testing.assert_array_equal(held[:, 40:], 0.0)  # the occluder keeps its own (zero) motion
    np.testing.assert_allclose(held[:, 35:40, 1], 0.0, atol=1e-6)  # the band's first half: the occluder's
    np.testing.assert_array_equal(held[:, :29], motion[:, :29])  # beyond the band: untouched
    column = held[20, 25:40, 1]
    assert np.all(np.diff(column) <= 1e-6) and column[0] == 6.0  # falls monotonically in between
    assert 0.0 < held[20, 32, 1] < 6.0


def test_no_band_where_the_step_is_small_the_pixels_are_not_movable_or_it_is_off():
    from editing.warp import hold_behind_occluders

    smap, motion = _two_depths()
    config = WarpConfig(occluder_band_frac=0.1, occluder_jump_cm=1.0)
    movable = np.ones((40, 80), bool)
    shallow = WarpConfig(occluder_band_frac=0.1, occluder_jump_cm=5.0)  # 3 cm is under the jump
    np.testing.assert_array_equal(hold_behind_occluders(motion, smap, movable, 100.0, shallow), motion)
    off = WarpConfig(occluder_band_frac=0.0)
    np.testing.assert_array_equal(hold_behind_occluders(motion, smap, movable, 100.0, off), motion)
    movable[:, :40] = False  # the far surface is the mouth's interior: its own motion stays
    np.testing.assert_array_equal(hold_behind_occluders(motion, smap, movable, 100.0, config), motion)
