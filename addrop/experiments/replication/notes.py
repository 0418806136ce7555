"""The sentences a replication report owes a skeptical reader beside its tables, each computed from the report
(report.study_report), so that they stay true when the study is rerun or extended:

- `intervals_note`: every paired interval that excludes 0 (main settings and ablations, every scoring), with its
  direction, how many intervals were computed in all, and how many of them would exclude 0 by chance alone
  (the protocol, docs/replication.md, applies no correction for multiple comparisons: this is context);
- `epochs_note`: the epochs behind the mean best epoch (the epoch cap and the early stopping of the runs);
- `vanilla_notes`: the settings whose vanilla run scored above (or level with) every AD-DROP grid cell on the
  held-out slice that chose p and q;
- `cross_tuning_notes`: what the grid with and without cross-tuning (the paper's Figure 4) shows, on how many
  seeds, against the paired ablation without cross-tuning on dev.
"""
from __future__ import annotations

import math

from ...errors import listed

WHICH_LABELS = {"best": "best epoch", "last": "last epoch", "half": "half-dev (epoch chosen on the other half)"}
SHORT_LABELS = {"best": "the best epoch", "last": "the last epoch", "half": "half-dev"}


def signed(v: float) -> str:
    """A difference to 4 decimals with its sign; one that rounds to zero is +0.0000, never -0.0000."""
    return f"{0.0 if abs(v) < 5e-5 else v:+.4f}"


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _pct(level: float) -> int:
    return int(round(level * 100))


# ---------------------------------------------------------------------------------------- paired intervals

def direction(d: dict) -> str | None:
    """'higher' or 'lower' than vanilla where a paired row's interval excludes 0, else None."""
    if d.get("low") is None or d.get("high") is None:
        return None
    return "higher" if d["low"] > 0 else "lower" if d["high"] < 0 else None


def intervals_note(rep: dict) -> str | None:
    """Every paired interval that excludes 0, with its direction, out of how many were computed, and the chance
    rate at the report's level. None before any interval."""
    rows = [d for d in rep["paired"] if d.get("seeds") and d.get("low") is not None]
    if not rows:
        return None
    level, n = rep["level"], len(rows)
    pct = _pct(level)
    pairs = list(dict.fromkeys((d["setting"], d["arm"]) for d in rows))
    ways = list(dict.fromkeys(d["which"] for d in rows))
    how = (f"{len(pairs)} comparison{'s' if len(pairs) != 1 else ''} with vanilla, each scored at "
           f"{listed([SHORT_LABELS[w] for w in ways])}" if len(pairs) * len(ways) == n else
           f"{len(pairs)} comparisons with vanilla")
    out = [d for d in rows if direction(d)]
    excluding = "; ".join(f"{d['arm']} on {d['setting']} at {SHORT_LABELS[d['which']]}, {direction(d)} than vanilla "
                          f"({signed(d['mean'])}, {pct}% interval {signed(d['low'])} to {signed(d['high'])})"
                          for d in out)
    head = (f"None of the {n} paired intervals in this report ({how}) excludes 0" if not out else
            f"Of the {n} paired intervals in this report ({how}), {len(out)} exclude{'s' if len(out) == 1 else ''} "
            f"0: {excluding}")
    scorings = f"the {len(ways)} scorings read the same runs, and " if len(ways) > 1 else ""
    chance = (f"At {pct}%, about 1 interval in {1 / (1 - level):.0f} excludes 0 by chance alone where there is no "
              f"difference ({n * (1 - level):.1f} of {n} expected; these {n} are not independent: {scorings}a "
              "setting's arms share its vanilla runs)")
    tail = ("; the protocol (docs/replication.md) applies no correction for multiple comparisons, so an interval "
            "that excludes 0 reads as a difference at this scale, to be weighed against that rate." if out else ".")
    return f"{head}. {chance}{tail}"


# ---------------------------------------------------------------------------------------------- epochs

def _caps(values) -> str:
    vals = sorted({int(v) for v in values if _ok(v)})
    return "–" if not vals else str(vals[0]) if len(vals) == 1 else f"{vals[0]}–{vals[-1]}"


