"""Reading run folders tolerantly: a broken folder is reported as status `corrupt` or `unknown`, never raised."""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError
from .files import is_plain_file, parse_json, read_json, read_regular
from .names import (CONFIG_FILE, FINAL_STATUSES, METRICS_FILE, RUN_FILES, STATUS_FILE, WEIGHTS_FILE, parse_time)

MAX_PID = 2**31 - 1  # a pid_t; a status.json naming a larger one is not a process of this machine
STALE_AFTER_S = 3600.0  # a "running" run on another host with no update for this long is incomplete
_MAX_DEPTH = 4  # list_runs: group folders nest at most this deep (and symlinks are never followed)


@dataclass
class RunRecord:
    id: str
    path: Path
    config: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    status: str = "unknown"
    reason: str | None = None
    started: str | None = None
    updated: str | None = None
    summary: dict | None = None
    group: str | None = None  # the sub-folder of the listed root that holds this run (None at top level)
    pid: int | None = None
    host: str | None = None
    finished: str | None = None

    @property
    def strategy(self) -> str | None:
        s = self.config.get("strategy")
        return s if isinstance(s, str) else None

    @property
    def epochs_done(self) -> int:
        return len(self.metrics)

    @property
    def has_weights(self) -> bool:
        return is_plain_file(self.path / WEIGHTS_FILE)

    @property
    def done(self) -> bool:
        return self.status != "running"

    def start_ts(self) -> float:
        ts = parse_time(self.started)
        if ts is None:
            try:
                ts = self.path.stat().st_mtime
            except OSError:
                ts = 0.0
        return ts


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The epoch records of a metrics.jsonl. A trailing line without its newline (a write cut short) is
    ignored unless it is a complete JSON object; unparsable or non-object lines are skipped."""
    try:
        data = read_regular(path)
    except OSError:  # missing, a symbolic link, a FIFO, oversized: no records
        return []
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out = []
    for raw in lines:
        rec = _parse_line(raw)
        if rec is not None:
            out.append(rec)
    if tail.strip():
        rec = _parse_line(tail)
        if rec is not None:
            out.append(rec)
    return out


def _parse_line(raw: bytes) -> dict | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        rec = parse_json(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return clean_epoch(rec) if isinstance(rec, dict) else None


MAX_EPOCH = 1_000_000


def _number(v) -> bool:
    return isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63)


def clean_epoch(rec: dict) -> dict | None:
    """An epoch record as the readers may use it: None when its epoch is not an integer in 1..MAX_EPOCH; values
    of the numeric keys (losses, dev metrics, seconds, shares) that are not numbers are dropped."""
    epoch = rec.get("epoch", 1)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        return None
    out = {}
    for k, v in rec.items():
        if not isinstance(k, str):
            continue
        numeric = k.endswith(("loss", "seconds", "share")) or k.startswith("dev_")
        if numeric and not _number(v):
            continue
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63:
            continue
        out[k] = v
    return out


def pid_alive(pid) -> bool:
    """Whether a process with this id runs on this machine (a zombie counts as gone)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OSError, OverflowError, ValueError):
        return False
    try:  # Linux: an exited child that nobody reaped still answers kill(0)
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
        if state in (b"Z", b"X"):
            return False
    except (OSError, IndexError):
        pass
    return True


def _is_run_dir(path: Path) -> bool:
    return any((path / f).is_file() for f in RUN_FILES)


