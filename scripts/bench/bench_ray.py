"""Throughput of ``face3d fit`` locally and on Ray (face3d/batch_ray.py), in one run.

    .venv/bin/python scripts/bench/bench_ray.py --n 200 --out out/bench_ray.json

Fits the same ``--n`` AFLW2000-3D dev images (sorted by name; the default ``face3d fit``: detection,
landmarks, the 3DMM fit, JSON, textured OBJ and overlay PNG) with the local runner (1 worker) and on
a local Ray runtime with 1 and 2 actors, each on one torch thread, and reports images per second
and the ratio to the local run. The Ray runtime is started once by the script (its start-up is
timed apart); each Ray run's time includes its actors' start (receiving the models). A no-op job
over ``--noop`` items on 2 actors measures the driver's own cost per image (sending a path, getting
a result back, the bookkeeping), which bounds how far adding nodes can scale.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from face3d.batch import BatchItem, BatchJob, ItemOutcome, run_batch
from face3d.eval.aflw import load_aflw
from face3d.fit import FolderOptions, fit_folder
from face3d.io import atomic_write_json
from face3d.model import MorphableModel


class _NoopWorker:
    """Does nothing per item: what is left is the runner's and Ray's cost."""

    def prepare(self, item):
        return None

    def process(self, item, prepared):
        return ItemOutcome(outputs=0)


def _noop_worker(spec):
    return _NoopWorker()


def _fit(paths: list[str], out: Path, model, ray: str | None, workers: int) -> dict:
    options = FolderOptions(workers=workers, ray=ray, threads=1 if ray else None, progress=False)
    t0 = time.perf_counter()
    summary = fit_folder(paths, out, model, options=options)
    wall = time.perf_counter() - t0
    return {
        "runner": "ray" if ray else "local",
        "workers": workers,
        "images": len(paths),
        "processed": summary.processed,
        "failures": len(summary.failures),
        "seconds": round(wall, 2),
        "images_per_s": round(len(paths) / wall, 3),
        "median_ms": {k: round(v, 1) for k, v in summary.median_ms.items()},
        "median_total_ms": round(sum(summary.median_ms.values()), 1),
    }


def _noop(n: int, workers: int) -> dict:
    items = [BatchItem(Path(f"{k}.jpg"), str(k)) for k in range(n)]  # never read
    t0 = time.perf_counter()
    run_batch(items, BatchJob(_noop_worker, None), workers=workers, progress=False, ray="local")
    wall = time.perf_counter() - t0
    return {
        "items": n,
        "workers": workers,
        "seconds": round(wall, 2),
        "ms_per_item": round(wall / n * 1e3, 3),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--n", type=int, default=200, help="images (the first N of the dev set, sorted)")
    ap.add_argument("--noop", type=int, default=2000, help="no-op items for the driver's overhead")
    ap.add_argument("--out", default="out/bench_ray.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # the local run on one thread, as each actor
    try:
        import ray
    except ImportError:
        sys.exit("bench_ray: needs Ray: pip install 'face3d[ray]'")
    paths = [str(s.image_path) for s in load_aflw(args.data)[: args.n]]
    model = MorphableModel.from_dir()
    scratch = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    runs = []
    try:
        runs.append(_fit(paths, scratch / "local_1", model, None, 1))
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        ray_init_s = time.perf_counter() - t0
        for workers in (1, 2):
            runs.append(_fit(paths, scratch / f"ray_{workers}", model, "local", workers))
        noop = _noop(args.noop, 2)
        ray.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = runs[0]["images_per_s"]
    for r in runs:
        r["ratio_vs_local"] = round(r["images_per_s"] / base, 3)
        print(f"{r['runner']:5s} x{r['workers']}: {r['images_per_s']:.2f} img/s ({r['ratio_vs_local']:.2f}x)")
    per_image_s = statistics.mean(1 / r["images_per_s"] for r in runs if r["workers"] == 1)
    result = {
        "data": args.data,
        "cpus": os.cpu_count(),
        "torch_threads_per_worker": 1,
        "ray_init_s": round(ray_init_s, 2),
        "runs": runs,
        "noop": noop,
        "per_image_s_one_worker": round(per_image_s, 3),
        "driver_bound_images_per_s": round(1e3 / noop["ms_per_item"], 1),
    }
    print(f"ray start {ray_init_s:.1f} s; driver {noop['ms_per_item']:.2f} ms/item (no-op)")
    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
