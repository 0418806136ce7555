"""A plan's runs side by side in worker processes on a CPU (experiments.plans.run_plan with workers > 1).

On a small CPU, two threads speed one training step up far less than twice (1.39x for a minilm step on a 2-core
AMD EPYC, docs/performance.md: the optimizer, dropout's random numbers, clipping and Python run on one core),
so the independent runs of a plan finish sooner two at a time on one thread each than one after the other on
two. Each worker process is spawned fresh (never forked from a process that runs threads), loads the model by
name with the run's seed (the same weights and head `engine.models.load_model` gives the main process) and
trains with `engine.training.train`, as the sequential path does; its progress comes back through a queue and a
stop request goes out through an event. Workers ignore Ctrl-C: the main process turns it into a stop request,
so the runs end as "stopped" with their records kept.

It is opt-in (`--workers N` of `prior` and `compare`, `run_plan(..., workers=N)`): each worker first spends
about 6 s importing torch and transformers and loading the model, which on a 2-core machine eats what the prior
experiment's defaults gain (docs/performance.md, "Runs side by side"); a longer plan amortises it.
"""
from __future__ import annotations

import queue as queue_mod
import signal
from contextlib import contextmanager

from ..config import TrainConfig


def plan_workers(configs, workers: int = 1) -> tuple[int, int]:
    """(worker processes, torch threads each) for the runs `configs`: 1 = one after the other in this process;
    N > 1 = up to N side by side, each on an equal share of this machine's CPUs (at least one thread)."""
    if workers is None or workers < 1:
        from ..errors import UserError

        raise UserError(f"workers must be 1 (one run after the other) or more, got {workers}")
    w = min(int(workers), len(configs))
    if w < 2:
        return 1, 0
    from .sweeps.cell import available_cpus

    return w, max(1, available_cpus() // w)


# ---------------------------------------------------------------------------------------------- worker side
_WORKER: dict = {}  # per worker process: its event queue, stop event and the last model and data it loaded


def _init_worker(threads: int, events, stop) -> None:
    """A worker's start: Ctrl-C left to the main process (it asks the runs to stop), its share of the threads,
    and what every run needs first (torch, transformers, the trainer) imported at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from ..engine import training  # noqa: F401

    torch.set_num_threads(max(1, int(threads)))
    _WORKER.update(events=events, stop=stop, model=None, data=None)


def _started() -> bool:  # a task that makes the pool start a worker process
    return True


def run_in_worker(i: int, cfg_dict: dict, root: str, splits) -> dict:
    """Train run i of a plan in this worker process (`splits`: (spec, train, dev), as the main process has them)."""
    from ..engine.models import load_model
    from ..engine.training import Callbacks, prepare_data, train

    cfg = TrainConfig.from_dict(cfg_dict)
    events, stop = _WORKER["events"], _WORKER["stop"]
    mkey = (cfg.model, cfg.device, splits[0].num_labels, cfg.seed)
    if _WORKER.get("model") is None or _WORKER["model"][0] != mkey:  # one model a process: a new seed replaces it
        events.put(("message", i, f"{cfg.name}: loading the model with seed {cfg.seed}"))
        _WORKER["model"], _WORKER["data"] = (mkey, load_model(cfg.model, cfg.device, num_labels=mkey[2],
                                                              seed=cfg.seed)), None
    loaded = _WORKER["model"][1]
    dkey = (cfg.seed, cfg.train_size, cfg.dev_size, cfg.shots, cfg.max_length, cfg.split_seed, cfg.holdout)
    if _WORKER.get("data") is None or _WORKER["data"][0] != dkey:
        _WORKER["data"] = (dkey, prepare_data(cfg, loaded.tokenizer, splits))
    cb = Callbacks(on_step=lambda info: events.put(("step", i, info)),
                   on_epoch=lambda rec: events.put(("epoch", i, rec)),
                   should_stop=stop.is_set)
    res = train(cfg, runs_dir=root, loaded=loaded, data=_WORKER["data"][1], callbacks=cb)
    return {"status": res.status, "reason": res.reason, "path": res.path, "id": res.id}


# ------------------------------------------------------------------------------------------------ main side
_STARTED: dict = {}  # a pool started ahead (start_workers), taken by the next run_side_by_side of that shape


def _new_pool(workers: int, threads: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    events, stop = ctx.Queue(), ctx.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads, events, stop))
    return pool, events, stop


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
    shut down on the way out."""
    start_workers(configs, workers)
    try:
        yield
    finally:
        for pool, _, _ in _STARTED.values():
            pool.shutdown(wait=False, cancel_futures=True)
        _STARTED.clear()


def _pool(workers: int, threads: int):
    return _STARTED.pop((workers, threads), None) or _new_pool(workers, threads)


def run_side_by_side(plan, splits, workers: int, threads: int, on_event, on_done, should_stop) -> None:
    """Run the plan's runs in `workers` spawned processes of `threads` torch threads each, in plan order, a new
    one starting as one ends. `on_event(kind, i, payload)` gets each run's "message", "step" and "epoch" reports
    in this process; `on_done(i, result)` each run's end (status finished | stopped | failed, reason, path, id).
    A run that does not finish (or a stop request) starts no further runs; those running end stopped on request.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    pool, events, stop = _pool(workers, threads)
    pending = list(range(len(plan.configs)))
    running: dict = {}
    root = str(plan.root)
    interrupted = False

    def drain(timeout: float) -> None:
        try:
            item = events.get(timeout=timeout)
            while True:
                on_event(*item)
                item = events.get_nowait()
        except queue_mod.Empty:
            pass

    with pool:
        while pending or running:
            try:
                if should_stop() and not stop.is_set():
                    stop.set()
                if stop.is_set():
                    pending.clear()
                while pending and len(running) < workers:
                    i = pending.pop(0)
                    on_event("start", i, None)
                    running[pool.submit(run_in_worker, i, plan.configs[i].to_dict(), root, splits)] = i
                drain(0.2)
                done, _ = wait(list(running), timeout=0, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        res = fut.result()
                    except Exception as e:  # noqa: BLE001 - a run that crashed its worker fails; the plan goes on
                        from ..errors import one_line

                        res = {"status": "failed", "reason": one_line(e), "path": None, "id": None}
                    drain(0.05)  # its last reports before its end
                    on_done(i, res)
                    if res["status"] != "finished":
                        pending.clear()
            except KeyboardInterrupt:  # the runs stop at their next step, keep their records, then we re-raise
                interrupted = True
                stop.set()
                pending.clear()
    drain(0.1)
    if interrupted:
        raise KeyboardInterrupt

