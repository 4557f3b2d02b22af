"""The one folder runner shared by ``fit``, ``edit`` and ``compare``.

It expands inputs, shows a progress bar, skips finished items with ``--resume``, records each
failed file with its reason and goes on, and ends with a summary (also written as JSON).
Exit codes: 0 when at least one item was processed (or everything was already done), 1 when
nothing could be processed, 2 for wrong arguments (raised earlier as :class:`Face3DError`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from face3d.errors import Face3DError, InputError
from face3d.io import atomic_write_json, list_images


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
class BatchItem:
    """One input file and the stem its outputs are named after."""

    path: Path
    stem: str


@dataclass
class ItemOutcome:
    """What processing one input produced: the number of outputs and per-stage timings (ms)."""

    outputs: int = 0
    timings_ms: dict[str, list[float]] = field(default_factory=dict)
    skipped: bool = False


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


def run_batch(
    items: list[BatchItem],
    process: Callable[[BatchItem, object], ItemOutcome],
    prepare: Callable[[BatchItem], object] | None = None,
    is_done: Callable[[BatchItem], bool] | None = None,
    workers: int = 1,
    desc: str = "images",
    problems: Iterable[tuple[str, str]] = (),
    progress: bool = True,
) -> BatchSummary:
    """Run ``process(item, prepare(item))`` over items.

    Args:
        process: does the work of one item; raise :class:`Face3DError` (or any exception) to
            record the item as failed with that reason.
        prepare: optional per-item work run ahead in ``workers`` threads (decoding, detection).
        is_done: with ``--resume``, items for which it returns True are skipped.
        problems: failures known before the run (missing inputs).
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    problems = list(problems)
    failures = list(problems)
    timings: dict[str, list[float]] = {}
    processed = skipped = outputs = 0
    todo = []
    for item in items:
        if is_done is not None and is_done(item):
            skipped += 1
        else:
            todo.append(item)

    def safe_prepare(item):
        if prepare is None:
            return None
        try:
            return prepare(item)
        except Exception as err:  # recorded by the consumer
            return err

    pool = ThreadPoolExecutor(max_workers=max(1, workers)) if prepare is not None and workers > 1 else None
    prepared = pool.map(safe_prepare, todo) if pool else (safe_prepare(i) for i in todo)
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    try:
        for item, pre in zip(todo, prepared, strict=True):
            try:
                if isinstance(pre, Exception):
                    raise pre
                outcome = process(item, pre)
            except Face3DError as err:  # the file is named beside the reason: not twice
                failures.append((str(item.path), str(err).removeprefix(f"{item.path}: ")))
            except Exception as err:  # a bad file never stops the batch
                failures.append((str(item.path), f"{type(err).__name__}: {err}"))
            else:
                processed += 1
                outputs += outcome.outputs
                for k, v in outcome.timings_ms.items():
                    timings.setdefault(k, []).extend(v)
            bar.update(1)
            bar.set_postfix(failed=len(failures))
    finally:
        bar.close()
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)
    return BatchSummary(
        inputs=len(items) + len(problems),
        processed=processed,
        skipped=skipped,
        outputs=outputs,
        failures=tuple(failures),
        median_ms={k: float(np.median(v)) for k, v in timings.items() if v},
        seconds=time.perf_counter() - t0,
    )


def write_summary(out_dir: str | os.PathLike, summary: BatchSummary, output_name: str, **extra) -> Path:
    """Write ``summary.json`` atomically (``extra`` keys are merged in)."""
    payload = summary.as_dict(output_name)
    payload.update(extra)
    return atomic_write_json(Path(out_dir) / "summary.json", payload)
