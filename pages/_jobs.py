"""A page's link to the process-wide job runner (addrop/studio/jobs.py): one job at a time per server, the job id
kept in st.session_state, progress redrawn by an st.fragment."""
from __future__ import annotations

import uuid

import streamlit as st

from addrop.errors import UserError


def owner() -> str:
    if "_owner" not in st.session_state:
        st.session_state["_owner"] = "session " + uuid.uuid4().hex[:6]
    return st.session_state["_owner"]


def submit_job(kind: str, name: str, fn, *args, **kwargs):
    """Start a background job for this session; on Busy (another job runs) show its message and return None."""
    from addrop.studio.jobs import Busy, default_runner

    try:
        job = default_runner().submit(name, fn, *args, owner=owner(), kind=kind, **kwargs)
    except Busy as e:
        st.error(str(e))
        return None
    st.session_state[f"job:{kind}"] = job.id
    return job


def start_plan(kind: str, build, loaded, data, num_layers: int, keep_weights: bool = True) -> None:
    """Build a training plan (`build()` may raise UserError), check it against the model and start it as this
    session's job (`keep_weights`: each run writes its final weights), its runs side by side in worker processes
    where that pays (studio.background.app_workers). Errors and Busy show on the page; the page reruns once the job
    has started."""
    from addrop.experiments.plans import check_plan
    from addrop.studio.background import app_defaults, app_workers, plan_job

    try:
        plan = app_defaults(build(), keep_weights)
        check_plan(plan, num_layers)
    except UserError as err:
        st.error(str(err))
        return
    workers = app_workers(loaded, len(plan.configs))[0]  # side by side where it pays (warm_workers started them)
    if submit_job(kind, plan.group, plan_job, plan, loaded, data, workers=workers) is not None:
        st.rerun()


def side_by_side(loaded, model: str, device: str, num_labels: int, seed, n_runs: int, running: bool) -> int:
    """How many of a plan's `n_runs` runs the app will train at once (studio.background.app_workers); where more
    than one, their worker processes are started now unless a job runs (warm_workers: each loads the model with
    `seed` ahead), so that Start does not wait for them."""
    from addrop.studio.background import app_workers, warm_workers

    if running:  # the workers are busy with it (or the plan runs in turn): nothing to start
        return app_workers(loaded, n_runs)[0]
    return warm_workers(loaded, model, device, num_labels, int(seed) if isinstance(seed, (int, float)) else 0, n_runs)


def how(at_once: int) -> str:
    """How side_by_side's count trains a plan's runs, in words."""
    return "one after the other" if at_once < 2 else f"{at_once} at a time, side by side in worker processes"


def keep_weights_toggle(where, key: str, loaded, runs: int, default: bool = True) -> tuple[bool, str]:
    """The toggle of a page that trains several runs: keep each run's final weights (what they cost on disk).
    Returns its value and a sentence for the page's caption saying what it will write (when off: what keeping them
    would allow)."""
    mb = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2 ** 20
    total = f"{runs * mb:,.0f}" if runs * mb >= 10 else f"{runs * mb:.1f}"  # tiny models: not "0 MB"
    if key not in st.session_state:
        st.session_state[key] = default
    keep = where.toggle("Keep each run's weights", key=key, persist_state="session",
                        help=f"About {mb:,.0f} MB a run with {loaded.name}, {total} MB for these {runs} "
                             "runs, in the runs folder. Kept weights let the explorer open a run (the sidebar's "
                             "model list, or run:PATH); the records and curves are kept either way.")
    return keep, (f"Each run's weights are kept: about {total} MB in all (More)." if keep else
                  f"The runs' weights are not kept (about {total} MB; to open the runs in the explorer, turn on "
                  "*Keep each run's weights* under More).")


def note_other_job(kind: str, running: bool) -> None:
    """Say so when another kind of job occupies the server (one job at a time)."""
    other = other_job_running(kind)
    if other is not None and not running:
        st.info(f"Another job is running on this server ({other.describe()}); only one runs at a time.")


def job_for(kind: str):
    """This session's latest job of `kind`, else a running job of that kind started elsewhere (so a reload or
    another tab still sees and can stop it). A job seen running here stays this session's latest once it ends,
    so a stop pressed in this tab is confirmed here and its results stay in view."""
    from addrop.studio.jobs import default_runner

    runner = default_runner()
    jid = st.session_state.get(f"job:{kind}")
    job = runner.get(jid) if jid else None
    cur = runner.current()
    if cur is not None and cur.kind == kind and (job is None or job.done):
        job = cur
        st.session_state[f"job:{kind}"] = cur.id
    return job


def other_job_running(kind: str):
    """A running job of another kind (only one job runs per server)."""
    from addrop.studio.jobs import default_runner

    cur = default_runner().current()
    if cur is not None and cur.kind != kind:
        return cur
    return None


