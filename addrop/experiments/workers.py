"""The worker side of experiments/parallel.py: what a spawned worker process runs. Its start (`init_worker`:
torch's threads, the imports every run needs, a model loaded ahead for a kept pool) and one run of a plan or one
cell of a sweep (`run_in_worker`), its progress sent back through a queue and a stop request read from an event."""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
import signal
import threading

from ..config import TrainConfig
from ..engine.allocator import give_back_freed, tune_for_training


_WORKER: dict = {}  # per worker process: its event queue, stop event, the splits, the last model and data it loaded


def init_worker(threads: int, events, stop, preload: tuple | None = None) -> None:
    """A worker's start: Ctrl-C left to the main process (it asks the runs to stop), the allocator as the command
    line has it, an exit of its own once the main process is gone (killed), its share of the threads, and what
    every run needs first (torch, transformers, the trainer) imported at once; `preload` (model, device, labels,
    seed): that model loaded too, as a run of that model and seed would load it (a pool kept for the app)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_for_training()
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    import torch

    from ..engine import training  # noqa: F401

    torch.set_num_threads(max(1, int(threads)))
    _WORKER.update(events=events, stop=stop, model=None, data=None, splits=None)
    if preload is not None:
        from ..engine.models import load_model

        try:
            _WORKER["model"] = (tuple(preload), load_model(preload[0], preload[1], num_labels=preload[2],
                                                           seed=preload[3]))
        except Exception:  # noqa: BLE001 - the run loads it again and reports what went wrong where it belongs
            pass


def _exit_with(sentinel) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])  # ready when the main process has ended
    os._exit(1)


def started() -> bool:  # a task that makes the pool start a worker process
    return True


def _splits(path: str):
    """The plan's (spec, train, dev), read once per worker from the file the main process wrote."""
    if _WORKER.get("splits") is None or _WORKER["splits"][0] != path:
        with open(path, "rb") as f:
            _WORKER["splits"] = (path, pickle.load(f))
        _WORKER["data"] = None  # tokenized from the last plan's splits: another plan's may differ under one key
    return _WORKER["splits"][1]


def run_in_worker(i: int, cfg_dict: dict, root: str, splits_file: str) -> dict:
    """Train run i of a plan in this worker process; its last report is ("end", i). A stop request that comes
    before the run has started leaves it not started (status waiting, no record)."""
    events = _WORKER["events"]
    try:
        return _run(i, TrainConfig.from_dict(cfg_dict), root, splits_file, events, _WORKER["stop"])
    finally:
        events.put(("end", i, None))
        gc.collect()
        give_back_freed()  # the run's model copy, gradients and optimizer: not kept while the process waits


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
