"""editing.shading: SH lighting fitted to a photo and the expression ratio image."""

from __future__ import annotations

import numpy as np

from editing.shading import RATIO_RANGE, apply_ratio, fit_lighting, ratio_image
from face3d.fit.appearance import sh_basis


def _sphere(n: int = 64):
    """Unit normals of a sphere seen from the camera (-z toward the viewer) and its mask."""
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / n * 2 - 1
    inside = x**2 + y**2 < 0.95
    z = -np.sqrt(np.clip(1 - x**2 - y**2, 0, 1))
    return np.stack([x, y, z], -1).astype(np.float32), inside


def test_lighting_of_a_rendered_sphere_is_recovered():
    normals, mask = _sphere()
    light = np.array([0.6, 0.1, -0.15, -0.25, 0.02, 0.03, -0.01, 0.04, 0.05])
    shade = np.zeros(mask.shape)
    shade[mask] = sh_basis(normals[mask].astype(np.float64)) @ light
    photo = np.clip(shade * 255 + 0.5, 0, 255).astype(np.uint8)[..., None].repeat(3, -1)
    got = fit_lighting(photo, normals, mask, ridge=0.0)
    np.testing.assert_allclose(got, light, atol=0.01)


def test_the_ratio_is_exactly_one_where_the_shape_does_not_change():
    normals, mask = _sphere()
    light = np.array([0.6, 0.1, -0.15, -0.25, 0, 0, 0, 0, 0])
    r = ratio_image(normals, normals, mask, light)
    assert (r == 1.0).all()
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
    assert np.array_equal(apply_ratio(photo, r), photo)


def test_a_surface_turned_from_the_light_darkens_within_the_clamp():
    normals, mask = _sphere()
    light = np.array([0.5, 0.0, 0.0, -0.4, 0, 0, 0, 0, 0])  # light from the camera's side (-z)
    turned = normals.copy()
    turned[..., 2] *= 0.7  # every normal tilts away from the viewer (and the light)
    turned /= np.linalg.norm(turned, axis=-1, keepdims=True)
    r = ratio_image(turned, normals, mask, light)
    centre = r[24:40, 24:40]
    assert (centre < 1.0).all() and (r >= RATIO_RANGE[0]).all() and (r <= RATIO_RANGE[1]).all()
    assert (r[~mask] == 1.0).all()


def test_grey_stays_grey_under_the_ratio():
    grey = np.full((8, 8, 3), 120, np.uint8)
    out = apply_ratio(grey, np.full((8, 8), 0.8, np.float32))
    assert (out == 96).all()
