"""The cycle-trained texture generator: losses fall, resume is exact, mirror and hold-out rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from editing.compare.fer import FerClassifier, FerConfig
from editing.compare.perceptual import FerPerceptual
from editing.gan.checkpoint import load_generators
from editing.gan.networks import DiscriminatorConfig, GeneratorConfig, TextureGenerator
from editing.train.cycle_data import CycleCache, CycleDataConfig
from editing.train.texture import (
    TextureModels,
    TextureTrainConfig,
    _prepare,
    evaluate,
    holdout_mask,
    mirror_permutation,
    train_texture,
)
from face3d.errors import InputError

S, K = 32, 6
NAMES = ("jawOpen", "jawLeft", "jawRight", "mouthSmile_L", "mouthSmile_R", "browInnerUp")


def _cache(n: int = 40, seed: int = 0) -> CycleCache:
    """Smooth random faces whose 'mouth' blob the cycle drew too dark: the truth is the photo."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:S, :S]
    photo = np.empty((n, S, S, 3), np.uint8)
    cycle = np.empty_like(photo)
    synth = np.zeros((n, S, S), np.uint8)
    for i in range(n):
        base = rng.uniform(60, 200, 3) + 30 * np.sin(xs / rng.uniform(4, 9))[..., None]
        photo[i] = np.clip(base, 0, 255)
        blob = (xs - 16 - rng.integers(-3, 4)) ** 2 / 36 + (ys - 22) ** 2 / 9 < 1
        synth[i] = blob * 255
        cycle[i] = photo[i]
        cycle[i][blob] = (photo[i][blob] * 0.3).astype(np.uint8)
    grown = np.zeros_like(synth)
    grown[:, 16:29, 6:27] = 255
    arrays = {
        "photo": photo,
        "cycle": cycle,
        "synth": synth,
        "mouth": grown,
        "y": rng.uniform(0, 1, (n, K)).astype(np.float32),
        "yaw": np.zeros(n, np.float32),
        "box": np.zeros((n, 4), np.float32),
    }
    return CycleCache(arrays, tuple(f"p{i:03d}.jpg" for i in range(n)), CycleDataConfig(size=S), NAMES)


def _config(**kw) -> TextureTrainConfig:
    return TextureTrainConfig(
        steps=kw.pop("steps", 40),
        batch_size=4,
        lr_g=1e-3,
        holdout_frac=0.2,
        eval_every=kw.pop("eval_every", 10),
        sample_every=1000,
        patch=16,
        generator=GeneratorConfig(n_expr=K, base=8, n_down=2, n_res=1, cond=4, extra_inputs=1),
        discriminator=DiscriminatorConfig(n_expr=K, base=8, n_down=2),
        **kw,
    )


@pytest.fixture(scope="module")
def perceptual():
    torch.manual_seed(0)
    return FerPerceptual(FerClassifier(FerConfig(channels=(8, 16), convs_per_stage=1)))


def test_training_lowers_the_heldout_cycle_error(tmp_path, perceptual):
    cache, config = _cache(), _config(steps=60)
    held = np.flatnonzero(holdout_mask(cache.names, config.holdout_frac))
    before = evaluate(TextureModels(config, perceptual=perceptual), _prepare(cache), held, "cpu")
    summary = train_texture(cache, tmp_path / "run", config, progress=False, perceptual=perceptual)
    assert summary.last_step == 60 and summary.best["l1"] < 0.8 * before["l1"]
    assert summary.best["gain_db"] > before["gain_db"] + 1.0
    bundle = load_generators(tmp_path / "run" / "generator")  # the best weights, shippable
    assert bundle.texture.config.extra_inputs == 1 and bundle.meta["step"] == summary.best["step"]
    for name in ("losses.csv", "heldout.csv", "checkpoint.pt", "config.json"):
        assert (tmp_path / "run" / name).is_file()


def test_resume_repeats_an_uninterrupted_run(tmp_path, perceptual):
    cache = _cache()
    train_texture(cache, tmp_path / "full", _config(steps=20), progress=False, perceptual=perceptual)
    train_texture(cache, tmp_path / "part", _config(steps=10), progress=False, perceptual=perceptual)
    s = train_texture(
        cache, tmp_path / "part", _config(steps=20), resume=True, progress=False, perceptual=perceptual
    )
    assert (s.first_step, s.last_step) == (10, 20)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["models"]["gen"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)["models"]["gen"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_run_folder_and_config_errors(tmp_path, perceptual):
    cache = _cache()
    train_texture(cache, tmp_path / "r", _config(steps=2), progress=False, perceptual=perceptual)
    with pytest.raises(InputError, match="already holds a run"):
        train_texture(cache, tmp_path / "r", _config(steps=4), progress=False, perceptual=perceptual)
    with pytest.raises(InputError, match="different configuration"):
        train_texture(cache, tmp_path / "r", _config(steps=4, lr_d=1e-3), resume=True, perceptual=perceptual)
    with pytest.raises(InputError, match="too few"):
        train_texture(_cache(n=3), tmp_path / "s", _config(), progress=False, perceptual=perceptual)
    with pytest.raises(InputError, match="extra input"):
        dataclasses.replace(_config(), generator=GeneratorConfig(n_expr=K))


def test_patience_stops_when_the_heldout_error_stops_falling(tmp_path, perceptual):
    config = dataclasses.replace(_config(steps=400, eval_every=2, patience=2), lr_g=0.0, lr_d=0.0)
    s = train_texture(_cache(), tmp_path / "r", config, progress=False, perceptual=perceptual)
    assert s.stopped.startswith("held-out") and s.last_step == 6  # best at 2, no better at 4 and 6


def test_mirror_permutation_swaps_left_and_right():
    p = mirror_permutation(NAMES)
    assert [NAMES[i] for i in p] == [
        "jawOpen",
        "jawRight",
        "jawLeft",
        "mouthSmile_R",
        "mouthSmile_L",
        "browInnerUp",
    ]
    assert (p[p] == np.arange(len(NAMES))).all()


def test_holdout_is_stable_as_the_cache_grows():
    names = tuple(f"img{i}.jpg" for i in range(400))
    small, big = holdout_mask(names[:200], 0.1), holdout_mask(names, 0.1)
    assert (big[:200] == small).all() and 0.05 < big.mean() < 0.15


def test_the_generator_checks_its_extra_input():
    g = TextureGenerator(GeneratorConfig(n_expr=K, base=8, n_down=2, n_res=1, cond=4, extra_inputs=1))
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, K)
    tex, m = g(x, y, torch.zeros(2, 1, 16, 16))
    assert tex.shape == (2, 3, 16, 16) and m.shape == (2, 1, 16, 16)
    assert 0 <= float(tex.detach().min()) and float(m.detach().max()) <= 1
    with pytest.raises(ValueError, match="extra must be"):
        g(x, y)
    with pytest.raises(ValueError, match="no extra inputs"):
        TextureGenerator(GeneratorConfig(n_expr=K, base=8, n_down=2))(x, y, torch.zeros(2, 1, 16, 16))
