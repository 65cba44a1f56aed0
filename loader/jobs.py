"""The loader's work: one export per Hub id, a few at a time, with a bounded queue and remembered refusals.

Each export runs in a fresh process (``spawn``): torch's memory is returned when it ends, and an export killed
by the kernel (out of memory) fails that one id, not the loader. The export process dies with its loader
(``PR_SET_PDEATHSIG``), and an id is exported by one process at a time, across loader restarts (a lock in
``LOADER_STATE_DIR``). The exporter writes the model into the
repository and publishes it last in the manifest; the repository's sync loads it into Triton from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import re
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from loader import hub
from loader.estimate import ExportTimes
from loader.settings import LoaderSettings
from model_store import manifest
from triton_steps.contract import ExportState

log = logging.getLogger("loader")
PENDING = (ExportState.QUEUED, ExportState.EXPORTING)

MAX_REMEMBERED = 1024  # refusals kept (oldest dropped first): a flood of made-up ids holds bounded memory


def triton_name(model_id: str) -> str:
    """The Triton model name of an on-demand export: the Hub id with ``/`` as ``--`` (as the HF cache does),
    so that ``a/model`` and ``b/model`` do not collide."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", model_id.replace("/", "--"))


@dataclass
class Job:
    model_id: str
    name: str
    weight_bytes: int
    estimate_s: float
    state: ExportState = ExportState.QUEUED
    status: int = 200  # a failed job: the HTTP status its refusal gets
    error: str = ""
    started: float = field(default_factory=time.monotonic)  # when queued; reset when the export starts
    finished: float = 0.0

    def remaining_s(self) -> float:
        """Seconds left, as estimated: the whole estimate while queued."""
        elapsed = time.monotonic() - self.started if self.state == ExportState.EXPORTING else 0.0
        return max(1.0, self.estimate_s - elapsed)


PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with_the_loader(loader_pid: int) -> None:
    """In the export process, first: the kernel kills it when the loader dies (a kill -9, the OOM killer), so
    no export outlives its loader and races a restarted one."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the process group is still killed on stop
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != loader_pid:  # the loader died before the line above
        os._exit(1)


@contextlib.contextmanager
def export_lock(state_dir: Path, name: str) -> Iterator[None]:
    """Held while ``name`` is exported: a second export of it (an earlier loader's, still finishing) waits."""
    locks = state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the process ends, however it ends
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export(source: str, repository: str, name: str, model_id: str, state_dir: str) -> None:
    """In the export process: the same exporter and parity gate as ``python -m export``."""
    from export.exporter import ExportOptions, export_model  # torch: only in the export process
    from model_store import location

    # the exporter's progress (the "export" logger), each line naming the id it exports
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s loader.export {model_id}: %(message)s"
    )
    with export_lock(Path(state_dir), name):
        where = location.parse(repository)
        if name not in manifest.read(where):  # else exported meanwhile, by the export that held the lock
            export_model(source, where, ExportOptions(name=name, model_id=model_id, on_demand=True))


