"""What a group of runs shows, in sentences computed from its epoch records (never typed in): the prior
experiment's summary and clean-loss gap, the comparison's paired verdict with its spread, and the overfitting
check both use. The pages and the command line print these; the paper's own finding is quoted separately.

Every function takes the long frame of `engine.runs.metrics_frame` (or a live job's epoch rows): one row per
(run, epoch) with run, strategy, seed, epoch, train_loss, dev_loss, dev_<metric> and optional clean_train_loss.
"""
from __future__ import annotations

import math

from ..errors import counted, listed

PAPER_PRIOR_FINDING = (
    "In the paper (RoBERTa-base on MRPC, Figure 2 of Section 2.2), dropping the low-attribution positions fits "
    "the training data fastest but generalises worst, and dropping the high-attribution positions slows fitting "
    "the most: the observation AD-DROP is built on.")
OVERFIT_TOL = 1e-4  # a dev loss counts as rising when it ends this much above its minimum
CLEAR_RISE = 0.02  # ... and as clearly rising from this much (the bar of docs/prior-preset.md)
# a drop-* run relies on its masks when its clean training loss exceeds its masked one by this much beyond none's
# gap, and by RELIANCE_SHARE of the masked loss (a regression's loss of 10 moves by 0.1 without meaning anything)
RELIANCE = 0.1
RELIANCE_SHARE = 0.5
TIE_TOL = 2e-3  # strategies whose losses (or metrics) all lie within this of each other are not ranked
NAMES = {"none": "none", "drop-random": "drop-random", "drop-low": "drop-low", "drop-high": "drop-high",
         "vanilla": "vanilla", "addrop": "AD-DROP"}


def _name(strategy) -> str:
    return NAMES.get(str(strategy), str(strategy))


def _metric(frame) -> str | None:
    cols = [c for c in frame.columns if c.startswith("dev_") and c != "dev_loss" and frame[c].notna().any()]
    for pref in ("dev_accuracy", "dev_mcc", "dev_pearson", "dev_f1"):
        if pref in cols:
            return pref
    return cols[0] if cols else None


def _label(metric: str) -> str:
    return metric.replace("dev_", "dev ")


def overfitting(frame, tol: float = OVERFIT_TOL) -> dict:
    """Per run: None (fewer than two epochs: no curve yet), else whether its dev loss has started to rise: it
    ends more than `tol` above its minimum, reached at an earlier epoch."""
    out = {}
    if frame is None or frame.empty or "dev_loss" not in frame:
        return out
    for run, g in frame.sort_values("epoch").groupby("run", sort=False):
        loss = [float(v) for v in g["dev_loss"] if v == v]
        out[run] = None if len(loss) < 2 else loss[-1] > min(loss) + tol
    return out


def overfit_sentence(frame, tol: float = OVERFIT_TOL) -> tuple[bool | None, str]:
    """(whether any run has started to overfit, a sentence saying which, or that none has). None: too few epochs."""
    flags = overfitting(frame, tol)
    known = {r: f for r, f in flags.items() if f is not None}
    if not known:
        return None, "With a single epoch there is no dev-loss curve yet: nothing can be said about overfitting."
    rising = [r for r, f in known.items() if f]
    if not rising:
        return False, ("No run has started to overfit: every dev loss is still at its lowest at the last epoch, so "
                       "these runs cannot show what a regulariser does against overfitting; train more epochs or "
                       "on fewer examples.")
    clear, slight = [], []
    for r in rising:
        g = frame[frame["run"] == r].sort_values("epoch")
        i = g["dev_loss"].astype(float).idxmin()
        low, last = float(g.loc[i, "dev_loss"]), float(g["dev_loss"].iloc[-1])
        if last - low >= CLEAR_RISE:
            clear.append(f"{r} (lowest {low:.4f} at epoch {int(g.loc[i, 'epoch'])}, {last:.4f} at the last)")
        else:
            slight.append(f"{r} (lowest {low:.4f} at epoch {int(g.loc[i, 'epoch'])}, +{last - low:.4f} at the last)")
    parts = [f"Started to overfit (dev loss rising after its minimum): {', '.join(clear)}"] if clear else []
    if slight:
        parts.append(("barely, by less than " if clear else "Only barely started to overfit (dev loss up by less "
                      "than ") + f"{CLEAR_RISE:g}{'' if clear else ' after its minimum)'}: {', '.join(slight)}")
    rest = len(known) - len(rising)
    still = "; the other run still improves." if rest == 1 else f"; the other {rest} runs still improve."
    return True, "; ".join(parts) + (still if rest else ".")


