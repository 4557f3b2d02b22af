"""The one folder runner shared by ``fit``, ``edit`` and ``compare``, local or on Ray.

It expands inputs, shows a progress bar, skips finished items with ``--resume``, records each
failed file with its reason and goes on, and ends with a summary (also written as JSON).
Exit codes: 0 when at least one item was processed (or everything was already done), 1 when
nothing could be processed, 2 for wrong arguments (raised earlier as :class:`Face3DError`).

The per-item work is a :class:`BatchJob`: a picklable ``spec`` (options, output folder, the
models) and a module-level ``factory`` that builds an :class:`ItemWorker` from it (detectors,
layouts: everything built once, reused for every item). The local runner builds one worker in
this process; with ``ray=`` (:mod:`face3d.batch_ray`) each Ray actor builds its own from the same
spec and factory, so both produce the same files by construction. Results are tallied in input
order whatever order they finish in, so ``summary.json`` does not depend on the runner.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d.batch_job import BatchItem, BatchJob, ItemOutcome, ItemWorker, prepare_safely, run_item
from face3d.errors import InputError
from face3d.io import atomic_write_json, list_images

__all__ = [  # the job types live in face3d.batch_job; the runners' users import them from here
    "BatchItem",
    "BatchJob",
    "BatchSummary",
    "ItemOutcome",
    "ItemWorker",
    "make_items",
    "prepare_out_dir",
    "run_batch",
    "write_summary",
]


def prepare_out_dir(out: str | os.PathLike) -> Path:
    """Create the output folder ``out`` (and its parents) before any work starts.

    Raises:
        InputError: the folder cannot be created or written (one line naming it; exit code 2).
    """
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{path}: cannot create the output folder ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{path}: the output folder is not writable")
    return path


@dataclass(frozen=True)
class BatchSummary:
    """The end of a batch: counts, failures (file, reason) and median ms per stage."""

    inputs: int
    processed: int
    skipped: int
    outputs: int
    failures: tuple[tuple[str, str], ...]
    median_ms: dict[str, float]
    seconds: float

    @property
    def exit_code(self) -> int:
        if self.inputs == 0:
            return 1
        return 0 if (self.processed + self.skipped) > 0 else 1

    def as_dict(self, output_name: str = "outputs") -> dict:
        return {
            "inputs": self.inputs,
            "processed": self.processed,
            "skipped_resume": self.skipped,
            output_name: self.outputs,
            "failures": [{"file": f, "reason": r} for f, r in self.failures],
            "median_ms": self.median_ms,
            "seconds": round(self.seconds, 3),
        }

    def line(self, output_name: str = "outputs") -> str:
        stages = ", ".join(f"{k} {v:.0f} ms" for k, v in self.median_ms.items())
        return (
            f"{self.processed} processed, {self.skipped} already done, {self.outputs} {output_name}, "
            f"{len(self.failures)} failed in {self.seconds:.1f} s" + (f"; median {stages}" if stages else "")
        )


def make_items(inputs: Iterable[str | os.PathLike]) -> tuple[list[BatchItem], list[tuple[str, str]]]:
    """Expand inputs into items with unique stems (a clash gets a short hash of the path)."""
    paths, problems = list_images(inputs)
    seen: dict[str, int] = {}
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
    items = []
    for p in paths:
        stem = p.stem
        if seen[stem] > 1:
            stem = f"{stem}_{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:6]}"
        items.append(BatchItem(p, stem))
    return items, problems


@dataclass(frozen=True)
class _Closures:
    """The closure form of :func:`run_batch` (``process``, ``prepare``) as a worker; local only."""

    process_fn: Callable[[BatchItem, object], ItemOutcome]
    prepare_fn: Callable[[BatchItem], object] | None

    def prepare(self, item: BatchItem) -> object:
        return None if self.prepare_fn is None else self.prepare_fn(item)

    def process(self, item: BatchItem, prepared: object) -> ItemOutcome:
        return self.process_fn(item, prepared)


def _run_local(worker: ItemWorker, todo: list[BatchItem], workers: int, emit) -> None:
    """Process ``todo`` in this process, ``prepare`` running ahead in ``workers`` threads."""
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    prepared = pool.map(lambda i: prepare_safely(worker, i), todo) if pool else None
    try:
        for k, item in enumerate(todo):
            pre = next(prepared) if pool else prepare_safely(worker, item)
            emit(k, run_item(worker, item, pre))
    finally:
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)


NO_IMAGES = "no images found in the inputs (jpg, jpeg, png, bmp, webp)"


def collect_items(inputs: Iterable[str | os.PathLike]) -> tuple[list[BatchItem], list[tuple[str, str]]]:
    """:func:`make_items`, with a one-line :class:`InputError` when the inputs hold no image and
    name no missing file either (a folder without photos is a user's mistake, not an empty run)."""
    items, problems = make_items(inputs)
    if not items and not problems:
        raise InputError(NO_IMAGES)
    return items, problems


def run_batch(
    items: list[BatchItem],
    work: BatchJob | Callable[[BatchItem, object], ItemOutcome],
    prepare: Callable[[BatchItem], object] | None = None,
    is_done: Callable[[BatchItem], bool] | None = None,
    workers: int = 1,
    desc: str = "images",
    problems: Iterable[tuple[str, str]] = (),
    progress: bool = True,
    ray: str | None = None,
    threads: int | None = None,
) -> BatchSummary:
    """Run a batch's work over ``items``: locally, or on Ray with ``ray``.

    Args:
        work: a :class:`BatchJob` (needed for ``ray``), or the closure form: ``process(item,
            prepare(item))`` with the ``prepare`` and ``is_done`` arguments (local only).
        is_done: closure form: with ``--resume``, items for which it returns True are skipped
            (a job uses its own ``done``).
        workers: locally, threads running ``prepare`` ahead; with ``ray``, the number of actors.
        problems: failures known before the run (missing inputs).
        ray: None runs here; ``"local"`` starts a Ray runtime on this machine, ``"auto"`` or
            ``"ray://host:port"`` joins a cluster (:func:`face3d.batch_ray.run_on_ray`).
        threads: with ``ray``, torch threads per actor (default 1); local runs leave torch alone.

    Raises:
        InputError: ``ray`` with closures, or Ray not installed.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    if isinstance(work, BatchJob):
        job, is_done = work, work.is_done
    else:
        job = None
        if ray is not None:
            raise InputError("this batch passes closures: it cannot run on Ray (pass a BatchJob)")
    problems = list(problems)
    todo = [item for item in items if is_done is None or not is_done(item)]
    results: list[ItemOutcome | str | None] = [None] * len(todo)
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    failed = [len(problems)]

    def emit(k: int, result: ItemOutcome | str) -> None:
        results[k] = result
        failed[0] += isinstance(result, str)
        bar.update(1)
        bar.set_postfix(failed=failed[0])

    try:
        if ray is not None:
            from face3d.batch_ray import run_on_ray

            run_on_ray(job, todo, emit, address=ray, workers=workers, threads=threads or 1)
        else:
            worker = job.worker() if job is not None else _Closures(work, prepare)
            _run_local(worker, todo, max(1, workers) if (job is not None or prepare) else 1, emit)
    finally:
        bar.close()
    return _tally(items, todo, results, problems, time.perf_counter() - t0)


def _tally(items, todo, results, problems, seconds: float) -> BatchSummary:
    """The summary of a batch, in input order (``results[k]``: ``todo[k]``'s outcome or reason)."""
    failures = list(problems)
    timings: dict[str, list[float]] = {}
    processed = outputs = 0
    for item, result in zip(todo, results, strict=True):
        if isinstance(result, ItemOutcome):
            processed += 1
            outputs += result.outputs
            for k, v in result.timings_ms.items():
                timings.setdefault(k, []).extend(v)
        elif result is not None:
            failures.append((str(item.path), result))
    return BatchSummary(
        inputs=len(items) + len(problems),
        processed=processed,
        skipped=len(items) - len(todo),
        outputs=outputs,
        failures=tuple(failures),
        median_ms={k: float(np.median(v)) for k, v in timings.items() if v},
        seconds=seconds,
    )


def write_summary(out_dir: str | os.PathLike, summary: BatchSummary, output_name: str, **extra) -> Path:
    """Write ``summary.json`` atomically (``extra`` keys are merged in)."""
    payload = summary.as_dict(output_name)
    payload.update(extra)
    return atomic_write_json(Path(out_dir) / "summary.json", payload)
