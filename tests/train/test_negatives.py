"""Hard negatives for the face confidence: face-free windows of real photos (synthetic fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from face3d.eval.aflw import AFLWSample
from face3d.eval.aflw_crops import AFLWCrops, AugConfig
from face3d.eval.face_free import NegativeConfig, negative_batch
from face3d.regress.network import RegressorConfig, RegressorNet, normalise
from face3d.train.finetune import FinetuneConfig, finetune
from tests.eval.test_aflw_crops import _samples  # the sibling module (pytest puts this folder on sys.path)
from tests.train.test_finetune import _tiny_shards


def test_finetune_with_negatives_lowers_their_confidence(tmp_path):
    """A few seconds of fine-tuning a tiny network with face-free windows as negatives: their
    confidence falls below the faces'; without them it does not."""
    rng = np.random.default_rng(7)
    cfg = RegressorConfig(size=32, channels=(8, 8, 16), strides=(2, 2), hidden=16, n_identity=4)
    torch.manual_seed(0)
    RegressorNet(cfg).save_pretrained(tmp_path / "init")
    _tiny_shards(tmp_path / "shards", rng)
    samples = _samples(8, rng)
    images = []
    yy, xx = np.mgrid[:220, :240]
    stripes = np.repeat((128 + 100 * np.sin((xx + 2 * yy) / 3.0))[..., None], 3, 2).astype(np.uint8)
    for s in samples:  # noise "faces" on stripes, unlike the synthetic negatives (flat, noise, blobs)
        im = stripes.copy()
        x0, y0 = s.landmarks.min(0).astype(int)
        x1, y1 = s.landmarks.max(0).astype(int)
        im[y0:y1, x0:x1] = rng.integers(100, 256, (y1 - y0, x1 - x0, 3))
        images.append(im)
    aflw = AFLWCrops(samples, 32, 1.5, AugConfig(), images=images)
    check_neg = normalise(torch.from_numpy(negative_batch(aflw, np.random.default_rng(1), 32)))
    check_pos = normalise(torch.from_numpy(aflw.unaugmented()[0]))

    def gap(negatives: int) -> float:
        config = FinetuneConfig(
            minutes=0.1, warmup_minutes=0.0, aflw_batch=4, synthetic_batch=4, lr=3e-3, checkpoint_minutes=10,
            calibrate=False, upright_batch=0, negative_batch=negatives, seed=negatives,
        )  # fmt: skip
        net = finetune(aflw, tmp_path / "shards", tmp_path / f"run{negatives}", tmp_path / "init", config,
                       progress=False)  # fmt: skip
        with torch.no_grad():
            return float(net(check_pos)["logit"].mean() - net(check_neg)["logit"].mean())

    with_negatives, without = gap(8), gap(0)
    assert with_negatives > 3.0
    assert with_negatives > without + 2.0


class _Brightness(torch.nn.Module):
    """A stand-in network: the face logit is the crop's mean brightness."""

    def forward(self, x):
        return {"logit": x.mean(dim=(1, 2, 3))}


def test_mining_keeps_the_most_face_like_of_the_pool():
    from face3d.train.negatives import mine_negatives

    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    lm = np.stack([rng.uniform(200, 280, 68), rng.uniform(90, 170, 68)], -1)
    aflw = AFLWCrops([AFLWSample(Path("/x/a.jpg"), lm, 0.0, 0.0, 0.0)], 32, 1.5, images=[img])
    net = _Brightness().train()
    cfg = NegativeConfig(clutter=0.5)
    pool = negative_batch(aflw, np.random.default_rng(9), 24, cfg)
    mined = mine_negatives(net, aflw, np.random.default_rng(9), 6, 24, cfg)
    assert net.training  # mode restored
    brightness = pool.reshape(24, -1).mean(1)
    assert np.allclose(np.sort(mined.reshape(6, -1).mean(1)), np.sort(brightness)[-6:])
    # no pool: the plain draw
    assert np.array_equal(mine_negatives(net, aflw, np.random.default_rng(9), 6, 0, cfg),
                          negative_batch(aflw, np.random.default_rng(9), 6, cfg))  # fmt: skip
