import threading
import time

import pytest

from addrop.errors import UserError
from addrop.studio.jobs import Busy, Job, JobRunner, default_runner, format_duration

T = 10.0  # generous timeout; every job here ends in milliseconds


def test_job_finishes_with_result():
    runner = JobRunner()
    job = runner.submit("add", lambda job, a, b=0: a + b, 2, b=3, owner="alice")
    assert runner.wait(job, T)
    assert job.status == "finished" and job.result == 5 and job.error is None
    assert job.started is not None and job.finished >= job.started
    assert runner.current() is None
    assert runner.get(job.id) is job and runner.recent(1) == [job]
    assert runner.latest("alice") is job and runner.latest("bob") is None
    snap = job.snapshot()
    assert snap["status"] == "finished" and snap["fraction"] == 1.0 and snap["eta"] == 0.0


def test_busy_while_running_then_free():
    runner = JobRunner()
    gate = threading.Event()
    job = runner.submit("long training", lambda job: gate.wait(T), owner="session-1")
    with pytest.raises(Busy) as e:
        runner.submit("other", lambda job: None, owner="session-2")
    msg = str(e.value)
    assert isinstance(e.value, UserError) and e.value.job is job
    assert "long training" in msg and "session-1" in msg and "running for" in msg and "try again" in msg
    assert "\n" not in msg
    assert runner.current() is job
    gate.set()
    assert runner.wait(job, T)
    job2 = runner.submit("other", lambda job: "ok")  # free again as soon as wait returns
    assert runner.wait(job2, T) and job2.result == "ok"


def test_stop_request_ends_loop():
    runner = JobRunner()
    started = threading.Event()

    def loop(job):
        i = 0
        while not job.should_stop():
            i += 1
            job.update(fraction=min(i / 1e6, 0.99), message=f"step {i}")
            started.set()
            time.sleep(0.001)
        return i

    job = runner.submit("loop", loop)
    assert started.wait(T)
    assert job.status == "running"
    runner.stop_current()
    assert runner.wait(job, T)
    assert job.status == "stopped" and job.result > 0 and job.error is None


def test_user_error_fails_with_message():
    runner = JobRunner()

    def bad(job):
        raise UserError("the CSV has no column 'label'")

    job = runner.submit("csv", bad)
    assert runner.wait(job, T)
    assert job.status == "failed" and job.error == "the CSV has no column 'label'" and job.traceback is None


def test_bug_fails_with_traceback():
    runner = JobRunner()

    def buggy(job):
        return {}["missing"]

    job = runner.submit("bug", buggy)
    assert runner.wait(job, T)
    assert job.status == "failed" and job.error == "KeyError: 'missing'"
    assert "Traceback" in job.traceback and "buggy" in job.traceback
    assert runner.current() is None


def test_snapshot_is_a_copy():
    job = Job("x")
    epochs = [{"epoch": 1, "dev_loss": 0.5}]
    job.update(fraction=0.5, epochs=epochs)
    job.add_event({"kind": "epoch", "n": 1})
    epochs.append({"epoch": 2})  # the worker keeps mutating its own list
    snap = job.snapshot()
    assert snap["progress"]["epochs"] == [{"epoch": 1, "dev_loss": 0.5}]
    snap["progress"]["epochs"].append("junk")
    snap["progress"]["fraction"] = 0.9
    snap["events"][0]["n"] = 99
    snap["events"].append("junk")
    again = job.snapshot()
    assert again["progress"]["epochs"] == [{"epoch": 1, "dev_loss": 0.5}]
    assert again["fraction"] == 0.5 and again["events"] == [{"kind": "epoch", "n": 1}]


def test_eta_computed():
    job = Job("x")
    assert job.snapshot()["eta"] is None and job.snapshot()["status"] == "queued"
    job._set(status="running", started=time.time() - 60.0)  # a minute of loading before the first step
    job.update(fraction=0.1)
    assert job.snapshot()["eta"] is None  # one point gives no rate
    job._first = (time.time() - 10.0, 0.1)  # as if the first progress came 10 s ago
    job.update(fraction=0.35)
    snap = job.snapshot()
    assert snap["elapsed"] == pytest.approx(60.0, abs=1.0)
    assert snap["eta"] == pytest.approx(26.0, abs=2.0)  # 0.25 in 10 s, 0.65 to go; not the minute of loading
    job.update(fraction=7)  # clamped
    assert job.snapshot()["fraction"] == 1.0 and job.snapshot()["eta"] == 0.0
    job.update(fraction=0.0)
    assert job.snapshot()["eta"] is None


def test_recent_is_bounded_and_newest_first():
    runner = JobRunner(keep_ended=3)
    jobs = []
    for i in range(5):
        j = runner.submit(f"j{i}", lambda job, i=i: i)
        assert runner.wait(j, T)
        jobs.append(j)
    assert [j.result for j in runner.recent(10)] == [4, 3, 2]
    assert runner.get(jobs[0].id) is None


def test_default_runner_singleton():
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(default_runner())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is seen[0] for r in seen) and default_runner() is seen[0]


def test_format_duration():
    assert format_duration(45) == "45s"
    assert format_duration(192) == "3m 12s"
    assert format_duration(3725) == "1h 02m"


@pytest.mark.parametrize("said, status", [({"stopped": False}, "finished"), ({"stopped": True}, "stopped"),
                                          ({}, "stopped"), (None, "stopped")])
def test_a_stop_after_the_last_step_leaves_the_job_finished(said, status):
    # Stop pressed while the work was closing (writing its figures): the result says whether anything was cut
    def work(job):
        job.stop()
        return said

    runner = JobRunner()
    job = runner.submit("closing", work)
    assert runner.wait(job, T)
    assert job.status == status and job.snapshot()["stop_requested"]