class Loader:
    """Accepts load requests (``request``) and runs their exports; lives for the loader app's lifespan."""

    def __init__(self, settings: LoaderSettings, times: ExportTimes, on_finished: Callable[[str, float], None]) -> None:
        self.settings = settings
        self.times = times
        self.on_finished = on_finished  # (the job's state, its seconds): for the metrics
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._vetting: dict[str, asyncio.Future[hub.Vetted]] = {}
        self._slots = asyncio.Semaphore(settings.max_exports)
        self._tasks: set[asyncio.Task[None]] = set()

    def _published(self, name: str) -> bool:
        return name in manifest.read(self.settings.location)

    def _remember(self, job: Job) -> None:
        self.jobs[job.model_id] = job
        self.jobs.move_to_end(job.model_id)
        while len(self.jobs) > MAX_REMEMBERED:
            oldest = next(iter(self.jobs))
            if self.jobs[oldest].state in PENDING:
                break  # only finished jobs are forgotten; the queue bound keeps running ones few
            del self.jobs[oldest]

    def queued(self) -> int:
        return sum(job.state == ExportState.QUEUED for job in self.jobs.values())

    async def request(self, model_id: str) -> Job:
        """The job of ``model_id``: a remembered one, the repository's export, or a new one (queued); a refusal
        raises ``hub.Refusal``."""
        job = self.jobs.get(model_id)
        expired = job is not None and time.monotonic() - job.finished > self.settings.failure_ttl_s
        if expired and job.state == ExportState.FAILED:
            job = None  # a refusal expires: the checkpoint may have been fixed on the Hub since
        if job is not None:
            if job.state == ExportState.FAILED:
                raise hub.Refusal(job.status, job.error)
            return job
        name = triton_name(model_id)
        if await run_in_threadpool(self._published, name):  # exported before (by an earlier loader run)
            job = Job(model_id, name, 0, 0.0, state=ExportState.EXPORTED)
            self._remember(job)
            return job
        vetting = self._vetting.get(model_id)
        if vetting is None:  # concurrent first requests for one id share one vetting, then one job
            vetting = asyncio.ensure_future(self._vet(model_id))
            self._vetting[model_id] = vetting
            vetting.add_done_callback(lambda _: self._vetting.pop(model_id, None))
        vetted = await vetting
        job = self.jobs.get(model_id)
        if job is not None:  # created by the request that shared this vetting
            return job
        if self.queued() >= self.settings.max_queue:
            raise hub.Refusal(503, f"the loader's queue is full ({self.settings.max_queue} models waiting)", False)
        ahead = sum(j.remaining_s() for j in self.jobs.values() if j.state in PENDING)
        estimate = self.times.estimate(vetted.weight_bytes)
        job = Job(model_id, name, vetted.weight_bytes, estimate + ahead / self.settings.max_exports)
        self._remember(job)
        task = asyncio.create_task(self._run(job, vetted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "%s: queued as %s (%.0f MB of weights, about %.0f s)",
            model_id,
            name,
            vetted.weight_bytes / 1e6,
            job.estimate_s,
        )
        return job

    async def _vet(self, model_id: str) -> hub.Vetted:
        settings = self.settings
        try:
            return await run_in_threadpool(
                hub.vet, model_id, None, settings.hub_token, settings.max_bytes, settings.allow_pickle
            )
        except hub.Refusal as refusal:
            log.info("%s: refused (%d): %s", model_id, refusal.status, refusal.message)
            if refusal.remember:
                self._fail(Job(model_id, triton_name(model_id), 0, 0.0), refusal.status, refusal.message)
            raise

    def _fail(self, job: Job, status: int, message: str) -> None:
        job.state, job.status, job.error, job.finished = ExportState.FAILED, status, message, time.monotonic()
        self._remember(job)

    async def _run(self, job: Job, vetted: hub.Vetted) -> None:
        async with self._slots:
            job.state, job.started = ExportState.EXPORTING, time.monotonic()
            job.estimate_s = self.times.estimate(job.weight_bytes)
            try:
                folder = await run_in_threadpool(vetted.download, self.settings.hub_token)
                log.info("%s: downloaded, exporting", job.model_id)
                await self._export_in_process(str(folder), job)
            except hub.Refusal as refusal:
                self._fail(job, refusal.status, refusal.message)
            except Exception as error:  # noqa: BLE001 - the exporter's ExportError, or anything it raised
                died = isinstance(error, BrokenProcessPool)
                message = "the export process died (out of memory?)" if died else str(error)
                self._fail(job, 503 if died else 422, f"{job.model_id} could not be exported: {message}")
            else:
                job.state, job.finished = ExportState.EXPORTED, time.monotonic()
                # the whole of it, as the client waits for it: download, process start, imports, export, gate
                self.times.record(job.weight_bytes, job.finished - job.started)
            self.on_finished(job.state, time.monotonic() - job.started)
            log.info("%s: %s%s", job.model_id, job.state, f" ({job.error})" if job.error else "")

    async def _export_in_process(self, folder: str, job: Job) -> None:
        pool = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_die_with_the_loader, initargs=(os.getpid(),)
        )
        with pool:
            where, state = str(self.settings.location), str(self.settings.state_dir)
            future = pool.submit(_export, folder, where, job.name, job.model_id, state)
            await asyncio.wrap_future(future)
