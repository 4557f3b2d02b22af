"""The package as a user installs it: every package listed in pyproject, and a built wheel that
holds the presets and weights and finds them from another directory (package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from face3d.assets import PACKAGE, asset_path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (
    "expressions/presets.json",
    "expressions/landmark_model.npz",
    "bbox_mapping.json",
    "regressor/config.json",
    "regressor/weights.pt",
    "gan3d/config.json",
    "gan3d/weights.pt",
    "defgan/config.json",
    "defgan/weights.pt",
    "fer/config.json",
    "fer/weights.pt",
)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for pkg in ("face3d", "editing")
        for p in (ROOT / pkg).rglob("__init__.py")
    }
    assert listed == on_disk | {PACKAGE}


def test_assets_resolve_through_the_package():
    for rel in SHIPPED:
        assert asset_path(*rel.split("/")).is_file(), rel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the tree (a build/ folder left in the checkout would
    bring modules that no longer exist)."""
    src, out = tmp_path_factory.mktemp("src") / "face3d", tmp_path_factory.mktemp("wheel")
    junk = ("build", "out", "runs", ".venv", ".git", "*.egg-info", "__pycache__", "ICT-FaceKit", "tests")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*junk))
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if run.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{run.stderr[-2000:]}")
    (whl,) = out.glob("face3d-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_holds_the_code_and_the_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in SHIPPED:
        assert f"face3d/assets_data/{rel}" in names, rel
    modules = {str(p.relative_to(ROOT)) for pkg in ("face3d", "editing") for p in (ROOT / pkg).rglob("*.py")}
    assert modules <= names
    assert not any("ICT-FaceKit" in n for n in names)  # a local copy of the model is never packed


@pytest.mark.slow
def test_the_installed_wheel_finds_its_assets_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import face3d, editing\n"
        "from face3d.assets import asset_path\n"
        "from face3d.regress.network import RegressorNet\n"
        "from editing.expressions import load_presets\n"
        "from editing.compare.fer import FerClassifier\n"
        "print(face3d.__file__)\n"
        "print(asset_path('regressor'))\n"
        "RegressorNet.from_pretrained()\n"
        "FerClassifier.from_pretrained()\n"
        "print(sorted(load_presets())[0])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    module_file, regressor_dir, first_preset = run.stdout.split()
    assert module_file.startswith(str(site)) and regressor_dir.startswith(str(site))
    assert first_preset == "anger"
