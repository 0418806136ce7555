"""What a replication study shows, computed only from its run records: per setting and arm the dev metric at the
best and at the last epoch (mean ± sd over seeds), the half-dev figure (the epoch chosen on one half of dev,
scored on the other, both ways, averaged), paired differences per seed with a t interval, the selection grids,
the ablations and the Figure 4 points. `markdown(report)` renders the tables (DIR/report.md), each with the
sentences of notes.py a skeptical reader needs beside it; `answer(report)` is the study's answer in words.
"""
from __future__ import annotations

import math
from pathlib import Path

from ...engine.runs import list_runs
from ...engine.selection import best_epoch
from .notes import (WHICH_LABELS, cross_tuning_notes, epochs_cell, epochs_note, intervals_note, signed,
                    vanilla_cell, vanilla_notes)
from .plan import NO_CT, ReplicationPlan, Unit, plan_for_study, sweep_root
from .runner import chosen, survey

REPORT_FILE = "report.md"
WHICH = ("best", "last", "half")  # best epoch, last epoch, epoch chosen on one half of dev and scored on the other


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def run_scores(metrics: list[dict], metric: str) -> dict:
    """A run's dev `metric` at its best epoch, at its last epoch, and the half-dev figure (None where missing)."""
    key = f"dev_{metric}"
    out = {"best": None, "last": None, "half": None, "best_epoch": None, "epochs": len(metrics)}
    b = best_epoch(metrics, key, True)
    if b is not None:
        out["best"], out["best_epoch"] = _num(b.get(key)), b.get("epoch")
    if metrics:
        out["last"] = _num(metrics[-1].get(key))
    halves = []
    for pick, score in (("a", "b"), ("b", "a")):
        chosen_rec = best_epoch(metrics, f"half_{pick}_{metric}", True)
        if chosen_rec is not None and _num(chosen_rec.get(f"half_{score}_{metric}")) is not None:
            halves.append(float(chosen_rec[f"half_{score}_{metric}"]))
    out["half"] = sum(halves) / 2 if len(halves) == 2 else None
    return out


def t_interval(xs: list[float], level: float = 0.95) -> tuple[float, float, float | None, float | None]:
    """(mean, sd, low, high): Student t interval of the mean (None below two values)."""
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, None, None
    m = sum(xs) / n
    if n < 2:
        return m, math.nan, None, None
    from scipy.stats import t

    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return m, sd, m - h, m + h


def _finished(folder: Path) -> list:
    return [r for r in list_runs(folder, recursive=False) if r.status == "finished"] if folder.is_dir() else []


def _by_seed(records, metric: str, strategy: str) -> dict[int, dict]:
    """Per seed, a run's scores with its epoch cap and early-stopping patience (from its config)."""
    return {int(r.config["seed"]): dict(run_scores(r.metrics, metric), cap=r.config.get("epochs"),
                                        patience=r.config.get("early_stopping")) for r in records
            if r.config.get("strategy") == strategy and isinstance(r.config.get("seed"), int)}


def _metric_of(plan: ReplicationPlan, setting: str) -> str:
    from ...engine.tasks import get_task

    return get_task(plan.tasks[setting]["task"]).primary_metric


def _arm_row(setting, arm, metric, scores: dict, level) -> dict:
    row = {"setting": setting, "arm": arm, "metric": metric, "seeds": len(scores)}
    for w in WHICH:
        vals = [s[w] for s in scores.values() if s[w] is not None]
        m, sd, _, _ = t_interval(vals, level)
        row[f"{w}_mean"], row[f"{w}_sd"] = m, sd
    eps = [s["best_epoch"] for s in scores.values() if isinstance(s["best_epoch"], int)]
    row["best_epoch"] = sum(eps) / len(eps) if eps else math.nan
    ran = [s["epochs"] for s in scores.values() if s["epochs"]]
    row["epochs_run"] = sum(ran) / len(ran) if ran else math.nan
    row["caps"] = sorted({s["cap"] for s in scores.values() if isinstance(s.get("cap"), int)})
    row["patience"] = sorted({s["patience"] for s in scores.values() if isinstance(s.get("patience"), int)})
    return row


def _paired_rows(setting, arm, metric, base: dict, other: dict, level) -> list[dict]:
    rows = []
    seeds = sorted(set(base) & set(other))
    for w in WHICH:
        diffs = {s: other[s][w] - base[s][w] for s in seeds if other[s][w] is not None and base[s][w] is not None}
        m, sd, lo, hi = t_interval(list(diffs.values()), level)
        rows.append({"setting": setting, "arm": arm, "metric": metric, "which": w, "seeds": len(diffs), "mean": m,
                     "sd": sd, "low": lo, "high": hi, "per_seed": diffs})
    return rows


