"""One background job at a time, for the app, with no Streamlit import.

The page submits a function; it runs in a daemon thread as ``fn(job, *args, **kwargs)`` and reports through
``job.update(fraction=..., message=..., epochs=[...])`` and ``job.add_event(...)``, checking
``job.should_stop()`` between steps. The page polls ``job.snapshot()``, a deep copy that is safe to read
while the worker keeps writing. The worker never calls ``st.*``.

Only one job runs per runner: ``submit`` while one runs raises :class:`Busy` (a UserError) saying what runs,
for whom, for how long. ``default_runner()`` is the process-wide runner every session shares.
"""
from __future__ import annotations

import copy
import threading
import time
import traceback as tb_module
import uuid
from collections import deque
from typing import Any, Callable

from ..errors import UserError, one_line

JOB_STATUSES = ("queued", "running", "finished", "stopped", "failed")
DONE_STATUSES = ("finished", "stopped", "failed")
MAX_EVENTS = 1000  # a job keeps its latest events only


class Busy(UserError):
    """Another job is running on this runner; try again when it ends."""

    def __init__(self, message: str, job: "Job | None" = None):
        super().__init__(message)
        self.job = job


def format_duration(seconds: float | None) -> str:
    """45 -> '45s', 192 -> '3m 12s', 3725 -> '1h 02m'."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


def _copy(value):
    try:
        return copy.deepcopy(value)
    except Exception:  # an uncopyable object (a lock, a model): hand the reference out rather than fail
        return copy.copy(value) if isinstance(value, (list, dict)) else value


def _ended_anyway(result) -> bool:
    """Whether a job asked to stop had done all its work all the same (the stop came after its last step): its
    result says so with `"stopped": False`."""
    return isinstance(result, dict) and result.get("stopped") is False


class Job:
    """A unit of background work. Thread-safe: the worker writes with update/add_event, readers snapshot."""

    def __init__(self, name: str, owner: str | None = None, kind: str | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.name = str(name)
        self.kind = kind  # what sort of work (e.g. prior, compare, sweep): pages find their own jobs by it
        self.owner = owner
        self.status = "queued"
        self.progress: dict = {}
        self.events: deque = deque(maxlen=MAX_EVENTS)
        self.result: Any = None
        self.error: str | None = None  # one line, for people
        self.traceback: str | None = None  # only for bugs (not for UserError)
        self.submitted = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._first: tuple[float, float] | None = None  # (time, fraction) of the first progress above 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._done = threading.Event()

    # worker side -------------------------------------------------------------------------------------------
    def update(self, **kw) -> None:
        """Post progress: ``fraction`` (0..1, clamped), ``message``, and any other keys (e.g. ``epochs``)."""
        if "fraction" in kw and kw["fraction"] is not None:
            try:
                kw["fraction"] = min(1.0, max(0.0, float(kw["fraction"])))
            except (TypeError, ValueError):
                kw.pop("fraction")
        kw = {k: _copy(v) for k, v in kw.items()}  # the worker may keep mutating what it passed
        with self._lock:
            self.progress.update(kw)
            if self._first is None and kw.get("fraction"):
                self._first = (time.time(), kw["fraction"])

    def add_event(self, obj) -> None:
        with self._lock:
            self.events.append(_copy(obj))

    def should_stop(self) -> bool:
        return self._stop.is_set()

    # reader side -------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the worker to stop at its next check; the status becomes 'stopped' when it returns, unless its result
        says the stop cut nothing (`"stopped": False`: it came after the last step)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (True) or the timeout passes (False)."""
        return self._done.wait(timeout)

    def elapsed(self) -> float:
        with self._lock:
            if self.started is None:
                return 0.0
            end = self.finished if self.finished is not None else time.time()
            return max(0.0, end - self.started)

    def snapshot(self) -> dict:
        """A deep copy of the job's state: id, name, owner, status, message, fraction, elapsed, eta (seconds,
        from the rate since the first progress above 0, once the fraction has moved on from it), stop_requested,
        error, traceback, started, finished, progress, events."""
        with self._lock:
            progress = _copy(self.progress)
            events = [_copy(e) for e in self.events]
            elapsed = self.elapsed()
            status = self.status
            frac = progress.get("fraction")
            if status == "finished":
                frac = 1.0
            eta = None
            if status == "running" and isinstance(frac, float) and self._first is not None and frac > self._first[1]:
                # the rate since the first progress: loading the model and the data before it would inflate an
                # estimate made from the whole elapsed time, most of all in the first steps
                t1, f1 = self._first
                eta = (time.time() - t1) * (1.0 - frac) / (frac - f1)
            elif status in DONE_STATUSES:
                eta = 0.0
            return {
                "id": self.id,
                "name": self.name,
                "kind": self.kind,
                "owner": self.owner,
                "status": status,
                "message": progress.get("message"),
                "fraction": frac,
                "elapsed": elapsed,
                "eta": eta,
                "stop_requested": self._stop.is_set(),
                "error": self.error,
                "traceback": self.traceback,
                "submitted": self.submitted,
                "started": self.started,
                "finished": self.finished,
                "progress": progress,
                "events": events,
            }

    def describe(self) -> str:
        who = f" for {self.owner}" if self.owner else ""
        return f"{self.name!r}{who} ({self.status}, {format_duration(self.elapsed())})"

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    # runner side ---------------------------------------------------------------------------------------------
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)


