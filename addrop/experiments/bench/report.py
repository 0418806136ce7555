"""The benchmark's goals and its printed table (text or Markdown), from a record `measure.run_bench` returned."""
from __future__ import annotations

import math
import operator

from ...config import METHODS

STEP_KEYS = ("vanilla",) + tuple(f"{m}_{w}" for m in METHODS for w in ("all", "layer0")) + ("ga_reference_all",)

# What AD-DROP may cost on minilm, batch 16, on a CPU: (record key, comparison, value)
GOALS = (
    ("ratios.ga_all", "<=", 1.5),
    ("ratios.crosstuned_pair", "<=", 1.3),
    ("ratios.iga_all", "<=", 20.0),
    ("ratios.aa_all", "<=", 1.35),
    ("ratios.rd_all", "<=", 1.1),
    ("captum.iga_time_ratio", "<=", 0.67),
    ("captum.ga_max_rel_diff", "<=", 1e-5),
    ("captum.iga_max_rel_diff", "<=", 1e-5),
    ("latency_ms.explorer_ga", "<=", 100.0),
    ("latency_ms.explorer_iga", "<=", 1000.0),
    # end to end, one epoch against transformers.Trainer on the same examples (trainers.py)
    ("trainer_ratios.ours_vs_trainer", "<=", 0.7),
    ("trainer_ratios.ours_ga_vs_trainer", "<=", 1.0),
    ("trainer_ratios.addrop_trainer_vs_trainer", "<=", 1.3),
)
OPTIONAL = ("trainer_ratios",)  # groups that records of earlier versions do not have
COMPARISONS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


def _get(rec: dict, dotted: str):
    cur = rec
    for part in dotted.split("."):
        cur = cur[part]
    return cur


def _get_or_none(rec: dict, dotted: str):
    """A figure of the record, or None where a record from an earlier version lacks it."""
    try:
        return _get(rec, dotted)
    except (KeyError, TypeError):
        return None


def _cpu_value(rec: dict, dotted: str):
    """The process-CPU-time counterpart of a headline figure (differences have no clock: the same value)."""
    group, key = dotted.split(".", 1)
    if key.endswith("max_rel_diff"):
        return rec[group][key]
    return (rec["cpu"].get(group) or {}).get(key) if group in OPTIONAL else rec["cpu"][group][key]


def check_targets(rec: dict, goals=GOALS) -> dict:
    """{key: {value, value_cpu, target, met, met_cpu}} for each goal (set for minilm, batch 16, CPU). `met` judges
    the wall-clock figure, `met_cpu` the process-CPU-time one, each with the goal's own comparison."""
    out = {}
    for key, op, target in goals:
        compare = COMPARISONS[op]
        if key.split(".")[0] in OPTIONAL:  # absent from records of earlier versions: not met, not an error
            value, value_cpu = _get_or_none(rec, key), _cpu_value(rec, key)
        else:
            value, value_cpu = _get(rec, key), _cpu_value(rec, key)

        def ok(v):
            return bool(isinstance(v, (int, float)) and math.isfinite(v) and compare(v, target))

        out[key] = {"value": value, "value_cpu": value_cpu, "target": f"{op} {target:g}", "met": ok(value),
                    "met_cpu": ok(value_cpu)}
    return out


def _fmt(x: float | None, unit: str = "") -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"  # a figure that was not measured (null in a saved record)
    if unit == "ms":
        return f"{x:.0f}" if x >= 100 else f"{x:.1f}"
    if abs(x) < 1e-3 and x != 0:
        return f"{x:.1e}"
    return f"{x:.2f}"


def _mmm(s: dict, unit: str = "") -> str:
    if not isinstance(s, dict):
        s = {}
    return f"{_fmt(s.get('min'), unit)} / {_fmt(s.get('median'), unit)} / {_fmt(s.get('max'), unit)}"


HEAD = ("measure", "wall ms min / median / max", "ratio min / median / max", "headline ratio", "cpu-time ratio",
        "target", "met")
# headline ratio: the trimmed mean of the per-repeat ratios (measure.py) for steps and epochs, the median of the
# few repeats for the Trainer comparison; the target judges it


def step_label(key: str) -> str:
    """'ga_all' -> 'GA all layers' (a STEP_KEYS entry as the tables name it)."""
    names = {"vanilla": "vanilla step", "ga_reference_all": "GA all layers, reference (1 autograd/layer)"}
    return names.get(key) or f"{key.split('_')[0].upper()} " + ("all layers" if key.endswith("all") else "layer 0")


