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
    """Per strategy: the mean over runs of the dev metric at its best epoch (the epoch with the highest metric, lower
    for a loss: what the paper reports, and sweeps and the replication too), at the last epoch, and the mean of
    that epoch. It is not status.json's best epoch, which follows what early stopping watches (the dev loss unless
    stop_on is metric); the column names say which. `frame`: engine.runs.metrics_frame. Empty frame -> empty
    table."""
    import pandas as pd

    key = metric_key(frame, metric) if frame is not None and not frame.empty else None
    if key is None or key not in frame.columns:
        return pd.DataFrame()
    higher = not key.endswith("loss")
    rows = []
    for strategy, g in frame.groupby("strategy", sort=False):
        best, last, where = [], [], []
        for _, run in g.sort_values("epoch").groupby("run", sort=False):
            recs = run.to_dict("records")
            b = best_epoch(recs, key, higher)
            if b is None:
                continue
            best.append(float(b[key]))
            where.append(int(b["epoch"]))
            last.append(float(recs[-1][key]))
        if best:
            rows.append({"strategy": strategy, "runs": len(best), f"best {key[4:]}": sum(best) / len(best),
                         f"last {key[4:]}": sum(last) / len(last),
                         f"epoch of best {key[4:]}": sum(where) / len(where)})
    return pd.DataFrame(rows)
