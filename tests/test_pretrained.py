"""face3d.pretrained: the one checkpoint format (config.json + weights.pt) every network uses."""

from __future__ import annotations

import pytest
import torch

from face3d.pretrained import (
    PretrainedError,
    config_error,
    cpu_state,
    load_pretrained,
    load_state,
    save_pretrained,
)


def test_round_trip_restores_config_and_weights(tmp_path):
    net = torch.nn.Linear(3, 2)
    folder = save_pretrained(tmp_path / "ckpt", {"in": 3, "out": 2, "sizes": [1, 2]}, cpu_state(net))
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.pt"]
    config, state = load_pretrained(folder, "toy")
    assert config == {"in": 3, "out": 2, "sizes": [1, 2]}
    again = load_state(torch.nn.Linear(config["in"], config["out"]).train(), state, folder, "toy")
    assert not again.training
    x = torch.randn(4, 3)
    assert torch.equal(again(x), net(x))


def test_several_networks_in_one_file(tmp_path):
    a, b = torch.nn.Linear(2, 2), torch.nn.Conv2d(1, 1, 1)
    save_pretrained(tmp_path, {"kind": "pair"}, {"a": cpu_state(a), "b": cpu_state(b)})
    _, states = load_pretrained(tmp_path, "pair")
    assert set(states) == {"a", "b"} and torch.equal(states["b"]["weight"], b.weight.detach())


@pytest.mark.parametrize("missing", ["config.json", "weights.pt"])
def test_a_missing_file_is_named(tmp_path, missing):
    save_pretrained(tmp_path, {}, cpu_state(torch.nn.Linear(1, 1)))
    (tmp_path / missing).unlink()
    with pytest.raises(PretrainedError, match=rf"{missing}: toy checkpoint file missing \(train it\)"):
        load_pretrained(tmp_path, "toy", hint="train it")


def test_corrupt_files_are_named(tmp_path):
    save_pretrained(tmp_path, {}, cpu_state(torch.nn.Linear(1, 1)))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(PretrainedError, match="config.json: corrupt toy config"):
        load_pretrained(tmp_path, "toy")
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(PretrainedError, match="config.json: corrupt toy config"):
        load_pretrained(tmp_path, "toy")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "weights.pt").write_bytes(b"truncated")
    with pytest.raises(PretrainedError, match="weights.pt: corrupt toy weights"):
        load_pretrained(tmp_path, "toy")


def test_mismatched_weights_and_bad_configs_are_errors_naming_the_file(tmp_path):
    save_pretrained(tmp_path, {}, cpu_state(torch.nn.Linear(3, 2)))
    _, state = load_pretrained(tmp_path, "toy")
    with pytest.raises(PretrainedError, match="weights.pt: toy weights do not match config.json"):
        load_state(torch.nn.Linear(4, 2), state, tmp_path, "toy")
    err = config_error(tmp_path, "toy", TypeError("unexpected keyword 'depth'\nmore"))
    assert str(err).endswith("config.json: invalid toy config (unexpected keyword 'depth')")