def table_rows(rec: dict) -> list[tuple[str, ...]]:
    """Rows of the printed table (HEAD): wall-clock figures, the CPU-time median beside them, the target and
    whether the wall-clock median meets it."""
    tg = {k.split(".", 1)[1]: v for k, v in rec["targets"].items()}
    cpu = rec["cpu"]
    rows = []

    def verdict(key: str) -> tuple[str, str]:
        t = tg.get(key)
        return (t["target"], "yes" if t["met"] else "NO") if t else ("", "")

    for k in STEP_KEYS:
        label = step_label(k) + ("" if k == "vanilla" else " step")
        ms = _mmm(rec["step_ms_stats"][k], "ms")
        if k == "vanilla":
            rows.append((label, ms, "1", "1", "1", "", ""))
        else:
            rows.append((label, ms, _mmm(rec["ratio_stats"][k]), _fmt(rec["ratios"][k]), _fmt(cpu["ratios"][k]),
                         *verdict(k)))
    e = rec["epoch_ms"]
    rows.append(("cross-tuned epoch pair (plain + GA) / 2 vanilla epochs",
                 f"{_fmt(e['crosstuned_pair']['median'], 'ms')} vs {_fmt(e['vanilla_pair']['median'], 'ms')}",
                 _mmm(rec["ratio_stats"]["crosstuned_pair"]), _fmt(rec["ratios"]["crosstuned_pair"]),
                 _fmt(cpu["ratios"]["crosstuned_pair"]), *verdict("crosstuned_pair")))
    c = rec["captum"]
    for m in ("ga", "iga"):
        rows.append((f"{m.upper()} all layers, native / Captum time",
                     f"{_fmt(c[f'{m}_native_ms'], 'ms')} vs {_fmt(c[f'{m}_captum_ms'], 'ms')}",
                     _mmm(rec["ratio_stats"][f"captum_{m}_time"]), _fmt(c[f"{m}_time_ratio"]),
                     _fmt(cpu["captum"][f"{m}_time_ratio"]), *verdict(f"{m}_time_ratio")))
        rows.append((f"{m.upper()} all layers, native vs Captum largest relative difference", "", "",
                     _fmt(c[f"{m}_max_rel_diff"]), "", *verdict(f"{m}_max_rel_diff")))
    for k in ("explorer_ga", "explorer_iga"):
        rows.append((f"explorer, one sentence, {k.split('_')[1].upper()} all layers (ms)",
                     _mmm(rec["latency_ms_stats"][k], "ms"), "", f"{_fmt(rec['latency_ms'][k], 'ms')} ms",
                     f"{_fmt(cpu['latency_ms'][k], 'ms')} ms cpu", *verdict(k)))
    tr = rec.get("trainers")
    if tr:
        ep = tr["epoch_ms_stats"]
        for key, label, (a, b) in (
                ("ours_vs_trainer", "our vanilla epoch / Trainer epoch", ("ours_vanilla", "hf_vanilla")),
                ("ours_ga_vs_trainer", "our AD-DROP GA epoch (all layers) / Trainer epoch", ("ours_ga", "hf_vanilla")),
                ("addrop_trainer_vs_trainer", "ADDropTrainer GA epoch / Trainer epoch", ("hf_addrop", "hf_vanilla"))):
            rows.append((f"{label} ({tr['examples']} examples, {tr['layout']})",
                         f"{_fmt(ep[a]['median'], 'ms')} vs {_fmt(ep[b]['median'], 'ms')}",
                         _mmm(tr["ratios_stats"][key]), _fmt(tr["ratios"][key]), _fmt(tr["cpu_ratios"][key]),
                         *verdict(key)))
    return rows


def format_flops(rec: dict, markdown: bool = False) -> str:
    """The `flops` record as a table: per step its GFLOP, x vanilla, floor ms, median ms, floor / median, the
    FLOP-limited step / vanilla ratio (an estimate, flops.py) and the measured ratio."""
    f = rec["flops"]
    r, h, i = f["rate_shape"]
    nan = float("nan")
    head = ["step", "GFLOP", "x vanilla", "floor ms", "median ms", "floor / median", "FLOP-limited ratio",
            "ratio"]
    rows = [[step_label(k), f"{f['gflop'][k]:.2f}", f"{f['x_vanilla'].get(k, nan):.2f}", f"{f['floor_ms'][k]:.0f}",
             f"{rec['step_ms'][k]:.0f}", f"{f['floor_share'].get(k, nan):.2f}", f"{f['ratio_floor'].get(k, nan):.2f}",
             f"{rec['ratios'].get(k, 1.0):.2f}"] for k in STEP_KEYS if k in f["gflop"]]
    title = (f"matrix products a step (torch's FLOP formulas, mean over the step batches); floor = FLOPs at "
             f"{f['matmul_gflop_per_s']:.0f} GFLOP/s, the best rate measured on [{r}, 4 x {r} and 16 x {r} rows x "
             f"{h}] x [{h} x {i}] products ({f.get('precision', 'fp32')}); FLOP-limited ratio = 1 + (floor - vanilla "
             "floor) / vanilla median, an estimate: the step / vanilla ratio if what the step adds took only its "
             "products' time at that rate; ratio = the headline ratio above (a trimmed mean of the per-repeat "
             "ratios):")
    return "\n".join([title] + ([""] if markdown else []) + number_table(head, rows, markdown))


