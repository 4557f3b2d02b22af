"""Where the installed package finds its shipped files: presets, weights and their configs.

The repository's ``assets/`` folder is installed as the package ``face3d.assets_data`` (package
data: ``pyproject.toml`` maps it), so an editable install and a wheel find the same files through
:mod:`importlib.resources`; nothing is looked up relative to the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "face3d.assets_data"


def asset_path(*parts: str) -> Path:
    """The path of a shipped asset, e.g. ``asset_path("regressor")`` (a weights folder) or
    ``asset_path("expressions", "presets.json")``. The path is returned whether or not it exists;
    loaders say which file is missing."""
    return Path(str(resources.files(PACKAGE).joinpath(*parts)))