def study_report(out) -> dict:
    """Everything the report shows, from the records under `out` (a study folder with its plan.json)."""
    plan = plan_for_study(out)
    level = plan.interval
    rep = {"name": plan.name, "model": plan.model, "level": level, "status": [], "selection": [], "arms": [],
           "paired": [], "scatter": [], "chosen": {}, "holdout": plan.holdout,
           "no_ct_arms": [f"ablation: {a}" for a, c in plan.arms.items() if c.get("cross_tuning") is False]}
    for st in survey(plan, out):
        rep["status"].append({"group": st.unit.label, "runs": st.total, "finished": st.finished,
                              "estimated_s_left": st.seconds_left, "waiting": st.waiting})
    for u in plan.units():
        folder = sweep_root(out, u) / u.name
        recs = _finished(folder)
        metric = _metric_of(plan, u.setting)
        if u.stage == "selection":
            for r in recs:
                att = r.config.get("attribution") or {}
                s = run_scores(r.metrics, metric)
                row = {"setting": u.setting, "cross_tuning": u.variant != NO_CT, "strategy": r.config.get("strategy"),
                       "p": att.get("p"), "q": att.get("q"), "seed": r.config.get("seed"), "metric": metric,
                       "held_out_best": s["best"], "held_out_last": s["last"], "best_epoch": s["best_epoch"]}
                rep["selection"].append(row)
                if row["strategy"] == "addrop":
                    rep["scatter"].append(row)
            if u.variant is None:
                c = chosen(plan, out, u.setting)
                rep["chosen"][u.setting] = {"p": c.p, "q": c.q, "held_out": c.score, "reason": c.reason}
            continue
        if u.stage == "main":
            van, ad = _by_seed(recs, metric, "vanilla"), _by_seed(recs, metric, "addrop")
            if van:
                rep["arms"].append(_arm_row(u.setting, "vanilla", metric, van, level))
            if ad:
                rep["arms"].append(_arm_row(u.setting, "AD-DROP (GA)", metric, ad, level))
            if van and ad:
                rep["paired"] += _paired_rows(u.setting, "AD-DROP (GA)", metric, van, ad, level)
        else:
            van = _by_seed(_finished(sweep_root(out, Unit("main", u.setting)) / u.setting), metric, "vanilla")
            arm = _by_seed(recs, metric, "addrop")
            if arm:
                rep["arms"].append(_arm_row(u.setting, f"ablation: {u.variant}", metric, arm, level))
            if van and arm:
                rep["paired"] += _paired_rows(u.setting, f"ablation: {u.variant}", metric, van, arm, level)
    return rep


def answer(rep: dict, arm: str = "AD-DROP (GA)", which: str = "best") -> str | None:
    """The study's answer in one sentence, read off its paired differences (`arm` against vanilla, scored at
    `which`): per setting, whether the t interval lies above 0, below 0, or includes it; then, in a paragraph of
    its own, every interval of the report that excludes 0, out of how many, and the chance rate
    (notes.intervals_note). None before any pair."""
    rows = [d for d in rep["paired"] if d["arm"] == arm and d["which"] == which and d["seeds"]]
    if not rows:
        return None
    pct = int(round(rep["level"] * 100))
    above = [d["setting"] for d in rows if d["low"] is not None and d["low"] > 0]
    below = [d["setting"] for d in rows if d["high"] is not None and d["high"] < 0]
    few = [d["setting"] for d in rows if d["low"] is None]
    within = [d["setting"] for d in rows if d["setting"] not in above + below + few]
    parts = []
    if above:
        parts.append(f"better than vanilla in {', '.join(above)}")
    if below:
        parts.append(f"worse in {', '.join(below)}")
    if within:
        where = f"any setting ({', '.join(within)})" if len(within) == len(rows) else ", ".join(within)
        parts.append(f"no clear difference in {where}: the {pct}% interval of the paired difference includes 0")
    if few:
        parts.append(f"too few seeds to tell in {', '.join(few)}")
    means = [d["mean"] for d in rows]
    spread = (f"The mean difference is {signed(means[0])}" if len(rows) == 1 else
              f"The mean differences run from {signed(min(means))} to {signed(max(means))} over {len(rows)} "
              "settings")
    note = intervals_note(rep)
    return (f"{arm} against vanilla, paired by seed and scored at the {WHICH_LABELS[which]}: "
            + "; ".join(parts) + f". {spread} ({rep['model']})." + (f"\n\n{note}" if note else ""))