def number_table(head: list[str], rows: list[list[str]], markdown: bool = False) -> list[str]:
    """The lines of a table of numbers: Markdown, or plain text in aligned columns; either way the first column
    (the names) left-aligned and the others right-aligned."""
    if markdown:
        return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
                + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(x[j]) for x in [head] + rows) for j in range(len(head))]
    return ["  ".join(c.ljust(widths[0]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(row))
            for row in [head] + rows]


# ------------------------------------------------------------------------------------------------ length sweep
SWEEP_LABELS = {"vanilla": "vanilla step", "ga_all": "AD-DROP GA step (all layers)",
                "iga_all": "AD-DROP IGA step (all layers)", "explorer_ga": "explorer GA (1 sentence)",
                "explorer_iga": "explorer IGA (1 sentence)"}


def _cell(x, digits: int = 0) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}" if abs(x) < 10 ** 6 else f"{x:.3g}"


def format_lengths(rec: dict, markdown: bool = False, memory: bool = False) -> str:
    """The length sweep's record (lengths.length_sweep) as a table: one row per method, its median ms at each T and
    its log-log exponent (n/a: not measured, e.g. over the cap); `memory` adds the peak-MiB table; then the
    explorer's one-second length."""
    lengths = rec.get("lengths", [])
    head = ["method"] + [f"T={t}" for t in lengths] + ["exponent"]
    tables = [("ms (median wall)", rec.get("ms", {}), True)]
    if memory:
        tables.append(("peak MiB", rec.get("peak_mb", {}), False))
    lines: list[str] = []
    for title, values, with_exp in tables:
        rows = [[SWEEP_LABELS.get(m, m)] + [_cell(v, 1 if isinstance(v, float) and v < 10 else 0) for v in vals]
                + ([_cell(rec.get("exponent", {}).get(m), 2)] if with_exp else []) for m, vals in values.items()]
        lines += [f"{title}, batch {rec.get('batch_size')}:"]
        lines += number_table(head if with_exp else head[:-1], rows, markdown) + [""]
    best, at = rec.get("explorer_ga_1s_max_len"), rec.get("explorer_ga_1s_interp")
    lines.append("explorer GA within 1 s: up to T=" + (str(best) if best is not None else "n/a (none measured)")
                 + " measured; 1 s reached at " + (f"T~{at:.0f}" if isinstance(at, (int, float)) else "n/a")
                 + f" ({rec.get('explorer_ga_1s_how')})")
    if rec.get("too_long"):
        lines.append(f"not measured (over the model's {rec.get('max_length')} tokens): T={rec['too_long']}")
    for m, why in rec.get("skipped", {}).items():
        lines.append(f"{SWEEP_LABELS.get(m, m)}: {why}")
    return "\n".join(lines)


def header(rec: dict) -> str:
    m = rec["machine"]
    return (f"AD-DROP cost: {rec['model']} on {rec['device']} ({m['cpu']}, {m['cpus']} cpus, {m['threads']} torch "
            f"threads, torch {m['torch']}), batch {rec['batch_size']}, "
            f"{rec.get('settings', {}).get('precision', 'fp32')}, {'quick' if rec['quick'] else 'full'} run, "
            f"malloc env {'set' if rec['malloc_env']['set'] else 'NOT set'}, load average "
            f"{rec['loadavg']['start']} -> {rec['loadavg']['end']}")


def markdown_table(rec: dict) -> str:
    """The same table in Markdown (for docs/performance.md and issue notes), the header line above it."""
    rows = [HEAD] + table_rows(rec)
    lines = [header(rec), "", "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    if rec.get("flops"):
        lines += ["", format_flops(rec, markdown=True)]
    if rec.get("lengths"):
        lines += ["", format_lengths(rec["lengths"], markdown=True, memory=True)]
    return "\n".join(lines)


def format_table(rec: dict) -> str:
    rows = [HEAD] + table_rows(rec)
    w = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    lines = [header(rec)]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * x for x in w))
    mem = ", ".join(f"{k} {v:.0f}" if _fmt(v) != "n/a" else f"{k} n/a"
                    for k, v in (rec.get("peak_mem_mb") or {}).items() if v is not None)
    lines.append(f"peak memory, MiB ({rec.get('peak_mem_note')}): {mem}")
    if rec.get("flops"):
        lines += ["", format_flops(rec)]
    if rec.get("lengths"):
        lines += ["", format_lengths(rec["lengths"])]
    if not (rec["model"] == "minilm" and rec["batch_size"] == 16 and rec["device"] == "cpu"):
        lines.append("note: the targets are set for minilm, batch 16, on a CPU")
    return "\n".join(lines)
