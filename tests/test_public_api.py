"""Each package's public names (its ``__all__``) import, and the names the README's API section
promises are among them."""

from __future__ import annotations

import importlib

import pytest

PROMISED = {
    "face3d": "MorphableModel fit_image fit_folder FitConfig FaceDetector LandmarkRegressor render nme",
    "face3d.fit": "fit_image fit_folder fit_landmarks refine_photometric FaceFit FitResult",
    "face3d.detect": "FaceDetector predict_landmarks landmark_box",
    "face3d.regress": "LandmarkRegressor default_tta RegressorNet propose_faces",
    "face3d.render": "render rasterize RenderConfig FastMeshRasterizer extract_texture uv_layout",
    "face3d.eval": "load_aflw split_aflw nme bin_table no_face_images",
    "editing": "EditContext edit_image edit_folder parse_expressions",
    "editing.gan": "refine_image_edit shipped_generators",
    "editing.compare": "compare_folder FerClassifier",
}


@pytest.mark.parametrize("package", sorted(PROMISED))
def test_public_names_import_and_include_the_documented_ones(package):
    mod = importlib.import_module(package)
    public = set(mod.__all__)
    assert set(PROMISED[package].split()) <= public
    for name in public:
        assert getattr(mod, name) is not None, name


def test_fast_rasterizer_is_the_one_the_selection_point_builds():
    from face3d.render import FastMeshRasterizer, resolve_backend
    from face3d.render.fast import FastMeshRasterizer as Defined

    assert FastMeshRasterizer is Defined
    import torch

    assert resolve_backend("auto", torch.device("cpu")) == "fast"
