"""The batch runner on Ray (face3d/batch_ray.py): a local Ray runtime with 2 actors gives the local
runner's outputs, summary and failure records; a dying actor loses nothing; an interrupted run
resumes without losing or redoing anything, from a local run or a Ray run alike."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from face3d.cli import main
from face3d.io import write_image

GOOD = ("a", "b", "c", "d")  # the four images with a face
BAD = {"corrupt.jpg": "not an image", "noface.png": "no face found"}
TIMING_KEYS = ("seconds", "median_ms")


def test_ray_missing_is_one_line(tmp_path, monkeypatch, capsys):
    """Without Ray importable, --ray is a one-line error saying how to install it (exit 2)."""
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(["fit", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "face3d: error: --ray needs Ray: pip install 'face3d[ray]'"
    assert not (tmp_path / "o").exists()


def test_ray_address_mistake_is_one_line(tmp_path, capsys):
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    argv = ["fit", str(tmp_path / "a.png"), "--ray", str(tmp_path / "more"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2  # a folder taken for the address
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "put --ray after the inputs" in err[0]


def test_import_face3d_does_not_import_ray():
    import subprocess

    code = "import face3d, face3d.batch, face3d.fit.folder, sys; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ with Ray and the model
@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime with 2 CPUs for the module (run_batch joins it and leaves it running)."""
    ray = pytest.importorskip("ray")
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
    )
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault-injecting factory
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Six images: the example photo four ways (a face each), a corrupt JPEG and a face-free image."""
    import cv2

    from face3d.demo import example_image

    src = tmp_path_factory.mktemp("in")
    photo = example_image()
    small = cv2.resize(photo, (360, 360), interpolation=cv2.INTER_AREA)
    for name, image in zip(GOOD, (photo, photo[:, ::-1], small, small[:, ::-1]), strict=True):
        write_image(src / f"{name}.png", np.ascontiguousarray(image))
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2)
    write_image(src / "noface.png", np.full((120, 160, 3), 128, np.uint8))
    return src


def _options(**kw):
    from face3d.fit import FolderOptions
    from face3d.fit.pipeline import LandmarkConfig

    return FolderOptions(landmarks=LandmarkConfig(fast=True), write_mesh=False, progress=False, **kw)


def _fit(inputs, out, model, **kw):
    from face3d.fit import fit_folder

    return fit_folder([str(inputs)], out, model, options=_options(**kw))


@pytest.fixture(scope="module")
def local_out(inputs, ict_model, tmp_path_factory) -> Path:
    """The local runner's outputs, on one torch thread (as each Ray actor by default)."""
    import torch

    out, before = tmp_path_factory.mktemp("local"), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _fit(inputs, out, ict_model)
    finally:
        torch.set_num_threads(before)
    return out


def _summary(out: Path) -> dict:
    d = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in d.items() if k not in TIMING_KEYS}


def _record(path: Path) -> dict:
    d = json.loads(path.read_text())
    d.pop("timings_ms")
    return d


