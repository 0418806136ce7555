"""Runs side by side in worker processes: a plan's (experiments.plans.run_plan with workers > 1) and a sweep's
cells (experiments.sweeps.local.run_sweep with max_concurrent > 1).

On a small CPU, two threads speed one training step up far less than twice (1.39x for a minilm step on a 2-core
AMD EPYC, docs/performance.md: the optimizer, dropout's random numbers, clipping and Python run on one core),
so the independent runs of a plan finish sooner two at a time on one thread each than one after the other on
two. Each worker process is spawned fresh (never forked from a process that runs threads), loads the model by
name with the run's seed (the same weights and head `engine.models.load_model` gives the main process; the runs
of one seed share it, each training a copy) and trains with `engine.training.train`, as the sequential path
does; its progress comes back through a queue and a stop request goes out through an event. Workers ignore
Ctrl-C: the main process turns it into a stop request, so the runs end as "stopped" with their records kept. A
worker whose main process is gone (killed) ends itself.

For a plan it is opt-in (`--workers N` of `prior` and `compare`, `run_plan(..., workers=N)`): each worker first
spends about 6 s importing torch and transformers and loading the model, which on a 2-core machine eats what the
prior experiment's defaults gain (docs/performance.md, "Runs side by side"); a longer plan amortises it. The app
keeps a pool started ahead (`keep_workers`, studio/background.py decides when), so its plans do not pay that start.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import tempfile
import threading
import time
import concurrent.futures.process  # noqa: F401 - before _stop_at_exit is registered, so that its exit hook runs after
from contextlib import contextmanager

from ..errors import UserError
from . import workers as worker_side


def plan_workers(configs, workers: int = 1) -> tuple[int, int]:
    """(worker processes, torch threads each) for the runs `configs`: 1 = one after the other in this process;
    N > 1 = up to N side by side, each on an equal share of this machine's CPUs (at least one thread) and on the
    runs' device (a GPU is shared by the workers)."""
    if workers is None or workers < 1:
        raise UserError(f"workers must be 1 (one run after the other) or more, got {workers}")
    w = min(int(workers), len(configs))
    if w < 2:
        return 1, 0
    from .sweeps.cell import available_cpus

    return w, max(1, available_cpus() // w)


# ------------------------------------------------------------------------------------------------ main side
_STARTED: dict = {}  # a pool started ahead (start_workers), taken by the next run_side_by_side of that shape


def _new_pool(workers: int, threads: int, preload: tuple | None = None):
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    events, stop = ctx.Queue(), ctx.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker_side.init_worker,
                               initargs=(threads, events, stop, preload))
    return pool, events, stop


def _a_worker_died(pool) -> bool:
    """Whether a worker process of the pool has ended. The pool notices a dead worker itself only through the
    processes its manager thread watches, and on Python 3.11 that list can miss the last worker it spawned until the
    next task is submitted or a result comes: a killed worker then went unnoticed until the other runs had finished
    (measured: 28 s late, while the other worker trained 1000 epochs)."""
    return any(proc.exitcode is not None for proc in list((getattr(pool, "_processes", None) or {}).values()))


def _close(pool, wait: bool) -> None:
    """Shut a pool down; without waiting, its workers are terminated first (they may still be starting up)."""
    if not wait:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def start_workers(configs, workers: int) -> None:
    """Start the worker processes of a plan ahead and let them import torch and transformers while this process
    checks the plan (the command line calls it first; run_side_by_side takes them). Nothing for workers=1."""
    w, threads = plan_workers(configs, workers)
    if w < 2 or (w, threads) in _STARTED:
        return
    pool, events, stop = _new_pool(w, threads)
    for _ in range(w):
        pool.submit(worker_side.started)
    _STARTED[(w, threads)] = (pool, events, stop)


@contextmanager
def workers_ahead(configs, workers: int):
    """start_workers for the block (the plan's checks and its run); a pool no plan took (the checks failed) is
    terminated on the way out."""
    start_workers(configs, workers)
    try:
        yield
    finally:
        for pool, _, _ in _STARTED.values():
            _close(pool, wait=False)
        _STARTED.clear()


def _pool(workers: int, threads: int):
    """(pool, events, stop, kept): one started ahead, else the kept pool of that shape if no one uses it, else new."""
    started = _STARTED.pop((workers, threads), None)
    if started is not None:
        return (*started, False)
    kept = _take_kept(workers, threads)
    return (*kept, True) if kept is not None else (*_new_pool(workers, threads), False)


# -------------------------------------------------------------------- a pool kept between plans (the app's)
KEEP_IDLE_S = 600.0  # a kept pool unused this long is shut down (its processes hold torch and a model each)
_KEPT: dict = {}  # pool, events, stop, shape, preload, busy, timer
_KEPT_LOCK = threading.Lock()


