"""Checkpoint folders, the one implementation: ``config.json`` (the architecture, as JSON) beside
``weights.pt`` (state dicts), written atomically, read offline.

Every network (the landmark regressor, the FER classifier, the GAN generators) saves with
:func:`save_pretrained` and loads with :func:`load_pretrained`; its ``from_pretrained`` turns the
config into its dataclass and loads the state with :func:`load_state`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch
from torch import nn

from face3d.errors import Face3DError
from face3d.io import atomic_write_bytes, atomic_write_json

CONFIG_NAME, WEIGHTS_NAME = "config.json", "weights.pt"


class PretrainedError(Face3DError):
    """A checkpoint folder is missing a file, or holds a corrupt or mismatched one (the message
    names the file)."""


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict, detached, contiguous, on the CPU (what :func:`save_pretrained` stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_pretrained(folder: str | os.PathLike, config: dict, weights: dict) -> Path:
    """Write ``config.json`` (``config``, JSON-serialisable) and ``weights.pt`` (``weights``: a
    state dict, or a dict of state dicts for several networks) atomically into ``folder``, made if
    needed. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(weights, buf)
    atomic_write_bytes(folder / WEIGHTS_NAME, buf.getvalue())
    atomic_write_json(folder / CONFIG_NAME, config)
    return folder


def load_pretrained(folder: str | os.PathLike, what: str, hint: str = "") -> tuple[dict, dict]:
    """``(config, weights)`` of a :func:`save_pretrained` folder, on the CPU.

    Args:
        folder: the checkpoint folder.
        what: what it holds, for error messages (``"regressor"``, ``"FER classifier"``, ...).
        hint: how to make one, appended to the missing-file message.

    Raises:
        PretrainedError: a file is missing, or unreadable as JSON / a torch state.
    """
    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise PretrainedError(f"{p}: {what} checkpoint file missing{f' ({hint})' if hint else ''}")
    try:
        config = json.loads(cfg_path.read_text())
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise PretrainedError(f"{cfg_path}: corrupt {what} config ({err})") from None
    try:
        weights = torch.load(w_path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds on a truncated or foreign file
        raise PretrainedError(f"{w_path}: corrupt {what} weights ({_first_line(err)})") from None
    return config, weights


def load_state(module: nn.Module, state: dict, folder: str | os.PathLike, what: str) -> nn.Module:
    """``module.load_state_dict(state)``, eval mode; a mismatch raises :class:`PretrainedError`
    naming the weights file of ``folder``."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, AttributeError) as err:
        w_path = Path(folder) / WEIGHTS_NAME
        raise PretrainedError(
            f"{w_path}: {what} weights do not match {CONFIG_NAME} ({_first_line(err)})"
        ) from None
    return module.eval()


def config_error(folder: str | os.PathLike, what: str, err: Exception) -> PretrainedError:
    """The error for a ``config.json`` that parses but does not build the network."""
    return PretrainedError(f"{Path(folder) / CONFIG_NAME}: invalid {what} config ({_first_line(err)})")


def _first_line(err: Exception) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
