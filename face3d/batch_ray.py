"""The batch runner on Ray: ``face3d fit|edit|compare --ray [ADDRESS] --workers N``.

:func:`run_on_ray` is what :func:`face3d.batch.run_batch` calls with ``ray=``. It runs a
:class:`face3d.batch_job.BatchJob` on a pool of Ray core actors: each actor builds the job's worker
once (the models travel once through Ray's object store; detectors, layouts and compiled
networks are built in the actor) and then processes many images. The driver sends paths, never
pixels: images are read where they are, and outputs are written by the actors into the output
folder, which must therefore be on a path every node shares (NFS, ...). Relative paths are
resolved against the driver's working directory, which each actor enters at start.

Why core actors and not Ray Data's ``map_batches`` with an actor pool: the runner needs to know
which image each actor holds, to retry exactly the image a dying actor was working on (once, on
another actor) and then record it as failed with the reason; and it needs each result as it
arrives, for the driver's progress bar and the failure count. Core actors give both directly:
each actor has at most ``IN_FLIGHT`` images queued (one running, one waiting, so it never idles
on the driver), the driver waits on the first result of any actor and refills that actor. A dead
actor is replaced, so the pool keeps its size.

Ray is an optional dependency (``pip install 'face3d[ray]'``) imported only inside these
functions: ``import face3d`` never imports it. A runtime this module started (``"local"``) is
shut down at the end; one it joined (``"auto"``, ``"ray://..."``, or already initialised by the
caller) is left running.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass, field

from face3d.batch_job import BatchItem, BatchJob, ItemOutcome, prepare_safely, run_item
from face3d.errors import InputError

IN_FLIGHT = 2
"""Images queued per actor at a time: one running, one waiting."""

INSTALL_HINT = "--ray needs Ray: pip install 'face3d[ray]'"


def import_ray():
    """The ``ray`` module, or a one-line :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


CLOSE_WAIT_S = 30.0
"""Longest wait, at the end of a run, for the killed actors' in-flight images to resolve."""

class BatchActor:
    """One Ray actor's state: the job's worker, built once; :meth:`run` processes one image."""

    def __init__(self, job: BatchJob, threads: int, cwd: str):
        import torch

        torch.set_num_threads(threads)  # this actor's entry point: set once, at start
        if os.path.isdir(cwd):
            os.chdir(cwd)  # relative input paths mean what they mean on the driver
        self.worker = job.worker()

    def run(self, item: BatchItem) -> ItemOutcome | str:
        """The item's outcome, or its failure reason (as :func:`face3d.batch.run_item`)."""
        return run_item(self.worker, item, prepare_safely(self.worker, item))


def start_runtime(ray, address: str, workers: int, threads: int) -> bool:
    """Start (``"local"``) or join (anything else) a Ray runtime; True if this call initialised
    Ray in this process (then :func:`run_on_ray` shuts it down: a started runtime stops, a joined
    cluster is only disconnected from)."""
    if ray.is_initialized():
        return False
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == "local":
        ray.init(address="local", num_cpus=workers * threads, include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)  # joins: shutdown() later only disconnects
    except (ConnectionError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"--ray {address}: cannot join the Ray cluster ({first})") from None
    return True


@dataclass
class _Slot:
    """One actor of the pool and the (ref, image index) pairs it holds, in submission order."""

    actor: object
    queue: deque = field(default_factory=deque)


class _Pool:
    """A fixed-size pool of :class:`BatchActor` with a bounded queue each; replaces dead actors."""

    def __init__(self, ray, job_ref, workers: int, threads: int):
        self.ray = ray
        self.cls = ray.remote(num_cpus=threads, max_restarts=0, max_task_retries=0)(BatchActor)
        self.args = (job_ref, threads, os.getcwd())
        self.slots = [_Slot(self._new_actor()) for _ in range(workers)]
        self.pending: dict[object, tuple[_Slot, int]] = {}

    def _new_actor(self):
        return self.cls.remote(*self.args)

    def submit(self, todo: list[BatchItem], waiting: deque) -> None:
        """Top every actor up to :data:`IN_FLIGHT` images from ``waiting`` (image indices)."""
        for slot in self.slots:
            while waiting and len(slot.queue) < IN_FLIGHT:
                k = waiting.popleft()
                ref = slot.actor.run.remote(todo[k])
                slot.queue.append((ref, k))
                self.pending[ref] = (slot, k)

    def replace(self, slot: _Slot) -> list[tuple[object, int]]:
        """Kill ``slot``'s actor (if it is not dead already), start another in its place and
        return what the old one held."""
        held = list(slot.queue)
        for ref, _ in held:
            self.pending.pop(ref, None)
        slot.queue.clear()
        try:
            self.ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone
            pass
        slot.actor = self._new_actor()
        return held

    def close(self) -> None:
        """Kill every actor and wait (up to :data:`CLOSE_WAIT_S`) until the images they held
        resolve, that is until the actors are gone: an interrupted run must not write after it
        returned (a ``--resume`` started right after would count those images wrong)."""
        held = list(self.pending)
        for slot in self.slots:
            try:
                self.ray.kill(slot.actor, no_restart=True)
            except Exception:  # already gone
                pass
        if held:
            self.ray.wait(held, num_returns=len(held), timeout=CLOSE_WAIT_S)


