"""The four checks of docs/prior-preset.md per group, and each candidate's score. From the repository root:

    PYTHONPATH=. python docs/prior-preset-check.py "1 2 3" "A B C D"    # selection
    PYTHONPATH=. python docs/prior-preset-check.py "0 4 5 6" C          # report
"""
import sys
from pathlib import Path
from addrop.engine.runs import list_runs, metrics_frame
from addrop.experiments.verdicts import TIE_TOL, overfitting

OUT = Path("docs/prior-preset-runs")
seeds = [int(s) for s in sys.argv[1].split()]
ids = sys.argv[2].split()
for cid in ids:
    total, rows = 0, []
    for s in seeds:
        g = OUT / f"pp-{cid}-s{s}"
        if not g.is_dir():
            rows.append(f"  s{s}: missing"); continue
        f = metrics_frame(list_runs(g))
        if f.empty or f.groupby("run")["epoch"].max().min() < 12:
            rows.append(f"  s{s}: incomplete"); continue
        last = f[f["epoch"] == 12].set_index("strategy")
        tr, dv = last["train_loss"].astype(float), last["dev_loss"].astype(float)
        low = f[f["strategy"] == "drop-low"].sort_values("epoch")["dev_loss"].astype(float).tolist()
        rise = low[-1] - min(low[:-1])
        checks = [tr.idxmin() == "drop-low" and tr.max() - tr.min() >= TIE_TOL,
                  tr.idxmax() == "drop-high" and tr.max() - tr.min() >= TIE_TOL,
                  dv.idxmax() == "drop-low" and dv.max() - dv.min() >= TIE_TOL,
                  rise >= 0.02]
        total += sum(checks)
        acc = last["dev_accuracy"] if "dev_accuracy" in last else last.get("accuracy")
        rows.append(f"  s{s}: checks {''.join('x' if c else '.' for c in checks)}  train "
                    + " ".join(f"{k}={v:.3f}" for k, v in tr.items()) + "  dev "
                    + " ".join(f"{k}={v:.3f}" for k, v in dv.items()) + f"  low-rise={rise:+.3f}"
                    + f"  lenient-overfit={overfitting(f).get('drop-low')}")
    print(f"{cid}: score {total}")
    print("\n".join(rows))
