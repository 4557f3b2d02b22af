"""Training the FER2013 classifier (tiny): a run writes its model, log and metrics, and resumes."""

from __future__ import annotations

import numpy as np
import pytest

from editing.compare.fer import FerClassifier, FerConfig
from editing.train.fer import TrainConfig, load_fer2013, train
from face3d.errors import Face3DError

TINY = FerConfig(channels=(4, 8), convs_per_stage=1, feature_dim=8)


def test_tiny_training_run_writes_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, 48, 48), dtype=np.uint8)
    y = np.arange(80) % 7
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    cfg = TrainConfig(epochs=2, batch_size=32, val_fraction=0.1)
    metrics = train(tmp_path / "d.npz", tmp_path / "run", TINY, cfg, progress=False)
    assert metrics["test_images"] == 20 and metrics["steps"] == 2 * 3
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 3
    again = train(tmp_path / "d.npz", tmp_path / "run", TINY, cfg, resume=True, progress=False)
    assert again["test_accuracy"] == metrics["test_accuracy"]
    assert FerClassifier.from_pretrained(tmp_path / "run" / "final").config == TINY


def test_fer2013_data_errors_name_the_file(tmp_path):
    with pytest.raises(Face3DError, match="d.npz is missing"):
        load_fer2013(tmp_path / "d.npz")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(Face3DError, match="d.npz is unreadable"):
        load_fer2013(tmp_path / "d.npz")
