"""The best epoch beside the last, per strategy of a group of runs (the comparison, a replication): what early
stopping with the best epoch kept reports, next to what the last epoch gives."""
from __future__ import annotations

from ..engine.selection import best_epoch


def metric_key(frame, metric: str | None = None) -> str | None:
    """`dev_<metric>`, or the first dev metric of the frame other than the loss (None when there is none)."""
    if metric:
        return metric if metric.startswith("dev_") else f"dev_{metric}"
    cols = [c for c in frame.columns if c.startswith("dev_") and c != "dev_loss"]
    return cols[0] if cols else None


def best_vs_last(frame, metric: str | None = None):
    """Per strategy: the mean over runs of the dev metric at the best epoch, at the last epoch, and the mean best
    epoch. A run's best epoch is the one its own early stopping and --keep-best watch (the frame's `best_by`: the
    dev loss by default, the same as its status.json), else the best by the metric itself (lower for a loss).
    `frame`: engine.runs.metrics_frame. Empty frame -> empty table."""
    import pandas as pd

    key = metric_key(frame, metric) if frame is not None and not frame.empty else None
    if key is None or key not in frame.columns:
        return pd.DataFrame()
    rows = []
    for strategy, g in frame.groupby("strategy", sort=False):
        best, last, where, by = [], [], [], set()
        for _, run in g.sort_values("epoch").groupby("run", sort=False):
            recs = run.to_dict("records")
            sel = recs[0].get("best_by")
            sel = sel if isinstance(sel, str) and sel in run.columns else key
            b = best_epoch(recs, sel, not sel.endswith("loss"))
            if b is None or not isinstance(b.get(key), (int, float)) or b[key] != b[key]:
                continue
            by.add(sel[4:])
            best.append(float(b[key]))
            where.append(int(b["epoch"]))
            last.append(float(recs[-1][key]))
        if best:
            rows.append({"strategy": strategy, "runs": len(best), "best epoch by": ", ".join(sorted(by)),
                         f"best {key[4:]}": sum(best) / len(best), f"last {key[4:]}": sum(last) / len(last),
                         "best epoch": sum(where) / len(where)})
    return pd.DataFrame(rows)