def _last_common(frame):
    """Rows at the last epoch every run has reached (live runs: compare like with like), and that epoch."""
    last = int(frame.groupby("run")["epoch"].max().min())
    return frame[frame["epoch"] == last], last


def _all(names) -> str:
    return listed(_name(n) for n in names) or "no run"


def _lowest(series) -> list:
    """The entries at the series' minimum (several when they tie exactly, as accuracies on a few examples do)."""
    return [k for k, v in series.items() if v <= series.min() + 1e-12]


def _spread_words(lo: float, hi: float) -> str:
    """'0.6931' when the values print the same, else 'within 0.0012 of each other (0.6925 to 0.6937)' (the width
    at least 0.0001: 0.69314 and 0.69315 print apart, so they are not 'within 0.0000')."""
    if f"{lo:.4f}" == f"{hi:.4f}":
        return f"{lo:.4f}"
    return f"within {max(hi - lo, 1e-4):.4f} of each other ({lo:.4f} to {hi:.4f})"


def _ends(series, top: bool) -> list:
    """The entries within TIE_TOL of the series' maximum (top) or minimum, the extreme one first."""
    end = series.max() if top else series.min()
    near = [k for k, v in series.items() if abs(v - end) < TIE_TOL]
    return sorted(near, key=lambda k: -series[k] if top else series[k])


def _values(series, names: list) -> str:
    """'0.5000', or for entries within TIE_TOL of each other '0.5000 to 0.5010, within 0.002'."""
    lo, hi = min(series[n] for n in names), max(series[n] for n in names)
    return f"{lo:.4f}" if len(names) == 1 else f"{lo:.4f} to {hi:.4f}, within {TIE_TOL:g}"


def _not_finished(frame, runs: dict) -> str | None:
    """The sentence on an ended experiment some of whose runs did not finish (runs: strategy -> status)."""
    left = {s: st for s, st in runs.items() if st != "finished"}
    if not left:
        return None
    last = frame.groupby("strategy")["epoch"].max() if frame is not None and not frame.empty else {}
    what = []
    for s, st in left.items():
        if st == "stopped":
            e = int(last[s]) if s in last else 0
            what.append(f"{_name(s)} stopped " + (f"after epoch {e}" if e else "before its first epoch ended"))
        elif st == "failed":
            what.append(f"{_name(s)} failed")
        else:
            what.append(f"{_name(s)} did not start")
    return (f"This experiment did not run to its end ({'; '.join(what)}): what follows compares only the runs with "
            "epoch records, at the last epoch they all reached.")


