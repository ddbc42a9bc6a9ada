"""Batching: one worker thread owns the model and decodes queued requests together.

Request handlers (on the asyncio event loop) :meth:`Engine.submit` a prepared :class:`tessera.vlm.Request`
and get a :class:`Job` back; the worker pushes every :class:`tessera.vlm.StepOutput` to the job's
``asyncio.Queue`` (thread safe, through ``loop.call_soon_threadsafe``). The waiting queue is bounded
(:class:`QueueFull` -> HTTP 429). A job whose client went away or whose deadline passed is cancelled and
its row freed at the next step.

Two modes:

* continuous batching (``max_len`` set, the server's default): up to ``max_batch`` rows of one static
  cache (:meth:`tessera.vlm.VLM.continuous`); between two decode steps the worker prefills waiting jobs
  into free rows, so a request starts as soon as a row is free and leaves as soon as it is done;
* static batches (``max_len=None``): up to ``max_batch`` waiting jobs decoded as one left-padded
  ``vlm.run`` batch; jobs arriving meanwhile wait for the next batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from dataclasses import dataclass

from tessera.vlm import VLM, Request, StepOutput

log = logging.getLogger("tessera.serve")


class QueueFull(Exception):
    """The waiting queue holds ``max_queue`` jobs already."""


class EngineStopped(Exception):
    """The engine shut down before the job finished."""


class Job:
    """One request in flight. The handler reads ``queue``: StepOutputs, then possibly an exception."""

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop, deadline: float):
        self.request = request
        self.loop = loop
        self.deadline = deadline  # time.monotonic() value
        self.queue: asyncio.Queue[StepOutput | BaseException] = asyncio.Queue()
        self.cancelled = False  # set by the handler (client gone, timeout); read by the worker

    @property
    def prompt_tokens(self) -> int:
        return len(self.request.input_ids)

    def cancel(self) -> None:
        self.cancelled = True

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def stopped(self) -> bool:
        return self.cancelled or self.expired()

    def put(self, item: StepOutput | BaseException) -> None:
        """Deliver from the worker thread to the handler's event loop."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass


@dataclass
class EngineStats:
    """``batches``: static batches run, or with continuous batching busy periods (idle -> busy);
    ``steps``: decode steps; ``largest_batch``: most requests decoded in one step."""

    batches: int = 0
    requests: int = 0
    largest_batch: int = 0
    steps: int = 0


class Engine:
    """Owns ``vlm`` in one background thread; see the module docstring."""

    def __init__(self, vlm: VLM, *, max_batch: int = 8, max_queue: int = 64, max_len: int | None = None):
        self.vlm = vlm
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.max_len = max_len  # tokens per row (prompt + answer) in continuous mode; None: static batches
        self.stats = EngineStats()
        self._pending: collections.deque[Job] = collections.deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="tessera-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel running jobs, fail waiting ones, and join the worker."""
        with self._cond:
            self._stop = True
            for job in self._running:
                job.cancel()
            while self._pending:
                self._pending.popleft().put(EngineStopped("the server is shutting down"))
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> int:
        return len(self._running)

    # ------------------------------------------------------------------ handler side
    def submit(self, request: Request, timeout: float) -> Job:
        """Queue ``request`` (call from the event loop); raises :class:`QueueFull` or :class:`EngineStopped`."""
        job = Job(request, asyncio.get_running_loop(), time.monotonic() + timeout)
        with self._cond:
            if self._stop or not self.alive:
                raise EngineStopped("the model worker is not running")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are already waiting (max_queue={self.max_queue})")
            self._pending.append(job)
            self._cond.notify()
        return job

    # ------------------------------------------------------------------ worker side
    def _take(self, limit: int, busy: bool = False, mark_running: bool = False) -> list[Job] | None:
        """Wait for a waiting job (unless ``busy``: rows are decoding), then take up to ``limit`` of them,
        failing those already gone or past their deadline. ``None`` when the engine stops."""
        with self._cond:
            while not self._pending and not busy and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            taken: list[Job] = []
            while self._pending and len(taken) < limit:
                job = self._pending.popleft()
                if job.stopped():  # gone or too late before it even started
                    job.put(StepOutput(0, "", finished=True, finish_reason="cancelled"))
                    continue
                taken.append(job)
            if mark_running:
                self._running = taken
            return taken

    def _work(self) -> None:
        if self.max_len is not None:
            self._work_continuous()
            return
        while (batch := self._take(self.max_batch, mark_running=True)) is not None:
            if batch:
                self._run(batch)
            with self._cond:
                self._running = []

    def _run(self, jobs: list[Job]) -> None:
        self.stats.batches += 1
        self.stats.requests += len(jobs)
        self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
        finished = [False] * len(jobs)
        try:
            for outputs in self.vlm.run([j.request for j in jobs], cancelled=lambda i: jobs[i].stopped()):
                for out in outputs:
                    finished[out.index] = finished[out.index] or out.finished
                    jobs[out.index].put(out)
        except Exception as e:  # a model failure must not kill the worker: fail this batch only
            log.exception("decoding a batch of %d request(s) failed", len(jobs))
            for job, done in zip(jobs, finished):
                if not done:
                    job.put(e)
            return
        for job, done in zip(jobs, finished):  # vlm.run always finishes every row; be safe anyway
            if not done:
                job.put(StepOutput(0, "", finished=True, finish_reason="cancelled"))

    # ------------------------------------------------------------------ continuous batching
    def _work_continuous(self) -> None:
        runner = self.vlm.continuous(rows=self.max_batch, max_len=self.max_len)
        jobs: dict[int, Job] = {}  # row -> job
        busy = False
        try:
            while (new := self._take(runner.free, busy=bool(jobs))) is not None:
                self.stats.requests += len(new)
                added = runner.add_many([job.request for job in new]) if new else []
                for job, item in zip(new, added):
                    if isinstance(item, Exception):  # this request alone failed (the others are in)
                        log.error("prefilling a request failed: %s", item)
                        job.put(item)
                        continue
                    row, out = item
                    job.put(out)
                    if not out.finished:
                        jobs[row] = job
                for row, job in list(jobs.items()):
                    if job.stopped():
                        job.put(runner.cancel(row))
                        del jobs[row]
                with self._cond:
                    self._running = list(jobs.values())
                if not jobs:
                    busy = False
                    continue
                if not busy:
                    self.stats.batches += 1
                    busy = True
                self.stats.steps += 1
                self.stats.largest_batch = max(self.stats.largest_batch, len(jobs))
                try:
                    outputs = runner.step()
                except Exception as e:  # fail the rows in flight and free them; go on with new requests
                    log.exception("a decode step of %d request(s) failed", len(jobs))
                    for row, job in jobs.items():
                        job.put(e)
                        runner.cancel(row)
                    jobs.clear()
                    continue
                for out in outputs:
                    jobs[out.index].put(out)
                    if out.finished:
                        del jobs[out.index]
        finally:
            for row, job in jobs.items():
                job.put(runner.cancel(row))
            with self._cond:
                self._running = []
            runner.close()