def epochs_cell(a: dict) -> str:
    """'14.0 of 15': the mean number of epochs an arm's runs trained, of their epoch cap."""
    return f"{a['epochs_run']:.1f} of {_caps(a.get('caps') or [])}" if _ok(a.get("epochs_run")) else "–"


def epochs_note(rep: dict) -> str | None:
    """What the mean best epoch is counted out of: the epoch caps per setting and the early stopping."""
    arms = [a for a in rep["arms"] if a.get("caps")]
    if not arms:
        return None
    by_cap: dict[str, list[str]] = {}
    for s in dict.fromkeys(a["setting"] for a in arms):
        by_cap.setdefault(_caps([c for a in arms if a["setting"] == s for c in a["caps"]]), []).append(s)
    caps = "; ".join(f"{listed(ss)} {c}" for c, ss in by_cap.items())
    pats = sorted({int(p) for a in arms for p in a.get("patience") or [] if _ok(p) and p > 0})
    stop = (f"; early stopping ends it sooner, once {listed([str(p) for p in pats])} epochs pass without a better "
            "dev metric" if pats else "")
    return (f"Mean best epoch: the epoch (counted from 1) with the best dev metric, averaged over seeds. Each run "
            f"trains at most its setting's epoch cap ({caps}){stop}. 'Epochs run' is the mean number of epochs the "
            "runs trained, of that cap.")


# ---------------------------------------------------------------------------------------- selection grids

def _cells(rep: dict, setting: str, cross_tuning: bool, strategy: str) -> dict[tuple, float]:
    """(p, q) -> the held-out metric at the best epoch, the mean over seeds, of one grid of a setting."""
    cells: dict[tuple, list[float]] = {}
    for r in rep["selection"]:
        if r["setting"] == setting and r["cross_tuning"] == cross_tuning and r["strategy"] == strategy \
                and _ok(r["held_out_best"]):
            cells.setdefault((r["p"], r["q"]), []).append(float(r["held_out_best"]))
    return {k: sum(v) / len(v) for k, v in cells.items()}


def _seeds(rep: dict, setting: str) -> int:
    return len({r["seed"] for r in rep["selection"] if r["setting"] == setting})


def _slice(rep: dict, settings: list[str]) -> str:
    """'200 training examples held out, seed 100, one run per cell' (or the mean of several seeds per cell)."""
    seeds = sorted({r["seed"] for r in rep["selection"] if r["setting"] in settings}, key=str)
    size = f"{rep['holdout']} training examples held out" if rep.get("holdout") else "training examples held out"
    if len(seeds) == 1:
        return f"{size}, seed {seeds[0]}, one run per cell"
    return f"{size}, seeds {listed([str(s) for s in seeds])}: the mean over seeds per cell"


def vanilla_beat(rep: dict, setting: str) -> tuple[str, float, float] | None:
    """('above' or 'level', vanilla, best cell) where the vanilla run of a setting's selection scored above (or
    level with) every AD-DROP grid cell on the held-out slice; None otherwise."""
    van = _cells(rep, setting, True, "vanilla")
    grid = _cells(rep, setting, True, "addrop")
    if not van or not grid:
        return None
    v, best = next(iter(van.values())), max(grid.values())
    return ("level", v, best) if _same(v, best) else ("above", v, best) if v > best else None


def vanilla_cell(rep: dict, setting: str) -> str:
    """The selection table's note where vanilla beat (or tied) every grid cell."""
    b = vanilla_beat(rep, setting)
    if b is None:
        return ""
    return f"vanilla {b[1]:.4f} above every cell" if b[0] == "above" else f"vanilla {b[1]:.4f} level with the best"