def prior_summary(frame, total_runs: int | None = None, runs: dict | None = None) -> list[str]:
    """Sentences on a prior experiment, from its numbers: which strategy fitted fastest (lowest training loss),
    which generalised worst (highest dev loss, lowest dev metric), whether any run has begun to overfit, and
    which parts of the paper's finding (PAPER_PRIOR_FINDING, quoted separately) the order agrees with.
    `total_runs` (a live experiment): the runs it will have; while fewer have epoch records, the sentences say
    they compare only those so far. `runs` (an experiment that has ended): strategy -> status of every run it
    planned; those that did not finish (stopped, failed, never started) are named first."""
    if frame is None or frame.empty or "train_loss" not in frame:
        return [s for s in [_not_finished(frame, runs or {})] if s]
    at, epoch = _last_common(frame)
    common = " (the last epoch every run reached)" if int(frame["epoch"].max()) > epoch else ""
    by = at.groupby("strategy", sort=False)
    train = by["train_loss"].mean().dropna()
    dev = by["dev_loss"].mean().dropna()
    out = [s for s in [_not_finished(frame, runs or {})] if s]
    seen = frame["run"].nunique()
    if total_runs and seen < total_runs:
        out.append(f"So far {seen} of the {total_runs} runs {'has' if seen == 1 else 'have'} epoch records "
                   f"({_all(train.index)}): what follows "
                   "compares only those, and changes as the others train.")
    if len(train) < 2:
        return out + [f"Only {_name(train.index[0]) if len(train) else 'no run'} has reached epoch {epoch} so far."]
    fast, slow = _ends(train, top=False), _ends(train, top=True)
    relies = []
    if train.max() - train.min() < TIE_TOL:
        out.append(f"At epoch {epoch}{common} the training losses are all {_spread_words(train.min(), train.max())}: "
                   "no strategy has fitted faster than another.")
        fast = slow = None
    else:
        masks = (", measured with the masks" if len(fast) > 1 else ", measured with its masks") \
            if any(str(f).startswith("drop-") for f in fast) else ""
        out.append(f"At epoch {epoch}{common}, {_all(fast)} {'have' if len(fast) > 1 else 'has'} fitted the training "
                   f"data fastest (lowest training loss, {_values(train, fast)}{masks}) and {_all(slow)} slowest "
                   f"({_values(train, slow)}).")
        relies = _reliance(frame, at, dev)
        out += [sentence for _, _, sentence in relies]
    metric = _metric(at)
    m = by[metric].mean().dropna() if metric else dev.iloc[:0]
    worst = dev.idxmax() if len(dev) else None
    if worst is not None and dev.max() - dev.min() < TIE_TOL and (not len(m) or m.max() - m.min() < TIE_TOL):
        out.append(f"The dev losses are all {_spread_words(dev.min(), dev.max())}"
                   + (f" and the {_label(metric)} {_spread_words(m.min(), m.max())}" if len(m) else "")
                   + ": no strategy generalises worse than another.")
        worst = None
    elif worst is not None:
        s = f"{_name(worst)} generalises worst by dev loss ({dev[worst]:.4f}; lowest: " \
            f"{_name(dev.idxmin())}, {dev.min():.4f})"
        if len(m) and m.max() - m.min() < TIE_TOL:
            s += f"; the {_label(metric)} is {_spread_words(m.min(), m.max())} for all"
        elif len(m):
            lows = _lowest(m)
            if lows == [worst]:
                s += f" and by {_label(metric)} too ({m[worst]:.4f})"
            elif len(lows) == 1:
                s += f", while the lowest {_label(metric)} is {_name(lows[0])}'s ({m[lows[0]]:.4f})"
            else:
                s += f"; the lowest {_label(metric)}, {m.min():.4f}, is shared by {_all(lows)}"
        out.append(s + ".")
    out.append(overfit_sentence(frame[frame["epoch"] <= epoch])[1])  # live: up to the epoch compared above
    if {"drop-low", "drop-high"} <= set(train.index):
        if fast is None or worst is None:
            out.append("The runs are too close to each other to compare with the paper's finding.")
        else:
            def who(names):
                return f"{_all(names)} {'do' if len(names) > 1 else 'does'}"

            parts = [("drop-low fits fastest", fast == ["drop-low"], who(fast)),
                     ("drop-high fits slowest", slow == ["drop-high"], who(slow)),
                     ("drop-low generalises worst by dev loss", worst == "drop-low", who([worst]))]
            yes = [p for p, ok, _ in parts if ok]
            no = [f"{p} ({other})" for p, ok, other in parts if not ok]
            if not no:
                out.append("This run agrees with the paper's finding: drop-low fits fastest and generalises worst, "
                           "drop-high fits slowest.")
            else:
                out.append(f"This run agrees with {len(yes)} of the paper's 3 observations"
                           + (f" ({'; '.join(yes)})" if yes else "") + f"; not with: {'; '.join(no)}. With so few "
                           "examples, epochs or one seed, the order can differ.")
            if worst == "drop-low" and ("drop-low", "masks") in [(r, k) for r, k, _ in relies]:
                out[-1] += (" Its dev loss, though, is mostly drop-low's reliance on its masks (above), not "
                            "memorised training examples: it generalises worst here for that reason, not by "
                            "overfitting in the usual sense.")
    return out