def _assert_close(a, b, where: str) -> None:
    """JSON values equal, numbers up to float rounding."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{k}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-3 * max(1.0, abs(a)), (where, a, b)
    else:
        assert a == b, where


def _assert_same_outputs(a: Path, b: Path, summary: bool = True) -> None:
    """The same files (markers included), JSON equal up to rounding (timings aside), the other
    files byte for byte, and (``summary``) the same summary.json (timings aside)."""
    files = sorted(p.name for p in a.iterdir() if p.name != "summary.json")
    assert files == sorted(p.name for p in b.iterdir() if p.name != "summary.json")
    for name in files:
        if name.endswith(".json"):
            _assert_close(_record(a / name), _record(b / name), name)
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    if summary:
        assert _summary(a) == _summary(b)
    else:  # a resumed run: the same failure records
        assert _summary(a)["failures"] == _summary(b)["failures"]


@pytest.mark.integration
def test_ray_outputs_equal_the_local_runs(ray_runtime, inputs, local_out, ict_model, tmp_path):
    summary = _fit(inputs, tmp_path, ict_model, ray="local", workers=2)
    assert summary.processed == 4 and summary.outputs == 4
    reasons = {Path(f).name: r for f, r in summary.failures}
    assert set(reasons) == set(BAD) and all(BAD[k] in reasons[k] for k in BAD), reasons
    _assert_same_outputs(local_out, tmp_path)


class _DyingWorker:
    """A fit worker whose process dies on ``victim`` the first time (``marker`` absent) and on
    ``fatal`` every time."""

    def __init__(self, spec):
        self.job, self.victim, self.fatal, self.marker = spec
        self.inner = self.job.worker()

    def prepare(self, item):
        return self.inner.prepare(item)

    def process(self, item, prepared):
        if item.stem == self.fatal or (item.stem == self.victim and not Path(self.marker).exists()):
            Path(self.marker).touch()
            os._exit(1)
        return self.inner.process(item, prepared)


def _dying_worker(spec):
    return _DyingWorker(spec)


@pytest.mark.integration
def test_a_dying_actor_loses_nothing(ray_runtime, inputs, ict_model, tmp_path):
    """ "b" kills its actor once: retried on another and done; "c" kills it every time: recorded."""
    from face3d.batch import BatchJob, make_items, run_batch
    from face3d.detect import FaceDetector
    from face3d.fit import FitConfig
    from face3d.fit.folder import FitJob, FitWorker
    from face3d.fit.pipeline import default_regressor

    fit = FitJob(tmp_path, ict_model, FitConfig(), _options(), {}, FaceDetector(), default_regressor())
    job = BatchJob(_dying_worker, (BatchJob(FitWorker, fit), "b", "c", str(tmp_path / "died")))
    items, _ = make_items([str(inputs)])
    summary = run_batch(items, job, workers=2, progress=False, ray="local")
    reasons = {Path(f).stem: r for f, r in summary.failures}
    assert summary.processed == 3 and set(reasons) == {"c", "corrupt", "noface"}
    assert reasons["c"].startswith("worker died: ")
    assert all((tmp_path / f".{s}.done").is_file() for s in ("a", "b", "d"))
    assert summary.processed + len(summary.failures) == len(items)  # every image done or recorded


def _interrupt_after(monkeypatch, n: int) -> None:
    """Make the progress bar raise KeyboardInterrupt at its ``n``-th update (as Ctrl-C would)."""
    import tqdm

    class Interrupting(tqdm.tqdm):
        calls = 0

        def update(self, k=1):
            super().update(k)
            Interrupting.calls += 1
            if Interrupting.calls >= n:
                raise KeyboardInterrupt

    monkeypatch.setattr(tqdm, "tqdm", Interrupting)


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "summary.json"}


@pytest.mark.integration
def test_interrupted_ray_run_resumes_without_loss_or_rework(
    ray_runtime, inputs, local_out, ict_model, tmp_path, monkeypatch
):
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            _fit(inputs, tmp_path, ict_model, ray="local", workers=2)
    assert ray_runtime.is_initialized()  # a runtime the run joined is left running
    done = {p.name[1:].split(".")[0] for p in tmp_path.glob(".*.done")}
    before = _mtimes(tmp_path)
    summary = _fit(inputs, tmp_path, ict_model, ray="local", workers=2, resume=True)
    assert summary.skipped == len(done) and summary.processed == 4 - len(done)
    assert all(_mtimes(tmp_path)[k] == t for k, t in before.items())  # nothing redone
    _assert_same_outputs(local_out, tmp_path, summary=False)  # nothing lost


@pytest.mark.integration
def test_resume_crosses_local_and_ray(ray_runtime, inputs, local_out, ict_model, tmp_path):
    """A local run resumed on Ray and a Ray run resumed locally skip exactly the finished images."""
    import torch

    out = tmp_path / "out"
    shutil.copytree(local_out, out)
    for stem in ("a", "c"):  # as if the local run had stopped before these two
        for p in out.glob(f"{stem}_*"):
            p.unlink()
        (out / f".{stem}.done").unlink()
    summary = _fit(inputs, out, ict_model, ray="local", workers=2, resume=True)
    assert (summary.skipped, summary.processed) == (2, 2)
    _assert_same_outputs(local_out, out, summary=False)
    (out / ".d.done").unlink()
    before, kept = torch.get_num_threads(), _mtimes(out)
    torch.set_num_threads(1)
    try:
        summary = _fit(inputs, out, ict_model, resume=True)  # the Ray run's outputs, resumed locally
    finally:
        torch.set_num_threads(before)
    assert (summary.skipped, summary.processed) == (3, 1)
    assert all(_mtimes(out)[k] == t for k, t in kept.items() if not k.startswith("d"))
    _assert_same_outputs(local_out, out, summary=False)


def _broken_worker(spec):
    raise ValueError("no weights here")


def test_an_actor_that_cannot_start_stops_the_run_with_one_line(ray_runtime):
    from face3d.batch import BatchItem, BatchJob, run_batch
    from face3d.errors import InputError

    items = [BatchItem(Path(f"{k}.png"), str(k)) for k in range(4)]
    with pytest.raises(InputError, match=r"worker \(ValueError: no weights here\)"):
        run_batch(items, BatchJob(_broken_worker, None), workers=2, progress=False, ray="local")
