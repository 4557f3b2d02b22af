"""Upright search: quarter-turn affines, the way back to the image from turned crops, and the
search itself with a stand-in network that reads a marker's quadrant."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from face3d.crop import compose_affine
from face3d.regress.decode import to_image
from face3d.regress.infer import LandmarkRegressor
from face3d.regress.upright import quarter_turn_affine, turn_crops, upright_batch
from tests.regress.test_network import _tiny_net  # the sibling module (pytest puts this folder on sys.path)

S = 32


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, -1])
@pytest.mark.parametrize("height", [None, 20])
def test_quarter_turn_affine_is_rot90(turns, height):
    crop = np.zeros((height or S, S), np.uint8)
    crop[5, 9] = 255  # row 5, column 9
    turned = np.rot90(crop, turns)
    y, x = np.argwhere(turned == 255)[0]
    A = quarter_turn_affine(turns, S, height)
    assert np.allclose(A @ [9.0, 5.0, 1.0], [x, y])


def test_turn_crops_turns_each_crop_its_own_amount():
    crops = np.random.default_rng(0).integers(0, 256, (3, S, S, 3), dtype=np.uint8)
    out = turn_crops(crops, [0, 1, 3])
    for c, o, t in zip(crops, out, [0, 1, 3], strict=True):
        assert np.array_equal(o, np.rot90(c, t))
    assert np.array_equal(turn_crops(crops, 2), np.rot90(crops, 2, axes=(1, 2)))


def test_upright_batch_turns_augmented_crops():
    from face3d.eval.aflw_crops import AFLWCrops, AugConfig
    from tests.eval.test_aflw_crops import _samples

    rng = np.random.default_rng(7)
    samples = _samples(6, rng)
    data = AFLWCrops(
        samples, S, 1.5, images=[rng.integers(0, 256, (200, 210, 3), dtype=np.uint8) for _ in samples]
    )
    crops, turns = upright_batch(data, np.random.default_rng(3), 9)
    assert crops.shape == (9, S, S, 3) and set(turns) <= {1, 2, 3}
    again = np.random.default_rng(3)
    t = again.choice(np.array([1, 2, 3]), 9)
    assert np.array_equal(turns, t)
    assert np.array_equal(crops, turn_crops(data.batch(again, 9)["image"], t))
    jitter = AugConfig(shift=0.3, log_scale=0.0, rotation=0.0, flip=0.0, colour=False)
    crops, turns = upright_batch(data, np.random.default_rng(4), 40, (0, 2), jitter)
    assert set(turns) == {0, 2} and data.aug == AugConfig()  # the caller's crops keep their aug
    again, plain = np.random.default_rng(4), copy.copy(data)
    plain.aug = jitter
    t = again.choice(np.array([0, 2]), 40)
    assert np.array_equal(crops, turn_crops(plain.batch(again, 40)["image"], t))
    empty, none = upright_batch(data, rng, 0)
    assert empty.shape == (0, S, S, 3) and none.shape == (0,)


def test_to_image_undoes_turned_crop_affines():
    """Outputs made in turned crops map back to the image points and head rotation they came from."""
    rng = np.random.default_rng(1)
    pts = rng.uniform(20, 80, (68, 2))
    th = np.radians(20.0)
    R_img = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
    A0 = np.array([[0.4, 0.0, -3.0], [0.0, 0.4, 2.0]])  # image -> crop: scale 0.4 and a shift
    As, lms, Rs = [], [], []
    for t in range(4):
        A = compose_affine(quarter_turn_affine(t, S), A0)
        Q = A[:, :2] / 0.4
        As.append(A)
        lms.append(pts @ A[:, :2].T + A[:, 2])
        R = R_img.copy()
        R[:2] = Q @ R_img[:2]  # the head as the turned crop shows it
        Rs.append(R)
    out = {
        "landmarks": np.stack(lms),
        "centre": np.stack(lms)[:, 30],
        "scale": np.full(4, 0.4 * 2.5),
        "rotation": np.stack(Rs),
        "logit": np.zeros(4),
        "identity": np.zeros((4, 3)),
        "expression": np.zeros((4, 2)),
        "upright": np.zeros((4, 4)),
    }
    res = to_image(out, np.stack(As), 4, 1)  # four "scales" of one face: all must agree
    assert np.allclose(res["landmarks"][0], pts)
    assert np.allclose(res["centre"][0], pts[30])
    assert np.isclose(res["scale"][0], 2.5)
    assert np.allclose(res["rotation"][0], R_img, atol=1e-9)


class _MarkerRegressor(LandmarkRegressor):
    """A stand-in network: the brightest pixel of a crop is a marker the upright face has in its
    top-left quadrant; the upright head reads the marker's quadrant (rot90 sends top-left to
    bottom-left, bottom-right, top-right), the landmarks sit at fixed offsets from the marker and
    the head pose is always the identity, as the crop shows it."""

    OFFSETS = np.random.default_rng(2).uniform(-4, 4, (68, 2))

    def _forward(self, x):
        B = x.shape[0]
        flat = x.sum(1).flatten(1).argmax(1)
        v, u = (flat // S).double(), (flat % S).double()
        top, left = v < S / 2, u < S / 2
        quadrant = torch.where(top & left, 0, torch.where(~top & left, 1, torch.where(~top & ~left, 2, 3)))
        marker = torch.stack([u, v], -1)
        lm = marker[:, None] + torch.from_numpy(self.OFFSETS)
        return {
            "rotation": torch.eye(3, dtype=torch.float64).repeat(B, 1, 1),
            "centre": marker,
            "scale": torch.ones(B, dtype=torch.float64),
            "identity": torch.zeros(B, 3),
            "expression": torch.zeros(B, 2),
            "logit": torch.full((B,), 3.0),
            "landmarks": lm,
            "model_landmarks": lm,
            "upright": 6.0 * torch.nn.functional.one_hot(quadrant, 4).double(),
        }


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_upright_search_finds_turned_faces(turns):
    """The same scene turned by np.rot90: the search regresses it from crops turned back, so the
    landmarks are the upright result turned, and the head's roll changes by the quarter turns."""
    net = _tiny_net()
    net.config = type(net.config)(**{**net.config.__dict__, "size": S, "crop_scale": 1.0})
    with torch.no_grad():
        net.upright.bias.fill_(1.0)  # a trained head (the stand-in answers for it)
    H = W = 64
    image = np.zeros((H, W, 3), np.uint8)
    image[20, 22] = 255  # the marker, in the box's top-left quadrant
    box = (16.0, 16.0, 48.0, 48.0)
    reg = _MarkerRegressor(net, scales=(1.0, 1.1))
    up = reg.predict(image, box)
    assert up.turns == 0

    turned = np.ascontiguousarray(np.rot90(image, turns))
    T = quarter_turn_affine(turns, W)  # square image: image points turn like crop points
    corners = np.array([[box[0], box[1]], [box[2], box[3]]]) @ T[:, :2].T + T[:, 2]
    tbox = (*corners.min(0), *corners.max(0))
    out = reg.predict(turned, tbox)
    assert out.turns == (4 - turns) % 4
    assert np.allclose(out.landmarks, up.landmarks @ T[:, :2].T + T[:, 2], atol=1e-6)
    assert np.isclose((out.roll - up.roll) % 360, (-90 * turns) % 360)  # image y points down
    off = _MarkerRegressor(net, scales=(1.0, 1.1), upright=False).predict(turned, tbox)
    assert off.turns == 0 and not np.allclose(off.landmarks, out.landmarks, atol=1.0)


def test_upright_faces_and_silent_heads_cost_one_pass():
    """The search re-runs the network (three more passes, one per turn) only for a face the head
    does not find upright, and never for a network whose head was not trained (all zeros)."""

    class Counting(LandmarkRegressor):
        calls = 0

        def _run(self, crops):
            Counting.calls += 1
            return super()._run(crops)

    image = np.random.default_rng(3).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    net = _tiny_net()
    for bias, passes in (((0.0, 0.0, 0.0, 0.0), 1), ((5.0, 0.0, 0.0, 0.0), 1), ((0.0, 5.0, 0.0, 0.0), 4)):
        with torch.no_grad():
            net.upright.bias.copy_(torch.tensor(bias))
        Counting.calls = 0
        out = Counting(net).predict(image, (10, 10, 50, 50))
        assert Counting.calls == passes and out.turns == 0  # a constant head: no turn looks better
