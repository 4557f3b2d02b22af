"""editing.mouth: the inner-lip opening, the interior colours and their toning."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from editing.mouth import (
    LIPS_CHROMA,
    PART_COLORS,
    REFERENCE_SCLERA,
    REFERENCE_SKIN,
    THROAT_CM,
    THROAT_FLOOR,
    desaturate,
    lips_saturation,
    mouth_opening,
    part_colors,
    photo_opening,
    photo_tone,
    sclera_colour,
    throat_falloff,
    tone_pixels,
)


def test_the_opening_is_the_inner_lip_polygon_grown():
    lm = torch.zeros(1, 68, 3)
    ring = [(40, 50), (50, 46), (60, 46), (70, 50), (60, 58), (50, 58), (45, 55), (65, 55)]
    order = [0, 1, 2, 3, 7, 4, 5, 6]  # iBUG 60..67 go round the inner lips
    for i, k in zip(range(60, 68), order, strict=True):
        lm[0, i] = torch.tensor([*ring[k], 50.0])
    K = torch.tensor([[50.0, 50.0, 0.0, 0.0]])  # at z = 50 cm: pixels = model x, y
    tight = mouth_opening(lm, K, (100, 100), face_size=0.0)
    grown = mouth_opening(lm, K, (100, 100), face_size=100.0)
    assert tight[52, 55] and not tight[30, 55] and not tight[52, 20]
    assert tight.sum() < grown.sum() and grown[tight].all()


def test_the_photos_own_opening_is_its_detected_inner_lips_less_their_edge():
    import cv2

    lm = np.zeros((68, 2))  # iBUG 60 left corner, 61-63 upper inner lip, 64 right corner, 65-67 lower
    lm[60:68] = [(140, 150), (150, 146), (160, 146), (170, 150), (175, 152), (160, 158), (150, 158),
                 (145, 155)]  # fmt: skip
    mask = photo_opening(lm, (100, 100), (100, 100))  # a crop from (100, 100)
    assert mask.shape == (100, 100) and mask[52, 55] and not mask[30, 55] and not mask[52, 20]
    full = np.zeros((100, 100), np.uint8)
    cv2.fillPoly(full, [np.round(lm[60:68] - 100).astype(np.int32)], 1)
    assert 0 < mask.sum() < full.sum() and full[mask].all()  # a pixel of the lips' edge is left out
    closed = lm.copy()
    closed[65:68] = closed[[63, 62, 61]]  # the lower inner lip on the upper one: the lips touch
    assert not photo_opening(closed, (100, 100), (100, 100)).any()


def test_the_tone_is_read_on_the_skin_around_the_mouth():
    lm = np.zeros((68, 2))
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.stack([50 + 10 * np.cos(t), 70 + 4 * np.sin(t)], 1)  # a 20 px wide mouth at (50, 70)
    face = np.zeros((100, 100), bool)
    face[20:95, 15:85] = True
    ring = tone_pixels(lm, face)
    ys, xs = np.nonzero(ring)
    assert ring.sum() > 100 and not ring[70, 50]  # around the lips, not on them
    assert ys.min() >= 70 - 4 - 11 and xs.max() <= 50 + 10 + 11  # within half the mouth's width
    photo = np.full((100, 100, 3), 60, np.uint8)  # a dark face (hair, the far cheek's shadow) ...
    photo[ring] = 180  # ... around a lit mouth
    lit = np.full((100, 100, 3), 180, np.uint8)
    np.testing.assert_allclose(photo_tone(photo, ring), photo_tone(lit, face))  # the shadow does not count
    far = face & (np.arange(100)[:, None] < 30)  # no skin around the mouth: all the face's
    assert np.array_equal(tone_pixels(lm, far), far)


def test_the_sclera_is_read_in_the_larger_eye_and_warms_the_tone_of_a_warm_light():
    lm = np.zeros((68, 2))
    t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    lm[36:42] = np.stack([30 + 3 * np.cos(t), 40 + 1 * np.sin(t)], 1)  # a nearly closed eye
    lm[42:48] = np.stack([70 + 10 * np.cos(t), 40 + 4 * np.sin(t)], 1)  # an open one
    photo = np.full((100, 100, 3), 40, np.uint8)  # iris and lashes ...
    photo[38:43, 64:77] = (240, 200, 170)  # ... and a warm-lit sclera in the open eye
    photo[40, 70] = 255  # a glint
    photo[39:42, 28:33] = (255, 0, 0)  # the closed eye is not read
    np.testing.assert_allclose(sclera_colour(photo, lm), (240, 200, 170))
    assert sclera_colour(photo, np.zeros((68, 2))) is None  # no eye: no reading
    skin, face = np.ones((10, 10), bool), np.broadcast_to(REFERENCE_SKIN * 255, (10, 10, 3)).astype(np.uint8)
    plain = photo_tone(face, skin)
    neutral = REFERENCE_SCLERA * 200
    np.testing.assert_allclose(photo_tone(face, skin, neutral), plain)  # the reference cast: no change
    warm = photo_tone(face, skin, np.array([250.0, 190.0, 140.0]))  # an orange light
    assert warm[0] / warm[2] > 1.05 * plain[0] / plain[2]


def test_the_interior_is_as_saturated_as_the_photos_lips():
    lm = np.zeros((68, 2))
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.stack([50 + 12 * np.cos(t), 70 + 6 * np.sin(t)], 1)  # outer lips
    t8 = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68] = np.stack([50 + 6 * np.cos(t8), 70 + 1 * np.sin(t8)], 1)  # inner lips, nearly closed
    photo = np.full((100, 100, 3), 150, np.uint8)
    assert lips_saturation(photo, lm) == 0.0  # a grey photo: a grey interior
    red = photo.copy()
    red[64:77, 38:63] = (190, 110, 110)  # red lips (chroma 80 levels)
    assert lips_saturation(red, lm) == 1.0
    toned = photo.copy()
    toned[..., 2] = 160  # a bluish-toned black-and-white photo: 10 levels of chroma on the lips too
    assert abs(lips_saturation(toned, lm) - 10.0 / LIPS_CHROMA) < 1e-6
    rgb = np.array([[0.6, 0.2, 0.2], [0.3, 0.3, 0.3]])
    grey = desaturate(rgb, 0.0)
    np.testing.assert_allclose(grey[:, 0], grey[:, 2])
    np.testing.assert_allclose(grey[1], rgb[1])  # a grey colour stays
    np.testing.assert_allclose(grey @ [0.299, 0.587, 0.114], rgb @ [0.299, 0.587, 0.114])  # luma kept
    np.testing.assert_allclose(desaturate(rgb, 1.0), rgb)
    np.testing.assert_allclose(desaturate(rgb, 0.5) - grey, 0.5 * (rgb - grey))


def test_tone_follows_the_photos_exposure_and_keeps_grey_grey():
    mask = np.ones((10, 10), bool)
    ref = np.clip(REFERENCE_SKIN * 255, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(photo_tone(np.broadcast_to(ref, (10, 10, 3)).copy(), mask), 1.0, atol=0.02)
    dark = photo_tone(np.broadcast_to(ref // 2, (10, 10, 3)).copy(), mask)
    assert (dark < 0.6).all()
    grey = photo_tone(np.full((10, 10, 3), 150, np.uint8), mask)
    assert np.ptp(grey) > 0  # a grey photo still tones a colour part by the reference's hue


def _toy_head():
    """Six vertices on the head's forward axis: skin at z=11, teeth at 10 and 9, tongue at 8,
    socket at 5 and deep at -20 cm."""
    z = torch.tensor([11.0, 10.0, 9.0, 8.0, 5.0, -20.0])
    template = torch.stack([torch.zeros(6), torch.zeros(6), z], 1)
    regions = {"teeth": (1, 2), "gums_tongue": (3, 3), "mouth_socket": (4, 5)}
    regions |= {"eye_socket_left": (0, -1), "eye_socket_right": (0, -1)}
    return SimpleNamespace(template=template, regions=regions, n_vertices=6)


def test_the_interior_darkens_with_depth_behind_the_front_teeth():
    f = throat_falloff(_toy_head()).numpy()
    assert f[0] == f[1] == 1.0  # in front of and at the front teeth
    np.testing.assert_allclose(f[3], THROAT_FLOOR + (1 - THROAT_FLOOR) * np.exp(-2.0 / THROAT_CM), rtol=1e-6)
    assert (np.diff(f[1:]) < 0).all() and f[-1] >= THROAT_FLOOR and f[-1] < THROAT_FLOOR + 1e-3


def test_tongue_and_socket_are_no_bluer_than_the_skin():
    # calibrated on real wide-open mouths (scripts/experiments/interior_colour.py): their darker 70 %
    # read blue / green 0.93-1.07 times the skin's; the tongue (0.70, 0.36, 0.38) and socket
    # (0.34, 0.13, 0.13) before read 1.25 and 1.18 (a mauve interior)
    skin_bg = REFERENCE_SKIN[2] / REFERENCE_SKIN[1]
    luma = np.array([0.299, 0.587, 0.114])
    for part in ("gums_tongue", "mouth_socket"):
        r, g, b = PART_COLORS[part]
        assert 0.95 <= (b / g) / skin_bg <= 1.15, part
        assert r > g and np.array(PART_COLORS[part]) @ luma < np.array(PART_COLORS["teeth"]) @ luma


def test_part_colours_are_darkened_and_grey_in_a_grey_photo():
    head = _toy_head()
    colour, grey = part_colors(head, grey=False), part_colors(head, grey=True)
    assert colour[4].sum() < colour[3].sum() < colour[1].sum()  # socket < tongue < front teeth
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    assert not torch.allclose(colour[:, 0], colour[:, 2])
