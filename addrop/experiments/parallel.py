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
prior experiment's defaults gain (docs/performance.md, "Runs side by side"); a longer plan amortises it.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue as queue_mod
import signal
import tempfile
import threading
import time
from contextlib import contextmanager

from ..config import TrainConfig
from ..engine.allocator import tune_for_training
from ..errors import UserError


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


# ---------------------------------------------------------------------------------------------- worker side
_WORKER: dict = {}  # per worker process: its event queue, stop event, the splits, the last model and data it loaded


def _init_worker(threads: int, events, stop) -> None:
    """A worker's start: Ctrl-C left to the main process (it asks the runs to stop), the allocator as the command
    line has it, an exit of its own once the main process is gone (killed), its share of the threads, and what
    every run needs first (torch, transformers, the trainer) imported at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_for_training()
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    import torch

    from ..engine import training  # noqa: F401

    torch.set_num_threads(max(1, int(threads)))
    _WORKER.update(events=events, stop=stop, model=None, data=None, splits=None)


def _exit_with(sentinel) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])  # ready when the main process has ended
    os._exit(1)


def _started() -> bool:  # a task that makes the pool start a worker process
    return True


def _splits(path: str):
    """The plan's (spec, train, dev), read once per worker from the file the main process wrote."""
    if _WORKER.get("splits") is None or _WORKER["splits"][0] != path:
        with open(path, "rb") as f:
            _WORKER["splits"] = (path, pickle.load(f))
    return _WORKER["splits"][1]


def run_in_worker(i: int, cfg_dict: dict, root: str, splits_file: str) -> dict:
    """Train run i of a plan in this worker process; its last report is ("end", i). A stop request that comes
    before the run has started leaves it not started (status waiting, no record)."""
    events = _WORKER["events"]
    try:
        return _run(i, TrainConfig.from_dict(cfg_dict), root, splits_file, events, _WORKER["stop"])
    finally:
        events.put(("end", i, None))


def _run(i, cfg, root, splits_file, events, stop) -> dict:
    from ..engine.models import load_model
    from ..engine.training import Callbacks, data_key, prepare_data, train

    waiting = {"status": "waiting", "reason": None, "path": None, "id": None}
    if stop.is_set():
        return waiting
    splits = _splits(splits_file)
    mkey = (cfg.model, cfg.device, splits[0].num_labels, cfg.seed)
    if _WORKER.get("model") is None or _WORKER["model"][0] != mkey:  # one model a process: a new seed replaces it
        events.put(("message", i, f"{cfg.name}: loading the model with seed {cfg.seed}"))
        _WORKER["model"], _WORKER["data"] = None, None
        _WORKER["model"] = (mkey, load_model(cfg.model, cfg.device, num_labels=mkey[2], seed=cfg.seed))
    loaded = _WORKER["model"][1]
    dkey = data_key(cfg)
    if _WORKER.get("data") is None or _WORKER["data"][0] != dkey:
        _WORKER["data"] = (dkey, prepare_data(cfg, loaded.tokenizer, splits))
    if stop.is_set():
        return waiting
    cb = Callbacks(on_step=lambda info: events.put(("step", i, info)),
                   on_epoch=lambda rec: events.put(("epoch", i, rec)),
                   should_stop=stop.is_set)
    res = train(cfg, runs_dir=root, loaded=loaded, data=_WORKER["data"][1], callbacks=cb)
    return {"status": res.status, "reason": res.reason, "path": res.path, "id": res.id}


# ------------------------------------------------------------------------------------------------ main side
_STARTED: dict = {}  # a pool started ahead (start_workers), taken by the next run_side_by_side of that shape


def _new_pool(workers: int, threads: int):
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    events, stop = ctx.Queue(), ctx.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, events, stop))
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
        pool.submit(_started)
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
    return _STARTED.pop((workers, threads), None) or _new_pool(workers, threads)


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

    pool, events, stop = _pool(workers, threads)
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
                    running[pool.submit(run_in_worker, i, configs[i].to_dict(), root, splits_file.name)] = i
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
        _close(pool, wait=not broken)
        os.unlink(splits_file.name)
    if error is not None:
        raise error