BAR_EVERY = 2.0   # seconds between redraws of a running job's bar and times
DRAW_EVERY = 6.0  # ... and of its curves, summary and tables: each redraw takes CPU from training on 2 cores


def live_job(job, draw, key: str, every: float = BAR_EVERY, bar: bool = True, draw_every: float = DRAW_EVERY) -> None:
    """Progress bar, elapsed / remaining time and a stop button, redrawn every `every` seconds while the job runs;
    below them `draw(snapshot)` (the page's curves, summary and table; None: nothing), redrawn every `draw_every`
    seconds. Two st.fragments, so that the heavier part is sent to the browser a third as often: on a 2-core
    machine each redraw takes CPU from the training (docs/performance.md). One full rerun when the job ends.
    bar=False: no bar here (a page that draws its own from the run records, so that two bars cannot disagree)."""
    from addrop.studio.jobs import format_duration

    running_at_start = not job.done

    @st.fragment(run_every=every if running_at_start else None)
    def _live():
        snap = job.snapshot()
        status = snap["status"]
        frac = snap["fraction"] or 0.0
        msg = snap["message"] or status
        if status in ("running", "queued"):
            if bar:
                st.progress(frac, text=f"{msg} — {frac:.0%}")
            c1, c2, c3 = st.columns([1, 1, 1])
            c1.metric("Elapsed", format_duration(snap["elapsed"]))
            c2.metric("Remaining (estimate)", format_duration(snap["eta"]) if snap["eta"] is not None else "…")
            with c3:
                if snap["stop_requested"]:
                    st.info("Stopping after the current step…")
                elif st.button("Stop", key=f"stop:{key}", type="secondary", icon=":material/stop_circle:",
                               help="Stop after the current training step. The run is kept on disk, marked "
                                    "stopped; runs not yet started are skipped."):
                    job.stop()
                    st.rerun(scope="fragment")
            if snap["owner"] and snap["owner"] != owner():
                st.caption(f"Started in another session ({snap['owner']}): another tab, this tab before a reload, "
                           "or another person on this server.")
        elif status == "finished":
            late = " The stop came after the last step: nothing was cut short." if snap["stop_requested"] else ""
            st.success(f"Finished in {format_duration(snap['elapsed'])}.{late}")
        elif status == "stopped":
            st.warning(f"Stopped after {format_duration(snap['elapsed'])}; the records of the runs that started are "
                       "kept, marked stopped.")
        else:
            st.error(snap["error"] or "the job failed")
        if running_at_start and status not in ("running", "queued"):
            st.rerun()

    @st.fragment(run_every=draw_every if running_at_start else None)
    def _drawn():
        draw(job.snapshot())

    _live()
    if draw is not None:
        _drawn()


# ------------------------------------------------------------------------------------------ widget state


def so_far(kind: str, draw, live_noun: str, title: str, noun: str, key: str, show_old) -> None:
    """What a page that runs plans shows whatever its sidebar holds (its pages call this also when the sidebar's
    data or model is missing, so that a running job's Stop cannot hide behind a setting being typed): the running
    or latest job of `kind` ("This / Latest <live_noun>", `draw(snapshot)`), then the "Reopen ..." section, whose
    pick goes to `show_old(name, run records)`."""
    job = job_for(kind)
    if job is not None:
        st.subheader(f"This {live_noun}" if not job.done else f"Latest {live_noun}")
        live_job(job, draw, key=kind)
    picked = reopen(kind, job, title, noun, key)
    if picked:
        show_old(*picked)


def reopen(kind: str, job, title: str, noun: str, key: str) -> tuple[str, list] | None:
    """The "Reopen ..." section of a page that runs plans (prior, compare): a picker over the earlier groups of
    `kind` under the runs folder, newest first, the live job's own left out. (name, run records) of the picked
    group, or None when there is none."""
    from addrop.engine.runs import list_runs
    from addrop.experiments.groups import list_groups
    from pages import _common as ui

    st.subheader(title)
    live_group = job.name if job is not None else None
    groups = [g for g in list_groups(ui.runs_dir(), kind=kind) if g["name"] != live_group]
    if not groups:
        st.caption(f"No other {noun}s under `{ui.runs_dir()}` yet." if live_group else
                   f"No earlier {noun}s under `{ui.runs_dir()}` yet.")
        return None
    info = {g["name"]: g for g in groups}
    pick = st.selectbox(noun.capitalize(), list(info), key=key, persist_state="session",
                        format_func=lambda n: f"{n} ({info[n]['status']}, {info[n]['runs']} runs)",
                        help=f"{noun.capitalize()}s kept under {ui.runs_dir()} (ADDROP_RUNS_DIR), newest first.")
    return (pick, list_runs(info[pick]["path"])) if pick else None
