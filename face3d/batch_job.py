"""A batch's items and its per-item work, shared by the local runner (:mod:`face3d.batch`) and the
Ray runner (:mod:`face3d.batch_ray`): :class:`BatchItem`, :class:`ItemOutcome`, the picklable
:class:`BatchJob` and the one way an item is processed (:func:`run_item`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from face3d.errors import Face3DError


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


class ItemWorker(Protocol):
    """The per-item work of a batch, built once per process (or Ray actor) by a job's factory."""

    def prepare(self, item: BatchItem) -> object:
        """Work that may run ahead in threads (decoding, detection); its result goes to ``process``."""

    def process(self, item: BatchItem, prepared: object) -> ItemOutcome:
        """Write the item's outputs; raise (a :class:`Face3DError` or anything) to record it as failed."""


@dataclass(frozen=True)
class BatchJob:
    """A batch's per-item work as data: picklable, so that a Ray actor can rebuild the worker.

    Attributes:
        factory: a module-level callable ``factory(spec) -> ItemWorker``, usually the worker class
            itself (pickled by reference); called once per process or actor.
        spec: everything the worker needs (options, output folder, models); must pickle.
        done: a module-level ``done(spec, item) -> bool``, cheap, run on the driver: with
            ``--resume``, True skips the item (None: nothing is skipped).
    """

    factory: Callable[[Any], ItemWorker]
    spec: Any
    done: Callable[[Any, BatchItem], bool] | None = None

    def worker(self) -> ItemWorker:
        return self.factory(self.spec)

    def is_done(self, item: BatchItem) -> bool:
        return self.done is not None and self.done(self.spec, item)


def failure_reason(item: BatchItem, err: BaseException) -> str:
    """The reason recorded for a failed item (a :class:`Face3DError`'s message without the file name)."""
    if isinstance(err, Face3DError):  # the file is named beside the reason: not twice
        return str(err).removeprefix(f"{item.path}: ")
    return f"{type(err).__name__}: {err}"


def run_item(worker: ItemWorker, item: BatchItem, prepared: object) -> ItemOutcome | str:
    """``worker.process(item, prepared)``; a failure (``prepared`` may be the exception ``prepare``
    raised) comes back as its reason string. Both runners call this."""
    try:
        if isinstance(prepared, Exception):
            raise prepared
        return worker.process(item, prepared)
    except Exception as err:  # a bad file never stops the batch
        return failure_reason(item, err)


def prepare_safely(worker: ItemWorker, item: BatchItem) -> object:
    """``worker.prepare(item)``, or the exception it raised (recorded when the item is processed)."""
    try:
        return worker.prepare(item)
    except Exception as err:  # recorded by run_item
        return err
