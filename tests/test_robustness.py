"""Many users, long runs: a training job in one thread while another explores; stop; NaN; memory stays bounded."""
from __future__ import annotations

import resource
import threading

import pytest
import torch

from addrop.core.attribution import attribute
from addrop.engine.batching import encode_example
from addrop.config import AttributionConfig, TrainConfig
from addrop.errors import UserError
from addrop.studio.jobs import Busy, JobRunner
from addrop.core.masking import make_drops
from addrop.engine.models import load_model
from addrop.engine.runs import list_runs, load_run
from addrop.engine.training import Callbacks, train

SENTENCES = ["a gripping, funny film", "the plot drags on and on", "fine", "not bad at all, i liked the cast"]


def _explore(loaded, text: str, seed: int = 0):
    batch, _, _ = encode_example(loaded, text)
    res = attribute(loaded, batch, AttributionConfig(method="ga"))
    gen = torch.Generator().manual_seed(seed)
    _, dropped = make_drops(res.scores, res.key_mask, 0.3, 0.3, generator=gen)
    with loaded.model.addrop.pass_settings(drops={l: dropped[i] for i, l in enumerate(res.layers)}):
        with torch.no_grad():
            masked = loaded.model(**{k: v for k, v in batch.items()}).logits
    return res.logits.clone(), res.scores.clone(), masked.clone()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_training_beside_exploring_soak(tmp_path):
    """One session trains (a job on the shared model) while another makes 50 attribution requests: no error,
    identical explorer results before and after, the shared model's weights untouched, memory bounded."""
    loaded = load_model("tiny-bert", "cpu")
    state = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    before = [_explore(loaded, s) for s in SENTENCES]
    runner = JobRunner()
    cfg = TrainConfig(model="tiny-bert", task="demo", strategy="addrop", epochs=2, train_size=96, dev_size=32,
                      batch_size=8, lr=1e-3, cross_tuning=False)

    def job_fn(job):
        return train(cfg, runs_dir=str(tmp_path), loaded=loaded,
                     callbacks=Callbacks(should_stop=job.should_stop,
                                         on_step=lambda s: job.update(fraction=s["fraction"])))

    job = runner.submit("train", job_fn, owner="session-a")
    with pytest.raises(Busy, match="busy"):
        runner.submit("second", job_fn, owner="session-b")
    rss = []
    for i in range(50):
        got = _explore(loaded, SENTENCES[i % len(SENTENCES)])
        ref = before[i % len(SENTENCES)]
        for a, b in zip(got, ref):
            assert torch.equal(a, b), f"explorer result changed during training (request {i})"
        rss.append(_rss_mb())
    assert runner.wait(job, timeout=300)
    assert job.status == "finished", job.error
    assert job.result.status == "finished"
    after = [_explore(loaded, s) for s in SENTENCES]
    for x, y in zip(before, after):
        for a, b in zip(x, y):
            assert torch.equal(a, b)
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, state[k]), f"the shared model's {k} changed"
    # bounded: the last 25 requests grow RSS by less than 64 MB over the first 25 (no per-request leak)
    assert max(rss[25:]) - max(rss[:25]) < 64, rss


def test_explorer_memory_bounded_over_50_requests():
    loaded = load_model("tiny-bert", "cpu")
    rss = []
    for i in range(50):
        _explore(loaded, SENTENCES[i % len(SENTENCES)] * (1 + i % 3), seed=i)
        rss.append(_rss_mb())
    assert max(rss[25:]) - max(rss[:25]) < 32, rss


def test_stop_ends_run_within_one_step(tmp_path):
    steps = []
    stop = threading.Event()

    def on_step(s):
        steps.append(s["step"])
        if s["step"] == 3:
            stop.set()

    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=3, train_size=128, dev_size=16, batch_size=8)
    res = train(cfg, runs_dir=str(tmp_path), callbacks=Callbacks(on_step=on_step, should_stop=stop.is_set))
    assert res.status == "stopped"
    assert steps == [1, 2, 3]  # no step after the request
    rec = load_run(res.path)
    assert rec.status == "stopped" and "stopped" in (rec.reason or "")


def test_nan_loss_fails_the_run_with_a_reason(tmp_path):
    cfg = TrainConfig(model="tiny-bert", task="demo", epochs=1, train_size=32, dev_size=16, batch_size=8)
    loaded = load_model("tiny-bert", "cpu")
    with torch.no_grad():
        loaded.model.classifier.weight.fill_(float("nan"))
    res = train(cfg, runs_dir=str(tmp_path), loaded=loaded)
    assert res.status == "failed" and "nan" in res.reason.lower()
    (rec,) = list_runs(tmp_path)
    assert rec.status == "failed" and rec.reason == res.reason


def test_out_of_memory_is_recorded_as_failed(tmp_path, monkeypatch):
    """A CUDA OOM (simulated) fails the run with a suggestion instead of crashing the worker."""
    import addrop.engine.training as tr

    def boom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tr, "drops_for", boom)
    cfg = TrainConfig(model="tiny-bert", task="demo", strategy="addrop", cross_tuning=False, epochs=1,
                      train_size=16, dev_size=8, batch_size=8)
    res = train(cfg, runs_dir=str(tmp_path))
    assert res.status == "failed" and "smaller batch" in res.reason
    assert list_runs(tmp_path)[0].status == "failed"


@pytest.mark.parametrize("kw, msg", [
    (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch size"),
    (dict(strategy="addrop", attribution=AttributionConfig(layers=(7,))), "out of range"),
])
def test_bad_training_settings_are_user_errors(tmp_path, kw, msg):
    with pytest.raises(UserError, match=msg):
        train(TrainConfig(model="tiny-bert", task="demo", train_size=16, dev_size=8, **kw), runs_dir=str(tmp_path))
    assert list_runs(tmp_path) == []  # nothing half-written
