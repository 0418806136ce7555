"""Writing one run folder (see addrop/engine/runs/__init__.py for the layout)."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from ...errors import UserError, one_line
from .files import append_bytes, check_folder, atomic_replace, atomic_write_json, to_json
from .names import CONFIG_FILE, FINAL_STATUSES, METRICS_FILE, STATUS_FILE, WEIGHTS_FILE, now_iso, safe_child, safe_run_id
from .reader import read_metrics

class RunWriter:
    """Writes one run folder. Use as a context manager::

        with RunWriter(root, cfg.name, cfg.to_dict()) as w:
            for epoch ...: w.log_epoch({"epoch": e, "train_loss": ..., "dev_loss": ...})
            w.finish("finished", summary={...})     # optional: leaving the block normally marks "finished"

    Leaving the block with an exception marks the run ``failed`` with the exception's one-line message (and
    re-raises); KeyboardInterrupt marks it ``stopped``.
    """

    def __init__(self, root: str | os.PathLike, run_id: str | None, config: Any, exist_ok: bool = False):
        self.root = Path(root)
        self.id = safe_run_id(run_id)
        check_folder(self.root, what="runs folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = safe_child(self.root, self.id)
        try:
            self.path.mkdir(exist_ok=exist_ok)
        except FileExistsError:
            raise UserError(f"a run named {self.id!r} already exists in {self.root}; choose another name") from None
        if hasattr(config, "to_dict") and callable(config.to_dict):
            config = config.to_dict()
        self.config = dict(config or {})
        self.started = now_iso()
        self.epochs = 0
        self.final: str | None = None
        self._status: dict = {}
        metrics = self.path / METRICS_FILE
        if exist_ok and metrics.exists():
            self.epochs = len(read_metrics(metrics))
            self._end_partial_line(metrics)
        atomic_write_json(self.path / CONFIG_FILE, self.config)
        self._write_status("running")

    # status.json ------------------------------------------------------------------------------------------
    def _write_status(self, status: str, **extra) -> None:
        st = {
            "status": status,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.started,
            "updated": now_iso(),
            "epochs": self.epochs,
        }
        for k in ("reason", "summary", "finished"):
            if k in self._status:
                st[k] = self._status[k]
        st.update(extra)
        atomic_write_json(self.path / STATUS_FILE, st)
        self._status = st

    def heartbeat(self, **extra) -> None:
        """Refresh ``updated`` in status.json (call during long epochs so other hosts see the run alive)."""
        if self.final is None:
            self._write_status("running", **extra)

    # metrics.jsonl ------------------------------------------------------------------------------------------
    @staticmethod
    def _end_partial_line(path: Path) -> None:
        """When resuming onto a file whose last line was cut, terminate it so the next record starts clean."""
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
        if last != b"\n":
            append_bytes(path, b"\n")

    def log_epoch(self, record: dict) -> None:
        """Append one epoch record as one JSON line (a single write, flushed and fsynced)."""
        if not isinstance(record, dict):
            raise TypeError(f"an epoch record is a dict, got {type(record).__name__}")
        line = to_json(record).replace("\n", " ") + "\n"  # ensure_ascii=False never emits raw newlines anyway
        append_bytes(self.path / METRICS_FILE, line.encode("utf-8"))
        self.epochs += 1
        if self.final is None:
            self._write_status("running")

    # end -------------------------------------------------------------------------------------------------
    def finish(self, status: str = "finished", reason: str | None = None, summary: dict | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"final status must be one of {FINAL_STATUSES}, got {status!r}")
        self.final = status
        extra: dict = {"finished": now_iso(), "reason": reason}
        if summary is not None:
            extra["summary"] = summary
        self._write_status(status, **extra)

    def save_weights(self, state_dict: dict, file: str = WEIGHTS_FILE) -> Path:
        """Write ``model.safetensors`` (or an epoch's ``file``; CPU, contiguous clones, so tied/shared tensors are
        saved separately)."""
        from safetensors.torch import save_file

        if not (file.endswith(".safetensors") and "/" not in file and not file.startswith(".")):
            raise ValueError(f"not a weights file name: {file!r}")
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
        dest = self.path / file
        with atomic_replace(dest) as tmp:
            save_file(tensors, tmp, metadata={"format": "pt"})
        return dest

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            if self.final is None:
                self.finish("finished")
        elif self.final is None:
            try:
                if isinstance(exc, KeyboardInterrupt):
                    self.finish("stopped", reason="interrupted")
                else:
                    self.finish("failed", reason=one_line(exc))
            except Exception:  # never mask the original exception with a disk error
                pass
        return False  # re-raise
