"""One cached model, many sessions: passes in 8 threads at once (native and Captum; GA, IGA, AA, RD) give each the
numbers the same call gives alone. Whatever a pass puts on a shared module (Captum's hooks, probes, gates, IGA
scales) is per thread (addrop/core/attention.py, captum_backend.py)."""
from __future__ import annotations

import threading

import pytest
import torch

from addrop.config import AttributionConfig
from addrop.core.attribution import attribute

pytestmark = pytest.mark.usefixtures("one_thread")

CALLS = [("native", "ga"), ("captum", "ga"), ("native", "iga"), ("captum", "iga"), ("native", "aa"),
         ("native", "rd"), ("captum", "iga"), ("captum", "ga")]
TEXTS = ["a gripping, funny film", "the plot drags on and on while nothing happens", "fine",
         "not bad at all, i liked the cast", "dull", "one of the best films of the year, truly", "meh",
         "the actors did what they could with a thin script"]


def _cfg(backend: str, method: str) -> AttributionConfig:
    return AttributionConfig(method=method, backend=backend, steps=4)


def test_eight_threads_on_one_shared_model_match_the_calls_alone(load, make_batch):
    loaded = load("tiny-bert")
    jobs = [(backend, method, make_batch(loaded, [TEXTS[i], TEXTS[(i + 3) % 8]]))
            for i, (backend, method) in enumerate(CALLS)]
    # RD draws from the generator it is given (the global RNG is shared by every thread, so it is not used here)
    alone = [attribute(loaded, b, _cfg(be, m), generator=torch.Generator().manual_seed(i))
             for i, (be, m, b) in enumerate(jobs)]
    results: dict = {}
    errors: list = []
    start = threading.Barrier(len(jobs))

    def work(i: int, backend: str, method: str, batch: dict) -> None:
        try:
            start.wait()
            for rep in range(3):  # several rounds, so passes overlap in every order
                results[(i, rep)] = attribute(loaded, batch, _cfg(backend, method),
                                              generator=torch.Generator().manual_seed(i))
        except BaseException as e:  # noqa: BLE001 - reported below with the thread's call
            errors.append((backend, method, repr(e)))

    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for (i, rep), res in results.items():
        ref = alone[i]
        assert torch.equal(res.logits, ref.logits), (CALLS[i], rep)
        assert torch.equal(res.attention, ref.attention), (CALLS[i], rep)
        assert torch.allclose(res.scores, ref.scores, rtol=0, atol=0), (CALLS[i], rep)
    # the shared model is left as it was: no hook on any of its modules, no per-thread state left behind
    assert all(not m._forward_hooks and not m._backward_hooks for m in loaded.ctrl.probes)
    assert loaded.ctrl.state.probes == {} and loaded.ctrl.state.gate == {}


def test_captum_iga_in_chunks_gives_the_same_numbers(load, make_batch):
    loaded = load("tiny-bert")
    batch = make_batch(loaded)
    whole = attribute(loaded, batch, AttributionConfig(method="iga", backend="captum", steps=5))
    chunked = attribute(loaded, batch, AttributionConfig(method="iga", backend="captum", steps=5, iga_chunk=2))
    assert torch.allclose(whole.scores, chunked.scores, rtol=1e-5, atol=1e-7)
