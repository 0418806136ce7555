"""A classroom at once: six sessions run the explorer's native/Captum cross-check on the one cached model, each
with its own sentence (the RuntimeError "differentiated Tensor ... not used in the graph" came from Captum hooks
on shared modules). Every session gets the numbers it gets alone."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from addrop.config import AttributionConfig
from addrop.studio.explore import compare_backends, explain

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["a gripping, funny film", "the plot drags on and on", "fine", "not bad at all, i liked the cast",
             "one of the best of the year", "dull and far too long"]


@pytest.mark.parametrize("method", ["ga", "iga"])
def test_six_sessions_cross_check_backends_at_once(load, method):
    loaded = load("tiny-distilbert")
    cfg = AttributionConfig(method=method, steps=4)
    expls = [explain(loaded, s, cfg=cfg) for s in SENTENCES]
    alone = [compare_backends(loaded, e) for e in expls]
    got, errors = {}, []
    start = threading.Barrier(len(expls))

    def session(i):
        try:
            start.wait()
            for rep in range(2):
                got[(i, rep)] = compare_backends(loaded, expls[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(expls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(got) == 2 * len(expls)
    for (i, _), cmp in got.items():
        np.testing.assert_array_equal(cmp.diff, alone[i].diff)
        assert cmp.max_rel_diff <= 1e-5