def keep_workers(workers: int, threads: int, preload: tuple | None = None) -> bool:
    """Start `workers` worker processes of `threads` torch threads that stay between plans and sweeps, each loading
    the model `preload` = (model, device, num_labels, seed) ahead, so that the next plan of that shape (the app's
    prior and compare pages) does not wait for workers to start (docs/performance.md). Called again alike: only the
    idle clock restarts; so with only another seed (a run loads its seed's head itself, in about a second). Another
    shape or model replaces an idle pool; one in use is left alone. Unused for KEEP_IDLE_S, it is shut down.
    Returns whether a pool was started."""
    if workers < 2:
        return False
    preload = tuple(preload) if preload is not None else None
    with _KEPT_LOCK:
        if _KEPT.get("busy"):
            return False
        if _KEPT.get("shape") == (workers, threads) and _same_model(_KEPT["preload"], preload) \
                and not _a_worker_died(_KEPT["pool"]):
            _idle_clock()
            return False
        old = _forget_kept()
        _KEPT.update(zip(("pool", "events", "stop"), _new_pool(workers, threads, preload)),
                     shape=(workers, threads), preload=preload, busy=False)
        for _ in range(workers):
            _KEPT["pool"].submit(worker_side.started)  # spawned now, not at the first run
        _idle_clock()
    if old is not None:
        _close(old, wait=False)
    return True


def release_workers() -> None:
    """Shut the kept pool down now, unless a plan uses it (what the idle clock calls)."""
    with _KEPT_LOCK:
        old = None if _KEPT.get("busy") else _forget_kept()
    if old is not None:
        _close(old, wait=False)


def kept_workers() -> dict | None:
    """The kept pool's shape, preload and whether a plan uses it; None without one."""
    with _KEPT_LOCK:
        return {k: _KEPT[k] for k in ("shape", "preload", "busy")} if _KEPT else None


def _same_model(a: tuple | None, b: tuple | None) -> bool:  # preloads alike but for the seed
    return (a is None) == (b is None) and (a is None or a[:3] == b[:3])


def _forget_kept():  # with _KEPT_LOCK held: the kept pool (None: none), forgotten, its idle clock stopped
    if _KEPT.get("timer") is not None:
        _KEPT["timer"].cancel()
    pool = _KEPT.get("pool")
    _KEPT.clear()
    return pool


def _idle_clock() -> None:  # with _KEPT_LOCK held
    if _KEPT.get("timer") is not None:
        _KEPT["timer"].cancel()
    _KEPT["timer"] = threading.Timer(KEEP_IDLE_S, release_workers)
    _KEPT["timer"].daemon = True
    try:
        _KEPT["timer"].start()
    except RuntimeError:  # the interpreter is exiting: no clock needed
        pass


def _take_kept(workers: int, threads: int):
    """The kept pool for a plan of this shape, marked in use, its stop request cleared and the reports the last plan
    left behind drained; None when there is none of that shape, it is in use or a worker of it died."""
    dead = None
    with _KEPT_LOCK:
        if _KEPT.get("shape") != (workers, threads) or _KEPT["busy"]:
            return None
        if _a_worker_died(_KEPT["pool"]):
            dead = _forget_kept()
        else:
            _KEPT["busy"] = True
            _KEPT["timer"].cancel()
            pool, events, stop = _KEPT["pool"], _KEPT["events"], _KEPT["stop"]
    if dead is not None:
        _close(dead, wait=False)
        return None
    stop.clear()
    try:
        while True:  # a run's last reports may come after its plan stopped waiting for them
            events.get_nowait()
    except queue_mod.Empty:
        pass
    return pool, events, stop


def _give_back(pool, broken: bool) -> None:
    """A plan's end on the kept pool: idle again, or (broken: a worker died) shut down and forgotten."""
    with _KEPT_LOCK:
        if _KEPT.get("pool") is pool and not broken:
            _KEPT["busy"] = False
            _idle_clock()
            return
        if _KEPT.get("pool") is pool:
            _forget_kept()
    _close(pool, wait=False)


_RUNNING: set = set()  # the stop events of the pools that run a plan or sweep now


def _stop_at_exit() -> None:
    """At the interpreter's exit (the app's server stopped with Ctrl-C while a plan's runs train side by side), before
    concurrent.futures waits for the work under way: ask those runs to stop at their next step. The exit then waits
    a step instead of the runs' ends (measured: 1.1 s instead of 23.5 s, minilm, 10 epochs); their records end
    "stopped"."""
    for stop in list(_RUNNING):
        stop.set()