def _salvage(ray, held: list[tuple[object, int]]):
    """Split what a dead actor held into (finished: (index, result)) and lost image indices,
    the one it was running first."""
    finished, lost = [], []
    for ref, k in held:
        try:
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                raise TimeoutError
            finished.append((k, ray.get(ref)))
        except Exception:  # the actor died before finishing it
            lost.append(k)
    return finished, lost


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(err).__name__)


def _drain(ray, pool: _Pool, todo: list[BatchItem], emit) -> None:
    """The driver loop: keep every actor fed, pass results to ``emit`` as they come, retry the
    image a dying actor was running once (on another actor), then record it as failed."""
    waiting = deque(range(len(todo)))
    deaths: dict[int, int] = {}
    pool.submit(todo, waiting)
    while pool.pending:
        [ref], _ = ray.wait(list(pool.pending), num_returns=1)
        slot, k = pool.pending[ref]
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # raised outside the worker's own handling
            pool.pending.pop(ref)
            slot.queue.remove((ref, k))
            cause = getattr(err, "cause", None) or err
            emit(k, f"{type(cause).__name__}: {_short(cause)}")
        except ray.exceptions.RayError as err:  # the actor died (crash, kill, out of memory, node lost)
            if getattr(err, "actor_init_failed", False):  # the worker cannot be built: none could
                last = str(err).strip().splitlines()[-1]  # the exception, after Ray's traceback
                raise InputError(f"--ray: an actor could not build the batch's worker ({last})") from None
            finished, lost = _salvage(ray, pool.replace(slot))
            for j, res in finished:
                emit(j, res)
            for n, j in enumerate(lost):
                deaths[j] = deaths.get(j, 0) + (n == 0)  # only the running image counts a death
            requeue = [j for j in lost if deaths[j] < 2]
            for j in lost:
                if deaths[j] >= 2:
                    emit(j, f"worker died: {_short(err)}")
            waiting.extendleft(reversed(requeue))
        else:
            pool.pending.pop(ref)
            slot.queue.remove((ref, k))
            emit(k, result)
        pool.submit(todo, waiting)


def run_on_ray(
    job: BatchJob, todo: list[BatchItem], emit, address: str = "local", workers: int = 2, threads: int = 1
) -> None:
    """Process ``todo`` on ``workers`` Ray actors; ``emit(k, result)`` gets ``todo[k]``'s
    :class:`ItemOutcome` or failure reason as each one finishes (in any order).

    Args:
        address: ``"local"`` (start a runtime on this machine with ``workers * threads`` CPUs),
            ``"auto"`` or ``"ray://host:port"`` (join a cluster).
        threads: torch threads (and Ray CPUs) per actor.

    Raises:
        InputError: Ray not installed, the cluster cannot be joined, or bad ``workers``/``threads``.
    """
    if workers < 1 or threads < 1:
        raise InputError("--workers and --threads must be at least 1")
    ray = import_ray()
    if not todo:
        return
    started = start_runtime(ray, address, workers, threads)
    pool = None
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers * threads:  # the actors beyond it would wait for ever
            raise InputError(
                f"--ray: the cluster has {cpus:g} CPUs; --workers {workers} x --threads {threads} needs more"
            )
        pool = _Pool(ray, ray.put(job), workers, threads)
        _drain(ray, pool, todo, emit)
    finally:
        if pool is not None:
            pool.close()
        if started:
            ray.shutdown()