class JobRunner:
    """Runs at most one job at a time in a daemon thread; keeps the last ``keep_ended`` ended jobs."""

    def __init__(self, keep_ended: int = 20):
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._recent: deque[Job] = deque(maxlen=max(1, keep_ended))

    def submit(self, name: str, fn: Callable[..., Any], *args, owner: str | None = None, kind: str | None = None,
               **kwargs) -> Job:
        """Start ``fn(job, *args, **kwargs)`` in a thread and return its Job; Busy if a job is running."""
        with self._lock:
            cur = self._current
            if cur is not None:
                who = f"started by {cur.owner}" if cur.owner else "started by another session"
                stopping = " (stopping)" if cur.stop_requested else ""
                raise Busy(
                    f"busy: job {cur.name!r} {who} has been running for {format_duration(cur.elapsed())}"
                    f"{stopping}; only one job runs at a time, try again when it finishes",
                    job=cur,
                )
            job = Job(name, owner=owner, kind=kind)
            self._current = job
        thread = threading.Thread(target=self._run, args=(job, fn, args, kwargs), name=f"addrop-job-{job.id}",
                                  daemon=True)
        try:
            thread.start()
        except BaseException as e:  # could not start a thread: do not leave the runner blocked
            job._set(status="failed", error=one_line(e), finished=time.time())
            self._retire(job)
            raise
        return job

    def _run(self, job: Job, fn, args, kwargs) -> None:
        job._set(status="running", started=time.time())
        status, result, error, trace = "finished", None, None, None
        try:
            result = fn(job, *args, **kwargs)
            if job.should_stop() and not _ended_anyway(result):
                status = "stopped"
        except UserError as e:
            status, error = "failed", one_line(e)
        except BaseException as e:  # a bug (or SystemExit/KeyboardInterrupt raised inside the worker)
            status, error, trace = "failed", one_line(e), tb_module.format_exc()
        job._set(status=status, result=result, error=error, traceback=trace, finished=time.time())
        self._retire(job)

    def _retire(self, job: Job) -> None:
        with self._lock:
            if self._current is job:
                self._current = None
            self._recent.append(job)
        job._done.set()  # only after the runner is free, so a waiter can submit right away

    def current(self) -> Job | None:
        with self._lock:
            return self._current

    def busy(self) -> bool:
        return self.current() is not None

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            if self._current is not None and self._current.id == job_id:
                return self._current
            for j in self._recent:
                if j.id == job_id:
                    return j
        return None

    def recent(self, n: int = 5) -> list[Job]:
        """The last ``n`` ended jobs, newest first."""
        with self._lock:
            jobs = list(self._recent)
        return jobs[::-1][: max(0, n)]

    def latest(self, owner: str | None = None) -> Job | None:
        """The running job, else the newest ended one; with ``owner``, only that owner's jobs."""
        with self._lock:
            jobs = list(self._recent)[::-1]
            if self._current is not None:
                jobs.insert(0, self._current)
        for j in jobs:
            if owner is None or j.owner == owner:
                return j
        return None

    def stop_current(self) -> Job | None:
        job = self.current()
        if job is not None:
            job.stop()
        return job

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until ``job`` ends; True when it did within ``timeout`` seconds."""
        return job.wait(timeout)


_default: JobRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide runner shared by every app session."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = JobRunner()
    return _default