threading._register_atexit(_stop_at_exit)  # after concurrent.futures.process's own hook (imported above): run first


_LAST_REPORT_S = 10.0  # how long a run's last reports may lag behind its result


class WorkerDied(UserError):
    """A worker process ended without finishing its run (killed, or out of memory): the command line prints it
    on one line, the app shows it; the runs that ended before are kept."""


def run_side_by_side(configs, root, splits, workers: int, threads: int, on_event, on_done, should_stop,
                     keep_going: bool = False) -> None:
    """Train the runs `configs` (their records under `root`, on the data `splits`: (spec, train, dev) as
    engine.data.load_splits gives them) in `workers` spawned processes of `threads` torch threads each, in order,
    a new one starting as one ends. `on_event(kind, i, payload)` gets each run's "start", "message", "step" and
    "epoch" reports in this process, in order; `on_done(i, result)` each run's end (status finished | stopped |
    failed | waiting, reason, path, id) after its last report.

    A stop request starts no further runs. A run that does not finish starts no further runs either, unless
    `keep_going` (a sweep: a cell that ends failed is reported and the others go on). An error (one a run
    raised, a worker that died, Ctrl-C, or one of on_event / on_done) stops the runs under way at their next
    step, waits for them (their records kept, marked stopped) and is raised then: the plan or sweep fails as
    one after the other it would.
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    pool, events, stop, kept = _pool(workers, threads)
    _RUNNING.add(stop)
    pending = list(range(len(configs)))
    running: dict = {}  # future -> run index
    ended: dict = {}  # run index -> (its result, when its future was done), until its last report has come
    reported: set = set()  # run indices whose last report ("end") has come
    root = str(root)
    error: BaseException | None = None
    splits_file = tempfile.NamedTemporaryFile(prefix="addrop-splits-", suffix=".pkl", delete=False)
    broken = False
    try:
        with splits_file:
            pickle.dump(splits, splits_file, protocol=pickle.HIGHEST_PROTOCOL)

        def drain(timeout: float) -> None:
            try:
                item = events.get(timeout=timeout)
                while True:
                    if item[0] == "end":
                        reported.add(item[1])
                    else:
                        on_event(*item)
                    item = events.get_nowait()
            except queue_mod.Empty:
                pass

        def finish_reported() -> None:  # on_done for the runs whose future is done and whose last report came
            now = time.monotonic()
            for i in [i for i in ended if i in reported or now - ended[i][1] > _LAST_REPORT_S]:
                res = ended.pop(i)[0]
                on_done(i, res)
                if res["status"] == "stopped" or (res["status"] != "finished" and not keep_going):
                    pending.clear()

        while pending or running or ended:
            try:
                if error is None and should_stop():
                    stop.set()
                if stop.is_set():
                    pending.clear()
                while pending and len(running) + len(ended) < workers:
                    i = pending[0]
                    running[pool.submit(worker_side.run_in_worker, i, configs[i].to_dict(), root, splits_file.name)] = i
                    pending.pop(0)
                    on_event("start", i, None)
                drain(0.2)
                done, _ = wait(list(running), timeout=0, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        ended[i] = (fut.result(), time.monotonic())
                    except BaseException as e:
                        ended[i] = ({"status": "failed", "path": None, "id": None,
                                     "reason": "its worker process died (killed, or out of memory?)"
                                     if isinstance(e, BrokenProcessPool) else "an error (raised by the run)"},
                                    time.monotonic())
                        if isinstance(e, BrokenProcessPool):
                            raise WorkerDied(f"run {configs[i].name}: {ended[i][0]['reason']}") from None
                        raise
                if running and _a_worker_died(pool):
                    raise WorkerDied(f"a worker process died (killed, or out of memory?) while "
                                     f"{', '.join(configs[i].name for i in running.values())} ran")
                finish_reported()
            except BaseException as e:  # noqa: BLE001 - stop the others, wait for them, then raise it
                error = error or e
                stop.set()
                pending.clear()
                if isinstance(e, (BrokenProcessPool, WorkerDied)):  # the pool is broken: every worker is gone
                    broken = True
                    for fut, i in list(running.items()):
                        ended[i] = ({"status": "failed", "reason": "its worker process died with another",
                                     "path": None, "id": None}, time.monotonic())
                        running.pop(fut)
                    reported.update(ended)
                try:
                    finish_reported()
                except BaseException:  # noqa: BLE001 - the first error is the one raised
                    pass
    finally:
        _RUNNING.discard(stop)
        if kept:
            _give_back(pool, broken)
        else:
            _close(pool, wait=not broken)
        os.unlink(splits_file.name)
    if error is not None:
        raise error