def _reliance(frame, at, dev) -> list[tuple[str, str, str]]:
    """(strategy, "masks" | "both" | "", sentence) for the drop-* runs that fit their own training examples only
    with the masks on: their clean training loss (no masks) is above the masked one by RELIANCE or more beyond
    none's gap (clean_gaps, as the clean-loss note counts it), and by RELIANCE_SHARE of the masked loss or more.
    Their dev loss (measured without masks) shows that as well as any overfitting: "masks" when the clean training
    loss is about the dev loss, "both" when the dev loss is well above it. `at`: the rows of the last common
    epoch, `dev`: their dev loss by strategy."""
    gaps = clean_gaps(frame)  # masked minus clean
    ref = gaps.get("none") or 0.0
    rows = at.groupby("strategy")[["train_loss", "clean_train_loss"]].mean() if gaps else None
    base = rows.loc["none"] if rows is not None and "none" in rows.index else None
    out = []
    for s, g in gaps.items():
        if not str(s).startswith("drop-") or g is None or ref - g < RELIANCE:
            continue
        masked, clean = float(rows.loc[s, "train_loss"]), float(rows.loc[s, "clean_train_loss"])
        if clean - masked < max(RELIANCE, RELIANCE_SHARE * masked):
            continue
        ours = (f"Without its masks, {_name(s)} fits its own training examples much worse: clean training loss "
                f"{clean:.4f} against {masked:.4f} with them"
                + (f" (none, which drops nothing: clean {float(base['clean_train_loss']):.4f}, in training "
                   f"{float(base['train_loss']):.4f})"
                   if base is not None else "") + ". ")
        d = float(dev.get(s, float("nan")))
        kind = ""
        if d == d and 0.8 * d <= clean <= 1.25 * d:
            kind = "masks"
            ours += (f"That is about its dev loss ({d:.4f}): the model has learned to rely on its masks, and its high "
                     "dev loss is mostly their absence at evaluation, not memorised training examples.")
        elif d == d and clean < 0.8 * d:
            kind = "both"
            ours += (f"Its dev loss ({d:.4f}) is well above that: part of it is reliance on the masks, part "
                     "overfitting in the usual sense.")
        out.append((s, kind, ours.strip()))
    return out


def clean_gaps(frame) -> dict:
    """Per strategy at the last common epoch: masked training loss minus clean training loss (None without a
    clean loss). The gap of `none`, which drops nothing, is train mode (dropout, weights moving during the
    epoch) against an end-of-epoch eval pass: the reference for the others."""
    if frame is None or frame.empty or "clean_train_loss" not in frame:
        return {}
    at, _ = _last_common(frame)
    gap = (at["train_loss"].astype(float) - at["clean_train_loss"].astype(float)).groupby(at["strategy"]).mean()
    return {s: (None if math.isnan(v) else float(v)) for s, v in gap.items()}


def clean_note(frame) -> str:
    """What the dotted clean-loss curves show, with the none run's gap as the reference (computed)."""
    head = ("**Masked vs clean training loss.** The solid training curves are the mean loss the optimizer saw "
            "during each epoch: in train mode (dropout on), while the weights were still changing, and with the "
            "masks. The dotted ones are the *clean* training loss: the model at the end of the epoch, in eval "
            "mode, on the same training examples, without masks. So the two part even without any mask.")
    gaps = clean_gaps(frame)
    ref = gaps.get("none")
    if ref is None:
        return head
    others = [f"{_name(s)} {g:+.4f} ({g - ref:+.4f} beyond none)" for s, g in gaps.items()
              if s != "none" and g is not None]
    return head + (f" The **none** run, which drops nothing, shows that part alone: masked minus clean "
                   f"{ref:+.4f}. " + ("The others: " + ", ".join(others) + "; only what lies beyond none's gap "
                                      "can come from the masks." if others else ""))


def paired_differences(frame, column: str) -> dict:
    """Per seed: the AD-DROP run's value of `column` at its last epoch minus the vanilla run's (seeds with both)."""
    last = frame.sort_values("epoch").groupby("run").tail(1)
    out = {}
    for seed, g in last.groupby("seed"):
        v = g.loc[g["strategy"] == "vanilla", column].dropna()
        a = g.loc[g["strategy"] != "vanilla", column].dropna()
        if len(v) and len(a):
            out[int(seed)] = float(a.iloc[0]) - float(v.iloc[0])
    return out


