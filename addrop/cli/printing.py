"""What the training commands print: one line per epoch, and a plan's progress on the console."""
from __future__ import annotations


def epoch_line(r: dict, prefix: str = "") -> str:
    """One epoch record as one line: losses, dev metrics, dropped share and seconds."""
    dev = " ".join(f"{k[4:]}={v:.4f}" for k, v in r.items()
                   if k.startswith("dev_") and k != "dev_loss" and isinstance(v, (int, float)))
    clean = f" clean_train_loss={r['clean_train_loss']:.4f}" if "clean_train_loss" in r else ""
    tag = " [masked]" if r.get("addrop_epoch") else ""  # an AD-DROP epoch, or a drop-* strategy's
    return (f"{prefix}epoch {r['epoch']}{tag}: train_loss={r['train_loss']:.4f}{clean} dev_loss={r['dev_loss']:.4f} "
            f"{dev} dropped={r['dropped_share']:.1%} ({r['seconds']:.1f}s)")


class ConsoleProgress:
    """The `Progress` of experiments.plans.run_plan on a terminal: an epoch line as each epoch ends (the run's
    name in front); Ctrl-C stops the plan (the current run is kept, marked stopped)."""

    def __init__(self, width: int = 14):
        self.width = width
        self.stop = False

    def update(self, **kw) -> None:
        pass

    def add_event(self, rec: dict) -> None:
        print(epoch_line(rec, f"{rec.get('run', ''):>{self.width}} "), flush=True)

    def should_stop(self) -> bool:
        return self.stop
