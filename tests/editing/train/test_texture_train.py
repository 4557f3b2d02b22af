"""The cycle-trained texture generator: losses fall, resume is exact, mirror and hold-out rules."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from editing.compare.fer import FerClassifier, FerConfig
from editing.compare.perceptual import FerPerceptual
from editing.gan.checkpoint import load_generators
from editing.gan.networks import Discriminator, DiscriminatorConfig, GeneratorConfig, TextureGenerator
from editing.train import losses as L
from editing.train.cycle_data import CycleCache, CycleDataConfig
from editing.train.texture import (
    TextureLossWeights,
    TextureModels,
    TextureTrainConfig,
    evaluate,
    holdout_mask,
    mirror_permutation,
    train_texture,
)
from editing.train.texture_command import add_texture_arguments, config_from_args
from editing.train.texture_data import prepare, sampling_probabilities
from editing.train.texture_eval import is_better, mouth_crops
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
    disc_mask = kw.pop("disc_mask", False)
    return TextureTrainConfig(
        steps=kw.pop("steps", 40),
        batch_size=4,
        lr_g=1e-3,
        holdout_frac=0.2,
        eval_every=kw.pop("eval_every", 10),
        sample_every=1000,
        patch=16,
        generator=GeneratorConfig(n_expr=K, base=8, n_down=2, n_res=1, cond=4, extra_inputs=1),
        discriminator=DiscriminatorConfig(n_expr=K, base=8, n_down=2, extra_inputs=int(disc_mask)),
        disc_mask=disc_mask,
        **kw,
    )


@pytest.fixture(scope="module")
def perceptual():
    torch.manual_seed(0)
    return FerPerceptual(FerClassifier(FerConfig(channels=(8, 16), convs_per_stage=1)))


def test_training_lowers_the_heldout_cycle_error(tmp_path, perceptual):
    cache, config = _cache(), _config(steps=60)
    held = np.flatnonzero(holdout_mask(cache.names, config.holdout_frac))
    before = evaluate(TextureModels(config, perceptual=perceptual), prepare(cache), held, "cpu")
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


def _adversarial(**kw) -> TextureTrainConfig:
    """The mask-aware adversarial settings of the second run, at test size."""
    losses = TextureLossWeights(l1=5.0, adv=1.0, feature_match=1.0, style=5.0)
    config = _config(disc_mask=True, losses=losses, oversample_open=1.0, select="realism", **kw)
    return dataclasses.replace(
        config, discriminator=dataclasses.replace(config.discriminator, spectral_norm=False)
    )


def test_the_mask_aware_discriminator_reads_the_mask():
    d = Discriminator(DiscriminatorConfig(n_expr=K, base=8, n_down=2, extra_inputs=1))
    x, mask = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
    logits, expr = d(x, mask)
    assert logits.shape == (2, 1, 4, 4) and expr.shape == (2, K)
    mask[:, :, 4:12, 4:12] = 1
    assert not torch.allclose(d(x, mask)[0], logits)  # the mask channel changes the verdict
    assert [f.shape[1] for f in d.features(x, mask)] == [8, 16]
    with pytest.raises(ValueError, match="extra must be"):
        d(x)
    with pytest.raises(ValueError, match="no extra inputs"):
        Discriminator(DiscriminatorConfig(n_expr=K, base=8, n_down=2))(x, mask)
    plain = Discriminator(DiscriminatorConfig(n_expr=K, base=8, n_down=2, spectral_norm=False))
    assert not any("weight_orig" in k for k in plain.state_dict())
    assert any("weight_orig" in k for k in d.state_dict())


def test_weighted_hinge_counts_only_the_weighted_logits():
    real, fake = torch.tensor([[2.0, -5.0]]), torch.tensor([[-2.0, 5.0]])
    weight = torch.tensor([[1.0, 0.0]])  # the second logit saw only photo pixels in both
    assert float(L.d_hinge(real, fake, weight)) == 0.0 and float(L.d_hinge(real, fake)) == 6.0
    assert float(L.g_hinge(fake, weight)) == 2.0
    feats = [torch.ones(1, 2, 2, 2)]
    assert float(L.feature_matching(feats, [f * 3 for f in feats])) == 2.0


def test_statistics_l1_sees_blur_inside_the_region_only():
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(1, 4, 16, 16, generator=g)
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    region = torch.zeros(1, 1, 16, 16)
    region[..., 4:12, 4:12] = 1
    assert float(L.statistics_l1([sharp], [sharp.clone()], region)) < 1e-3
    assert float(L.statistics_l1([blurred], [sharp], region)) > 0.05  # the spreads differ
    outside = sharp.clone()
    outside[..., :3, :] = 0  # a change outside the region
    assert float(L.statistics_l1([outside], [sharp], region)) < 1e-3


def test_adversarial_run_lowers_the_heldout_error_and_logs_realism(tmp_path, perceptual):
    cache, config = _cache(), _adversarial(steps=60)
    held = np.flatnonzero(holdout_mask(cache.names, config.holdout_frac))
    before = evaluate(TextureModels(config, perceptual=perceptual), prepare(cache), held, "cpu")
    summary = train_texture(cache, tmp_path / "run", config, progress=False, perceptual=perceptual)
    assert summary.best["l1"] < 0.8 * before["l1"] and np.isfinite(summary.best["kid"])
    header = (tmp_path / "run" / "heldout.csv").read_text().splitlines()[0].split(",")
    assert {"kid", "kid_cycle", "gain_db"} <= set(header)
    header = (tmp_path / "run" / "losses.csv").read_text().splitlines()[0]
    assert "feature_match" in header and "style" in header
    last = load_generators(tmp_path / "run" / "generator_last")
    assert last.meta["step"] == 60 and load_generators(tmp_path / "run" / "generator").meta["step"] <= 60


def test_adversarial_resume_repeats_an_uninterrupted_run(tmp_path, perceptual):
    cache = _cache()
    train_texture(cache, tmp_path / "full", _adversarial(steps=20), progress=False, perceptual=perceptual)
    train_texture(cache, tmp_path / "part", _adversarial(steps=10), progress=False, perceptual=perceptual)
    train_texture(
        cache, tmp_path / "part", _adversarial(steps=20), resume=True, progress=False, perceptual=perceptual
    )
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)["models"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)["models"]
    for net in ("gen", "disc"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=0, atol=1e-6)


def test_init_from_starts_at_the_given_weights(tmp_path, perceptual):
    cache = _cache()
    train_texture(cache, tmp_path / "a", _config(steps=10), progress=False, perceptual=perceptual)
    config = _adversarial(steps=0, init_from=str(tmp_path / "a" / "generator"))
    models = TextureModels(config, perceptual=perceptual)
    start = load_generators(tmp_path / "a" / "generator").texture.state_dict()
    for k, v in models.gen.state_dict().items():
        torch.testing.assert_close(v, start[k])
    s = train_texture(cache, tmp_path / "b", config, progress=False, perceptual=perceptual)
    assert s.best["step"] == 0  # the starting weights are scored, and kept until beaten
    other = dataclasses.replace(config, generator=dataclasses.replace(config.generator, base=12))
    with pytest.raises(InputError, match="another architecture"):
        TextureModels(other, perceptual=perceptual)
    detail = dataclasses.replace(config, generator=dataclasses.replace(config.generator, detail_sigma=2.0))
    tuned = TextureModels(detail, perceptual=perceptual)  # the detail head adds no weights
    assert tuned.gen.config.detail_sigma == 2.0
    for k, v in tuned.gen.state_dict().items():
        torch.testing.assert_close(v, start[k])


def test_config_round_trip_and_resume_flags(tmp_path):
    config = _adversarial(init_from="some/generator", min_gain_db=4.0)
    assert TextureTrainConfig.from_dict(dataclasses.asdict(config)) == config
    old = dataclasses.asdict(TextureTrainConfig())  # a first-generation run's config.json
    for k in ("disc_mask", "oversample_open", "select", "min_gain_db", "init_from"):
        del old[k]
    del old["losses"]["feature_match"], old["losses"]["style"]
    del old["discriminator"]["extra_inputs"], old["discriminator"]["spectral_norm"]
    assert TextureTrainConfig.from_dict(old) == TextureTrainConfig()
    with pytest.raises(InputError, match="mask-aware"):
        dataclasses.replace(config, disc_mask=False)
    p = argparse.ArgumentParser()
    add_texture_arguments(p)
    flags = ["--out", str(tmp_path), "--mask-aware-d", "--no-spectral-norm", "--adv-weight", "1"]
    made = config_from_args(
        p.parse_args([*flags, "--select", "realism", "--style-weight", "5", "--detail-sigma", "2"])
    )
    assert made.generator.detail_sigma == 2.0
    assert made.disc_mask and made.discriminator.extra_inputs == 1 and made.losses.adv == 1.0
    assert not made.discriminator.spectral_norm and made.losses.style == 5.0
    assert made.losses.l1 == TextureLossWeights().l1 and made.select == "realism"
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.asdict(made)))
    resumed = config_from_args(p.parse_args(["--out", str(tmp_path), "--resume", "--steps", "7"]))
    assert resumed == dataclasses.replace(made, steps=7)  # --resume keeps the saved settings


def test_selection_rule_sampling_and_mouth_crops():
    best = {"l1": 0.02, "kid": 3.0, "gain_db": 5.0}
    sharp = {"l1": 0.03, "kid": 1.0, "gain_db": 4.5}
    assert not is_better(sharp, best, "l1", 0.0) and is_better(sharp, best, "realism", 4.0)
    assert not is_better(sharp, best, "realism", 4.6)  # below the PSNR-gain floor
    data = prepare(_cache())
    data.synth[0, :, 10:30, 5:30] = 1.0  # a wide-open mouth
    p = sampling_probabilities(data, np.arange(10), 1.0)
    assert (
        p.argmax() == 0 and abs(p.sum() - 1) < 1e-9 and sampling_probabilities(data, np.arange(10), 0) is None
    )
    crops = mouth_crops(data.photo[:3].float() / 255, data.weight[:3])
    assert crops.shape == (3, 3, 96, 96) and 0 <= float(crops.min()) and float(crops.max()) <= 1