def _spread(diffs: list[float]) -> tuple[float, float | None]:
    m = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - m) ** 2 for d in diffs) / (len(diffs) - 1)) if len(diffs) > 1 else None
    return m, sd


def _why_unclear(row: dict) -> str:
    """The reasons that hold, and only those, why a paired difference is no clear one."""
    if row["better"] == row["worse"] == 0:
        return "both runs of every seed have the same value"
    mean = [w for w, holds in ((f"within its spread (sd {row['sd']:.4f})", abs(row["mean"]) <= row["sd"]),
                               (f"under {TIE_TOL:g}", abs(row["mean"]) < TIE_TOL)) if holds]
    why = ["its sign is not the same in every seed"] if not row["consistent"] else []
    if mean:
        why.append(f"the mean difference ({row['mean']:+.4f}) is " + " and ".join(mean))
    return " and ".join(why)


def compare_verdict(frame) -> dict:
    """The comparison's verdict: per dev loss and primary metric, the paired AD-DROP minus vanilla difference at
    the last epoch (mean, sd over seeds, how many seeds favour AD-DROP), and sentences. Returns {"rows":
    [{column, seeds, mean, sd, better, consistent}], "sentences": [...], "overfit": bool | None}; when overfit is
    not None the last sentence is the one on overfitting."""
    rows, out = [], []
    if frame is None or frame.empty or "strategy" not in frame or "vanilla" not in set(frame["strategy"]):
        return {"rows": rows, "sentences": out, "overfit": None}
    metric = _metric(frame)
    for col in ["dev_loss"] + ([metric] if metric else []):
        diffs = paired_differences(frame, col)
        if not diffs:
            continue
        vals = list(diffs.values())
        mean, sd = _spread(vals)
        lower_better = col.endswith("loss")
        better = sum(1 for d in vals if (d < 0 if lower_better else d > 0))
        worse = sum(1 for d in vals if (d > 0 if lower_better else d < 0))
        rows.append({"column": col, "seeds": len(vals), "mean": mean, "sd": sd, "better": better, "worse": worse,
                     "consistent": len(vals) > 1 and (better == len(vals) or worse == len(vals))})
    if not rows:
        return {"rows": rows, "sentences": ["No seed has both its runs finished an epoch yet."], "overfit": None}
    n = rows[0]["seeds"]
    for r in rows:
        what = f"AD-DROP minus vanilla, {_label(r['column'])} at the last epoch: {r['mean']:+.4f}"
        if r["sd"] is None:
            out.append(what + " (one seed, no spread).")
        else:
            if r["better"] == r["worse"] == 0:
                sign = "no difference in any seed"
            elif r["consistent"]:
                sign = "the same sign in every seed"
            else:
                tied = r["seeds"] - r["better"] - r["worse"]
                sign = (f"not the same in every seed: {r['better']} of {r['seeds']} favour AD-DROP, {r['worse']} "
                        "vanilla" + (f", {counted(tied, 'tie')}" if tied else ""))
            out.append(what + f" ± {r['sd']:.4f} (mean ± sd over {r['seeds']} seeds; {sign}).")
    if n == 1:
        out.append("One seed tells nothing: a single pair of runs has no spread to measure the difference against "
                   "(a new seed changes the subset, the order and the head). Run three or more seeds before "
                   "reading a verdict.")
    else:
        main = rows[-1]
        clear = (main["consistent"] and main["sd"] is not None and abs(main["mean"]) > main["sd"]
                 and abs(main["mean"]) >= TIE_TOL)
        good = main["better"] == main["seeds"]
        out.append(f"Verdict on {_label(main['column'])}: " + (
            (f"AD-DROP is {'better' if good else 'worse'} {'on both seeds' if n == 2 else f'on all {n} seeds'}, by "
             "more than the spread." if clear else f"no clear difference over {n} seeds: {_why_unclear(main)}.")))
    overfit, sentence = overfit_sentence(frame)
    if overfit is False:
        sentence = ("No run has started to overfit (every dev loss, vanilla's and AD-DROP's, still falls): AD-DROP "
                    "regularises against overfitting, so there is little for it to fix yet and a worse number here "
                    "does not mean it hurts. Train more epochs or on fewer examples.")
    if overfit is not None:
        out.append(sentence)
    return {"rows": rows, "sentences": out, "overfit": overfit}