def load_run(path: str | os.PathLike) -> RunRecord:
    """Read one run folder. Never raises for a broken folder: problems show as status/reason."""
    path = Path(path)
    rec = RunRecord(id=path.name, path=path)
    problems: list[str] = []

    cfg, err = read_json(path / CONFIG_FILE)
    corrupt = False
    if err == "missing":
        problems.append("no config.json")
    elif err is not None:
        corrupt = True
        problems.append(err)
    elif not isinstance(cfg, dict):
        corrupt = True
        problems.append("config.json does not hold an object")
    else:
        rec.config = cfg

    rec.metrics = read_metrics(path / METRICS_FILE)

    st, serr = read_json(path / STATUS_FILE)
    if serr is None and not isinstance(st, dict):
        serr = "status.json does not hold an object"
    if serr is not None:
        st = {}
        if serr == "missing":
            problems.append("no status.json")
        else:
            corrupt = True
            problems.append(serr)

    rec.started = st.get("started") if isinstance(st.get("started"), str) else None
    rec.updated = st.get("updated") if isinstance(st.get("updated"), str) else None
    rec.finished = st.get("finished") if isinstance(st.get("finished"), str) else None
    rec.summary = st.get("summary") if isinstance(st.get("summary"), dict) else None
    pid = st.get("pid")
    rec.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= MAX_PID else None
    rec.host = st.get("host") if isinstance(st.get("host"), str) else None
    status = st.get("status")
    reason = st.get("reason") if isinstance(st.get("reason"), str) else None

    if corrupt:
        rec.status = "corrupt"
        rec.reason = "; ".join(problems)
        return rec
    if status not in ("running",) + FINAL_STATUSES:
        rec.status = "unknown"
        rec.reason = "; ".join(problems) or (f"unrecognised status {status!r}" if status is not None else None)
        return rec
    impossible_pid = isinstance(pid, int) and not isinstance(pid, bool) and rec.pid is None
    if status == "running" and impossible_pid:
        status, reason = "incomplete", reason or f"status.json names pid {str(pid)[:30]}, which no process can have"
    elif status == "running" and _process_gone(rec, path):
        status = "incomplete"
        reason = reason or _incomplete_reason(rec)
    rec.status = status
    rec.reason = "; ".join(([reason] if reason else []) + problems) or None
    return rec


def _process_gone(rec: RunRecord, path: Path) -> bool:
    if rec.host is None or rec.host == socket.gethostname():
        if rec.pid is not None:
            return not pid_alive(rec.pid)
        # no pid: fall back to staleness
    updated = parse_time(rec.updated)
    if updated is None:
        try:
            updated = (path / STATUS_FILE).stat().st_mtime
        except OSError:
            return True
    return time.time() - updated > STALE_AFTER_S


def _incomplete_reason(rec: RunRecord) -> str:
    where = f"process {rec.pid}" if rec.pid is not None else "its process"
    if rec.host and rec.host != socket.gethostname():
        where += f" on {rec.host}"
    return f"{where} ended while the run was running (crash or kill) after {rec.epochs_done} epoch(s)"


def list_runs(root: str | os.PathLike, recursive: bool = True) -> list[RunRecord]:
    """Every run under ``root`` (groups included when ``recursive``), oldest first. Missing root -> []."""
    root = Path(root)
    out: list[RunRecord] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            p = Path(entry.path)
            if _is_run_dir(p):
                rec = load_run(p)
                rel = folder.relative_to(root)
                rec.group = None if str(rel) == "." else rel.as_posix()
                out.append(rec)
            elif recursive and depth < _MAX_DEPTH:
                walk(p, depth + 1)

    if root.is_dir():
        walk(root, 0)
    out.sort(key=lambda r: (r.start_ts(), r.group or "", r.id))
    return out


def load_weights(path: str | os.PathLike, device: str = "cpu") -> dict:
    """Read ``model.safetensors`` (``path`` is the file or its run folder). Safetensors only, never pickle."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if path.suffix != ".safetensors":
        raise UserError(f"{path.name} is not a .safetensors file; only safetensors weights are loaded")
    if path.is_symlink() or (path.exists() and not is_plain_file(path)):
        raise UserError(f"{path} is not a plain file (a symbolic link or a special file); it is not read")
    if not path.is_file():
        raise UserError(f"no saved weights at {path} (train with save_weights on)")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"weights file {path} is unreadable: {' '.join(str(e).split())}") from None