# ------------------------------------------------------------------------------------------------- Markdown

def _f(v, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _para(text: str | None) -> list[str]:
    return [text, ""] if text else []


def markdown(rep: dict, page: bool = False) -> str:
    """The report's tables in Markdown (what DIR/report.md holds and the app's page shows). page=True: without the
    notes the page shows elsewhere, each once: the intervals note (in its answer box, `answer`) and the notes on the
    cross-tuning grids (under its Figure 4 chart)."""
    pct = int(round(rep["level"] * 100))
    out = [f"# Replication study `{rep['name']}` ({rep['model']})", "",
           "Every number below is computed from the run records of this folder (`python -m addrop replicate "
           "PLAN --out DIR --report`).", ""]
    done = sum(s["finished"] for s in rep["status"])
    total = sum(s["runs"] for s in rep["status"])
    left = sum(s["estimated_s_left"] for s in rep["status"])
    out += [f"## Progress: {done} of {total} runs finished" + (
                f" (about {left / 3600:.1f} h left by the plan's estimate)" if done < total else ""),
            "", _table(["group", "finished", "runs", "note"],
                       [[s["group"], s["finished"], s["runs"], s["waiting"] or ""] for s in rep["status"]]), ""]
    if rep["chosen"]:
        out += ["## p and q chosen on the held-out training slice", "",
                _table(["setting", "p", "q", "held-out metric (best epoch)", "note"],
                       [[k, _f(v["p"], 1) if v["p"] is not None else "–",
                         _f(v["q"], 1) if v["q"] is not None else "–",
                         _f(v["held_out"]), v["reason"] or vanilla_cell(rep, k)] for k, v in rep["chosen"].items()]),
                ""] + _para(vanilla_notes(rep))
    if rep["arms"]:
        out += ["## Dev metric per setting and arm (mean ± sd over seeds)", "",
                _table(["setting", "arm", "metric", "seeds", "best epoch", "last epoch", "half-dev", "mean best epoch",
                        "epochs run (of cap)"],
                       [[a["setting"], a["arm"], a["metric"], a["seeds"],
                         f"{_f(a['best_mean'])} ± {_f(a['best_sd'])}", f"{_f(a['last_mean'])} ± {_f(a['last_sd'])}",
                         f"{_f(a['half_mean'])} ± {_f(a['half_sd'])}", _f(a["best_epoch"], 1), epochs_cell(a)]
                        for a in rep["arms"]]), ""] + _para(epochs_note(rep))
    if rep["paired"]:
        out += [f"## Paired difference to vanilla, per seed (mean and {pct}% t interval)", "",
                _table(["setting", "arm", "scored at", "seeds", "mean", f"{pct}% interval", "per seed"],
                       [[d["setting"], d["arm"], WHICH_LABELS[d["which"]], d["seeds"],
                         signed(d["mean"]) if d["seeds"] else "–",
                         f"[{signed(d['low'])}, {signed(d['high'])}]" if d["low"] is not None else "–",
                         ", ".join(f"s{s}: {signed(v)}" for s, v in sorted(d["per_seed"].items()))]
                        for d in rep["paired"]]), ""] + _para(None if page else intervals_note(rep))
    if rep["selection"]:
        out += ["## Selection grids (held-out training slice, never dev)", "",
                _table(["setting", "cross-tuning", "run", "p", "q", "seed", "best", "last", "best epoch"],
                       [[r["setting"], "on" if r["cross_tuning"] else "off", r["strategy"],
                         r["p"] if r["p"] is not None else "", r["q"] if r["q"] is not None else "", r["seed"],
                         _f(r["held_out_best"]), _f(r["held_out_last"]), r["best_epoch"]]
                        for r in rep["selection"]]), ""]
        for note in [] if page else cross_tuning_notes(rep):
            out += _para(note)
    if not rep["arms"]:
        out += ["No main or ablation run has finished yet: there is no result.", ""]
    return "\n".join(out)


def write_report(out) -> tuple[dict, Path]:
    from ...engine.runs import atomic_write_text

    rep = study_report(out)
    path = Path(out) / REPORT_FILE
    atomic_write_text(path, markdown(rep))
    return rep, path
