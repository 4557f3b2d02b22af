"""editing.compare.flow_reader: landmarks carried by optical flow, measured in the nose frame."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from editing.compare.flow_reader import flow_landmarks, flow_points, nose_measures
from editing.compare.quality import completeness


def _face() -> np.ndarray:
    """(68, 2) landmarks, y down: nose 27 at (0, -2), 33 at (0, 0) (unit 2), brows 1.0 above the
    eyes, mouth corners 48 / 54 at x = -/+1.2, inner lips 62 / 66 0.2 apart."""
    L = np.zeros((68, 2))
    L[27], L[33] = (0.0, -2.0), (0.0, 0.0)
    L[17:27] = np.c_[np.linspace(-2, 2, 10), np.full(10, -3.0)]
    L[36:48] = np.c_[np.linspace(-2, 2, 12), np.full(12, -2.0)]
    L[48], L[54] = (-1.2, 1.4), (1.2, 1.4)
    L[51], L[57] = (0.0, 1.2), (0.0, 2.0)
    L[62], L[66] = (0.0, 1.5), (0.0, 1.7)
    return L


def test_nose_measures_known_values_and_frame_invariance():
    L = _face()
    m = nose_measures(L)
    assert m == pytest.approx(
        {
            "mouth_width": 1.2,
            "corner_lift": (1.6 - 1.4) / 2,
            "near_corner_lift": (1.6 - 1.4) / 2,
            "lip_gap": 0.1,
            "brow_height": 0.5,
        }
    )
    turned = L.copy()
    turned[48], turned[54] = (-2.0, 1.2), (0.4, 1.5)  # the camera's side: 48, lifted more
    m_turned = nose_measures(turned)
    assert m_turned["near_corner_lift"] == pytest.approx((1.6 - 1.2) / 2)
    assert m_turned["corner_lift"] == pytest.approx((1.6 - 1.35) / 2)
    lifted = turned.copy()
    lifted[48, 1] -= 0.2  # read in the photo's frame: the same corner, 0.1 nose lengths higher
    assert nose_measures(lifted, turned)["near_corner_lift"] == pytest.approx(0.3)
    a = math.radians(25)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    moved = 3.0 * L @ R.T + [40.0, 70.0]  # rotated, scaled and shifted in the image
    assert nose_measures(moved) == pytest.approx(m)
    assert nose_measures(L, yaw=60.0)["mouth_width"] == pytest.approx(2.4)  # 1 / cos 60°
    wide = L.copy()
    wide[[48, 54], 0] *= 1.5  # the edit read in the photo's frame
    assert nose_measures(wide, L)["mouth_width"] == pytest.approx(1.8)
    with pytest.raises(ValueError, match="68, 2"):
        nose_measures(L[:60])


def test_flow_points_follow_a_known_shift():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8), (0, 0), 2.0)
    shift = np.float32([[1, 0, 3.0], [0, 1, -2.0]])  # content moves 3 px right, 2 px up
    after = cv2.warpAffine(texture, shift, (200, 160), borderMode=cv2.BORDER_REFLECT)
    pts = np.array([[60.0, 50.0], [100.0, 80.0], [140.0, 110.0]])
    np.testing.assert_allclose(flow_points(texture, after, pts), pts + [3.0, -2.0], atol=0.35)
    np.testing.assert_allclose(flow_points(texture, texture, pts), pts, atol=0.05)
    with pytest.raises(ValueError, match="differ in shape"):
        flow_points(texture, after[:100], pts)


def test_parting_lips_are_read_on_the_lips_own_tissue():
    """The lower half of a texture moves 4 px down and black fills the gap that opens (new
    content between parting lips). The inner lips on the parting line, carried by the flow at the
    middle of their lip, open by the 4 px; the other landmarks follow their own points."""
    rng = np.random.default_rng(1)
    before = cv2.GaussianBlur(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8), (0, 0), 2.0)
    after = before.copy()
    after[84:] = before[80:-4]
    after[80:84] = 0
    L = 40.0 * _face() + [100.0, 20.0]  # 51 at y = 68, 57 at y = 100: the lips 12 px thick
    L[[61, 62, 63, 65, 66, 67], 1] = 80.0  # the inner lips touch on the parting line
    L[[50, 52], 1], L[[56, 58], 1] = 68.0, 100.0
    L[[61, 65, 67, 63], 0] = [90.0, 110.0, 90.0, 110.0]
    L[[50, 52, 56, 58], 0] = [90.0, 110.0, 110.0, 90.0]
    moved = flow_landmarks(before, after, L)
    np.testing.assert_allclose(moved[[61, 62, 63], 1], 80.0, atol=0.8)  # the upper lip stays
    np.testing.assert_allclose(moved[[65, 66, 67], 1], 84.0, atol=0.4)  # the lower one opens by 4 px
    plain = flow_points(before, after, L)  # the parting line itself: no gap read
    assert abs(plain[[65, 66, 67], 1].mean() - plain[[61, 62, 63], 1].mean()) < 1.0
    np.testing.assert_allclose(moved[57], L[57] + [0.0, 4.0], atol=0.4)
    np.testing.assert_allclose(moved[51], L[51], atol=0.4)
    with pytest.raises(ValueError, match="68, 2"):
        flow_landmarks(before, after, L[:60])


def test_completeness_on_chosen_measures():
    before = {"mouth_width": 1.0, "corner_lift": 0.0, "lip_gap": 0.0, "brow_height": 0.4}
    after = {"mouth_width": 1.1, "corner_lift": 0.1, "lip_gap": 0.0, "brow_height": 0.4}
    ref = {"mouth_width": 1.2, "corner_lift": 0.1, "lip_gap": 0.2, "brow_height": 0.5}
    assert completeness(before, after, ref, "happy", 0.01) == pytest.approx(0.75)  # (0.5 + 1) / 2
    assert completeness(before, after, ref, "happy", 0.01, ("corner_lift",)) == pytest.approx(1.0)


def test_convention_offset_is_the_median_difference():
    from editing.compare.flow_reader import convention_offset

    L = _face()
    wide = L.copy()
    wide[[48, 54], 0] *= 1.25  # "known" landmarks whose corners sit further out
    pairs = [(wide, L, 0.0)] * 3 + [(L, L, 0.0)]
    off = convention_offset(pairs)
    assert off["mouth_width"] == pytest.approx(0.3)  # 1.5 - 1.2, the median of 0.3, 0.3, 0.3, 0
    assert off["lip_gap"] == pytest.approx(0.0) and off["brow_height"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no photos"):
        convention_offset([])