def vanilla_notes(rep: dict) -> str | None:
    """One sentence on the settings whose vanilla run scored above (or level with) every grid cell."""
    beat = {s: vanilla_beat(rep, s) for s in rep["chosen"]}
    above = [f"{s} ({b[1]:.4f} against at most {b[2]:.4f})" for s, b in beat.items() if b and b[0] == "above"]
    level = [f"{s} ({b[1]:.4f})" for s, b in beat.items() if b and b[0] == "level"]
    if not above and not level:
        return None
    parts = ([f"scored above every AD-DROP grid cell in {listed(above)}"] if above else []) + \
            ([f"{'was' if len(level) == 1 else 'were'} level with the best cell in {listed(level)}"] if level else [])
    return (f"On the held-out slice ({_slice(rep, list(beat))}), vanilla {' and '.join(parts)}. The selection "
            "chooses p and q for AD-DROP, not whether to use it, so the main comparison took the best cell there "
            "all the same, as preregistered.")


def cross_tuning_notes(rep: dict) -> list[str]:
    """Per setting with both grids, what they show: the best cells with and without cross-tuning, cell by cell,
    on how many seeds, and the paired ablation without cross-tuning on dev where the study has it."""
    out, holdout = [], rep.get("holdout")
    both = [s for s in dict.fromkeys(r["setting"] for r in rep["scatter"])
            if _cells(rep, s, True, "addrop") and _cells(rep, s, False, "addrop")]
    for s in both:
        on, off = _cells(rep, s, True, "addrop"), _cells(rep, s, False, "addrop")
        metric = next(r["metric"] for r in rep["scatter"] if r["setting"] == s)
        n = _seeds(rep, s)
        (kon, bon), (koff, boff) = max(on.items(), key=lambda kv: kv[1]), max(off.items(), key=lambda kv: kv[1])
        cell = "p={}, q={}".format
        lead = f"{s}, held-out slice ({_slice(rep, [s])}; {metric} at the best epoch): "
        if _same(bon, boff):
            say = f"the best cells with and without cross-tuning are level ({bon:.4f})"
        else:
            hi, lo = ("without", "with") if boff > bon else ("with", "without")
            rng, khi, klo = (on, koff, kon) if hi == "without" else (off, kon, koff)
            gap = abs(boff - bon)
            ex = f" ({round(gap * holdout)} of {holdout} examples)" if holdout and n == 1 and metric == "accuracy" \
                else ""
            say = (f"the best cell {hi} cross-tuning, {max(bon, boff):.4f} ({cell(*khi)}), is {gap:.4f}{ex} above "
                   f"the best {lo} it, {min(bon, boff):.4f} ({cell(*klo)}), and so above every cell {lo} it "
                   f"({min(rng.values()):.4f} to {max(rng.values()):.4f}): "
                   + ("the opposite of" if hi == "without" else "the direction of")
                   + " the paper's Figure 4, where cross-tuning comes out ahead")
        common = [k for k in on if k in off]
        up = sum(off[k] > on[k] and not _same(off[k], on[k]) for k in common)
        down = sum(on[k] > off[k] and not _same(off[k], on[k]) for k in common)
        same = len(common) - up - down
        by = (f". Cell by cell (same p and q), without cross-tuning is higher in {up}, level in {same} and lower in "
              f"{down} of {len(common)}" if common else "")
        caveat = (f". {'One run per cell' if n == 1 else f'{n} seeds per cell'} and no interval: this is a "
                  "description of the grid, not a test of cross-tuning")
        abl = [d for d in rep["paired"] if d["setting"] == s and d["which"] == "best" and d.get("seeds")
               and d["arm"] in set(rep.get("no_ct_arms") or [])]
        main = [d for d in rep["paired"] if d["setting"] == s and d["which"] == "best" and d.get("seeds")
                and d["arm"] == "AD-DROP (GA)"]
        test = ""
        if abl and main and abl[0]["low"] is not None and main[0]["low"] is not None:
            a, m = abl[0], main[0]
            pct = _pct(rep["level"])
            within = not direction(a) and not direction(m)
            test = (f". On dev, paired over {a['seeds']} seeds at the best epoch, AD-DROP without cross-tuning "
                    f"({a['arm']}) is {signed(a['mean'])} against vanilla ({pct}% interval {signed(a['low'])} to "
                    f"{signed(a['high'])}) and AD-DROP (GA) with it {signed(m['mean'])} ({signed(m['low'])} to "
                    f"{signed(m['high'])})" + (": both intervals include 0" if within else ""))
        out.append(lead + say + by + caveat + test + ".")
    return out
