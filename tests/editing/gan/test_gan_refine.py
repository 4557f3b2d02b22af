"""``--refine gan`` and ``--method 2d`` on a real fit: shapes, byte-identical background, errors.

The generators are randomly initialised (seeded): these tests check the plumbing (crop, warp
back, attention, paste-back), not the trained weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from editing.gan.checkpoint import load_generators, save_generators
from editing.gan.networks import DeformationGenerator, GeneratorConfig, TextureGenerator
from face3d.errors import Face3DError

pytestmark = pytest.mark.integration
SMALL = GeneratorConfig(base=8, n_down=3, n_res=1, cond=4)


@pytest.fixture(scope="module")
def ctx():
    from editing.api import EditContext
    from face3d.errors import ModelNotFoundError

    try:
        return EditContext.from_dir(refine="none")
    except ModelNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def fitted(ctx):
    from face3d.demo import example_image
    from face3d.fit import fit_image

    image = example_image()
    return image, fit_image(image, ctx.fit_model, ctx.fit_config, ctx.detector)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("gens")
    tex = TextureGenerator(SMALL)
    with torch.no_grad():  # make the generator visibly change pixels: M about 0.5
        tex.to_mask.bias.fill_(0.0)
    save_generators(root / "gan3d", tex, size=128, meta={"crop_scale": 1.6})
    cyc = TextureGenerator(dataclasses.replace(SMALL, extra_inputs=1))  # takes the drawn mask too
    with torch.no_grad():
        cyc.to_mask.bias.fill_(0.0)
    save_generators(root / "gan3d_cycle", cyc, size=128, meta={"crop_scale": 1.6})
    save_generators(
        root / "defgan",
        TextureGenerator(SMALL),
        DeformationGenerator(dataclasses.replace(SMALL, kind="deform")),
    )
    return (
        load_generators(root / "gan3d"),
        load_generators(root / "defgan"),
        load_generators(root / "gan3d_cycle"),
    )


def _specs(ctx):
    from editing.expressions import parse_expressions

    return parse_expressions("happy,surprise", ctx.fit_model.expression_names)


@pytest.mark.parametrize("method", ["3d-gan", "3d-gan-cycle", "2d"])
def test_background_byte_identical_and_face_changed(ctx, fitted, bundles, method):
    from editing.api import edit_fitted
    from editing.defgan2d import DefGAN2D

    image, faces = fitted
    tex, two_d, cyc = bundles
    if method.startswith("3d-gan"):
        run = dataclasses.replace(ctx, refiner=tex if method == "3d-gan" else cyc)
        plain = edit_fitted(image, faces, _specs(ctx), ctx)
    else:
        run = dataclasses.replace(ctx, method="2d", baseline=DefGAN2D(two_d))
    res = edit_fitted(image, faces, _specs(ctx), run)
    acted = 0
    for k, label in enumerate(res.labels):
        out, edit = res.outputs[label], res.faces[0][1][k]
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out[~edit.region], image[~edit.region])
        if method.startswith("3d-gan"):  # the generator changes what the warp drew, never the photo's pixels
            from editing.gan.refine import synthesized_region

            mine, _ = synthesized_region(edit.synthesized)
            assert np.array_equal(out[~mine], plain.outputs[label][~mine])
            inside, ref = mine, plain.outputs[label]
        else:
            inside, ref = edit.region, image
        if inside.any():
            diff = np.abs(out[inside].astype(int) - ref[inside].astype(int)).mean()
            acted += diff > 1.0  # the generator did act there
    assert acted >= 1


def test_missing_and_corrupt_weights_name_the_file(tmp_path, monkeypatch):
    from editing.api import load_generators_for
    from editing.gan import checkpoint

    monkeypatch.setattr(checkpoint, "SHIPPED", {"texture": tmp_path / "gan3d", "2d": tmp_path / "defgan"})
    assert load_generators_for("auto", "3d") == (None, None)  # auto: no weights, plain re-render
    with pytest.raises(Face3DError, match="gan3d.config.json: generator checkpoint file missing"):
        load_generators_for("gan", "3d")
    with pytest.raises(Face3DError, match="defgan.config.json: generator checkpoint file missing"):
        load_generators_for("none", "2d")
    save_generators(tmp_path / "gan3d", TextureGenerator(SMALL))
    (tmp_path / "gan3d" / "weights.pt").write_bytes(b"\x00garbage")
    with pytest.raises(Face3DError, match="gan3d.weights.pt: corrupt generator weights"):
        load_generators_for("auto", "3d")


def test_refine_auto_uses_only_a_generator_that_earned_it(bundles):
    from editing.gan.checkpoint import AUTO_KEY, auto_refines

    tex, two_d, cyc = bundles
    assert not auto_refines(None) and not auto_refines(tex) and not auto_refines(two_d)
    assert auto_refines(dataclasses.replace(cyc, meta={**cyc.meta, AUTO_KEY: True}))
    assert not auto_refines(dataclasses.replace(two_d, meta={AUTO_KEY: True}))  # a 2D bundle never


def test_cycle_verdict_needs_a_win_near_frontal_and_no_loss_at_profile():
    from editing.gan.checkpoint import cycle_verdict

    win, tie, lose = [0.8, 0.4, 1.2], [0.0, -0.3, 0.3], [-0.5, -0.8, -0.2]

    def bins(a, b, c, kid=(1.0, 0.9)):
        return {
            "[0,30)": {"psnr_diff": a},
            "[30,60)": {"psnr_diff": b},
            "[60,90]": {"psnr_diff": c},
            "all": {"kid_none": kid[0], "kid_gan": kid[1]},
        }

    assert cycle_verdict(bins(win, win, tie))[0] and cycle_verdict(bins(win, win, win))[0]
    assert not cycle_verdict(bins(win, tie, win))[0]
    ok, why = cycle_verdict(bins(win, win, lose))
    assert not ok and why.startswith("[60,90]: worse")
    assert cycle_verdict({"[0,30)": {"psnr_diff": win}})[1] == "no faces in [30,60)"
    ok, why = cycle_verdict(bins(win, win, win, kid=(1.2, 5.3)))  # sharper pixels, less real mouths
    assert not ok and "less real" in why
    paired = bins(win, win, win, kid=(-2.9, -0.9))
    paired["all"]["kid_diff"] = [1.8, -3.4, 4.6]
    assert cycle_verdict(paired)[1].endswith("difference +1.8 [-3.4, +4.6])")
    assert not cycle_verdict({k: v for k, v in bins(win, win, win).items() if k != "all"})[0]
    ok, why = cycle_verdict(bins(win, [0.4, 0.1, 0.7], win))  # above zero, not above +0.3 dB
    assert not ok and "does not lie above 0.3" in why
    low = bins(win, win, win)
    low["[0,30)"]["psnr_gan_median"] = 19.5
    ok, why = cycle_verdict(low)
    assert not ok and "under 21" in why


def test_shipped_generator_keeps_the_photo_unless_something_was_drawn(fitted):
    """The shipped (cycle-trained) texture generator: M is about 1 (the photo kept) where nothing
    was synthesised, and it takes over inside a drawn mouth."""
    from editing.cycle import mouth_region
    from editing.gan.checkpoint import shipped_generators
    from editing.gan.crop import aligned_box, crop_mask, crop_square

    bundle = shipped_generators("texture")
    if bundle is None or not bundle.texture.config.extra_inputs:
        pytest.skip("no cycle-trained texture generator shipped")
    image, faces = fitted
    lm = faces[0].fit.landmarks_fitted[0].numpy()
    box = aligned_box(lm, bundle.meta["crop_scale"])
    x = torch.from_numpy(crop_square(image, box, bundle.size)).permute(2, 0, 1)[None].float() / 255
    y = faces[0].fit.expression.float()
    drawn = crop_mask(mouth_region(lm, image.shape[:2], grow=0.0), box, bundle.size)
    with torch.no_grad():
        _, m_none = bundle.texture(x, y, torch.zeros(1, 1, bundle.size, bundle.size))
        _, m_drawn = bundle.texture(x, y, torch.from_numpy(drawn)[None, None])
    assert float(m_none.mean()) > 0.97 and float(m_none.min()) > 0.5
    inside = torch.from_numpy(drawn > 0.5)
    assert float(m_drawn[0, 0][inside].mean()) < 0.5  # the texture replaces what was drawn


def test_detail_head_at_the_photos_resolution_stays_in_the_box():
    from editing.gan.refine import _detail_in_box
    from face3d.filters import gaussian_blur

    rng = np.random.default_rng(0)
    image = (64 + 128 * rng.random((60, 80, 3))).astype(np.uint8)
    texture = np.full((60, 80, 3), 0.5, np.float32)
    out = _detail_in_box(texture, image, (30.0, 10.0, 60.0, 40.0), 1.5)
    np.testing.assert_array_equal(out[:, :20], texture[:, :20])  # beyond the box and the blur's reach
    img = torch.from_numpy(image / 255.0).permute(2, 0, 1)[None]
    hi = (img - gaussian_blur(img, 1.5))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out[15:35, 35:55], 0.5 + hi[15:35, 35:55], atol=1e-5)
