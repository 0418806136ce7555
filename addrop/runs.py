"""Run records on disk: written atomically, read tolerantly.

Layout of one run::

    <root>/<run_id>/config.json       the TrainConfig as a dict (written once, atomically)
                    metrics.jsonl     one JSON object per line, one line per epoch (append-only)
                    status.json       {"status", "pid", "host", "started", "updated", ...} (replaced atomically)
                    model.safetensors optional weights (safetensors only, never pickle)

A group of runs (the four runs of the prior experiment, a sweep) is a sub-folder of a root laid out the same
way; it may also hold other files such as ``curves.html``. ``list_runs(root)`` walks groups recursively.

Writers never leave a file that a reader cannot parse: JSON files are replaced with ``os.replace`` after an
fsync, and each metrics line is appended with one ``write`` of the whole line. Readers skip a trailing
partial line and never raise for a broken folder: they report it with status ``corrupt`` or ``unknown``.

Epoch records are flat dicts; the conventional keys are ``epoch``, ``train_loss``, ``dev_loss`` and
``dev_<metric>`` (``dev_accuracy``, ``dev_f1``, ...). A nested ``{"dev": {"accuracy": ...}}`` is also read as
``dev_accuracy`` by :func:`runs_table`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
WEIGHTS_FILE = "model.safetensors"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, STATUS_FILE)

FINAL_STATUSES = ("finished", "stopped", "failed")
# statuses a reader may report: the writer's ones plus the reader's verdicts
STATUSES = ("running",) + FINAL_STATUSES + ("incomplete", "corrupt", "unknown")

MAX_ID_LEN = 80
STALE_AFTER_S = 3600.0  # a "running" run on another host with no update for this long is incomplete
_MAX_DEPTH = 4  # list_runs: group folders nest at most this deep (and symlinks are never followed)

_ID_OK = re.compile(r"^[A-Za-z0-9._-]+$")


# ----------------------------------------------------------------------------------------------------- names

def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _parse_time(value) -> float | None:
    """An ISO time (or epoch seconds) -> epoch seconds; None when absent or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # naive -> this machine's local time
    return dt.timestamp()


def safe_run_id(name: str | None, prefix: str = "run") -> str:
    """A run id that is a safe file name: ASCII letters, digits, ``-``, ``_``, ``.``; no leading dot; <= 80 chars.

    ``None`` (or blank) generates ``<prefix>-YYYYmmdd-HHMMSS-<4 hex>``. Whitespace is turned into ``-``; any
    other character outside the set, a path separator, ``..`` or NUL is refused with a UserError rather than
    silently rewritten.
    """
    if name is None:
        pfx = safe_run_id(prefix)[: MAX_ID_LEN - 21] if prefix else "run"  # 21 = len("-YYYYmmdd-HHMMSS-abcd")
        return f"{pfx}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not isinstance(name, str):
        raise UserError(f"run name must be text, got {type(name).__name__}")
    shown = name if len(name) <= 60 else name[:57] + "..."
    if "\x00" in name:
        raise UserError(f"run name {shown!r} contains a NUL character")
    if "/" in name or "\\" in name:
        raise UserError(f"run name {shown!r} must be a plain name, not a path (no '/' or '\\')")
    if ".." in name:
        raise UserError(f"run name {shown!r} must not contain '..'")
    if re.match(r"^[A-Za-z]:", name):
        raise UserError(f"run name {shown!r} looks like a drive path")
    rid = re.sub(r"\s+", "-", name.strip())
    if not rid:
        raise UserError("run name is empty: give a name made of letters, digits, '-', '_' or '.', or leave it unset")
    if rid.startswith("."):
        raise UserError(f"run name {shown!r} must not start with a dot")
    if not _ID_OK.match(rid):
        bad = "".join(sorted({c for c in rid if not _ID_OK.match(c)}))
        raise UserError(f"run name {shown!r} may only use letters, digits, '-', '_' and '.'; remove {bad!r}")
    if len(rid) > MAX_ID_LEN:
        raise UserError(f"run name is {len(rid)} characters long; use at most {MAX_ID_LEN}")
    return rid


def safe_child(root: str | os.PathLike, name: str | os.PathLike) -> Path:
    """``root / name`` resolved, refusing anything that would land outside ``root`` (or on ``root`` itself).

    ``name`` may be a relative path such as ``group/run`` or an export file name; ``..``, absolute paths,
    NUL and symlinks pointing out of ``root`` are refused with a UserError.
    """
    text = os.fspath(name)
    if not isinstance(text, str) or not text.strip():
        raise UserError("file name is empty")
    if "\x00" in text:
        raise UserError(f"file name {text!r} contains a NUL character")
    if os.path.isabs(text) or text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        raise UserError(f"file name {text!r} must be relative to {os.fspath(root)}, not an absolute path")
    base = Path(root).resolve()
    target = (base / text).resolve()
    if target == base or base not in target.parents:
        raise UserError(f"file name {text!r} points outside {base}")
    return target


# ------------------------------------------------------------------------------------------ atomic writes

def _json_default(obj):
    """Make the usual non-JSON values (numpy/torch scalars and arrays, paths, sets, dataclasses) writable."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        try:
            return obj.tolist()
        except Exception:  # pragma: no cover - exotic objects
            pass
    if hasattr(obj, "item"):
        try:
            return obj.item()
        except Exception:  # pragma: no cover
            pass
    return str(obj)


def to_json(obj, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, default=_json_default, ensure_ascii=False)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on some systems (Windows); the replace itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, fsync it, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; records are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, to_json(obj, indent=2) + "\n")


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if not isinstance(exc, UserError):
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return (msg or type(exc).__name__)[:1000]


# --------------------------------------------------------------------------------------------------- writer

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
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = safe_child(self.root, self.id)
        try:
            self.path.mkdir(exist_ok=exist_ok)
        except FileExistsError:
            raise UserError(f"a run named {self.id!r} already exists in {self.root}; choose another name") from None
        if hasattr(config, "to_dict") and callable(config.to_dict):
            config = config.to_dict()
        self.config = dict(config or {})
        self.started = _now_iso()
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
            "updated": _now_iso(),
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
            _append_bytes(path, b"\n")

    def log_epoch(self, record: dict) -> None:
        """Append one epoch record as one JSON line (a single write, flushed and fsynced)."""
        if not isinstance(record, dict):
            raise TypeError(f"an epoch record is a dict, got {type(record).__name__}")
        line = to_json(record).replace("\n", " ") + "\n"  # ensure_ascii=False never emits raw newlines anyway
        _append_bytes(self.path / METRICS_FILE, line.encode("utf-8"))
        self.epochs += 1
        if self.final is None:
            self._write_status("running")

    # end -------------------------------------------------------------------------------------------------
    def finish(self, status: str = "finished", reason: str | None = None, summary: dict | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"final status must be one of {FINAL_STATUSES}, got {status!r}")
        self.final = status
        extra: dict = {"finished": _now_iso(), "reason": reason}
        if summary is not None:
            extra["summary"] = summary
        self._write_status(status, **extra)

    def save_weights(self, state_dict: dict) -> Path:
        """Write ``model.safetensors`` (CPU, contiguous clones, so tied/shared tensors are saved separately)."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
        dest = self.path / WEIGHTS_FILE
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{WEIGHTS_FILE}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"format": "pt"})
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
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
                    self.finish("failed", reason=_one_line(exc))
            except Exception:  # never mask the original exception with a disk error
                pass
        return False  # re-raise


def _append_bytes(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # one write in practice; the loop only covers a short write on a full disk or a signal
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------- reader

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
        return (self.path / WEIGHTS_FILE).is_file()

    @property
    def done(self) -> bool:
        return self.status != "running"

    def start_ts(self) -> float:
        ts = _parse_time(self.started)
        if ts is None:
            try:
                ts = self.path.stat().st_mtime
            except OSError:
                ts = 0.0
        return ts


def _read_json(path: Path):
    """(value, error): error is None when the file parsed, 'missing' when absent, else a short reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path.name} unreadable ({type(e).__name__})"
    try:
        return json.loads(text), None
    except ValueError as e:
        return None, f"{path.name} is not valid JSON ({e.msg} at line {e.lineno})"


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The epoch records of a metrics.jsonl. A trailing line without its newline (a write cut short) is
    ignored unless it is a complete JSON object; unparsable or non-object lines are skipped."""
    try:
        data = Path(path).read_bytes()
    except OSError:
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
        rec = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def pid_alive(pid) -> bool:
    """Whether a process with this id runs on this machine (a zombie counts as gone)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
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

    cfg, err = _read_json(path / CONFIG_FILE)
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

    st, serr = _read_json(path / STATUS_FILE)
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
    rec.pid = st.get("pid") if isinstance(st.get("pid"), int) else None
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
    if status == "running" and _process_gone(rec, path):
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
    updated = _parse_time(rec.updated)
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


# ------------------------------------------------------------------------------------------------- tables

def _flat(record: dict) -> dict:
    """One level of nesting flattened with '_': {"dev": {"accuracy": 1}} -> {"dev_accuracy": 1}."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"{k}_{k2}"] = v2
        else:
            out[k] = v
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


BASE_COLUMNS = ["id", "group", "task", "model", "strategy", "method", "p", "q", "seed", "status", "epochs",
                "train_loss", "dev_loss"]


def _mask_columns(strategy, att: dict) -> dict:
    """method, p, q as a run actually used them: none for unmasked runs; the prior experiment's drop-* runs use
    gold-label GA and drop exactly the top-p share, so q does not apply (training.masking_config)."""
    if strategy in (None, "vanilla", "none"):
        return {"method": None, "p": None, "q": None}
    if isinstance(strategy, str) and strategy.startswith("drop-"):
        return {"method": "random" if strategy == "drop-random" else "ga (gold)", "p": att.get("p"), "q": None}
    return {"method": att.get("method"), "p": att.get("p"), "q": att.get("q")}


def runs_table(records: Iterable[RunRecord]):
    """One row per run: id, group, task, model, strategy, method, p, q, seed, status, epochs (done), the last
    train_loss and dev_loss, every last ``dev_*`` metric, started, reason."""
    import pandas as pd

    rows = []
    metric_cols: list[str] = []
    for r in records:
        cfg = r.config if isinstance(r.config, dict) else {}
        att = cfg.get("attribution") if isinstance(cfg.get("attribution"), dict) else {}
        last = _flat(r.metrics[-1]) if r.metrics else {}
        row = {
            "id": r.id,
            "group": r.group,
            "task": cfg.get("task"),
            "model": cfg.get("model"),
            "strategy": cfg.get("strategy"),
            **_mask_columns(cfg.get("strategy"), att),
            "seed": cfg.get("seed"),
            "status": r.status,
            "epochs": r.epochs_done,
            "train_loss": last.get("train_loss") if _is_number(last.get("train_loss")) else None,
            "dev_loss": last.get("dev_loss") if _is_number(last.get("dev_loss")) else None,
        }
        for k, v in last.items():
            if k.startswith("dev_") and k != "dev_loss" and _is_number(v):
                row[k] = v
                if k not in metric_cols:
                    metric_cols.append(k)
        row["started"] = r.started
        row["reason"] = r.reason
        rows.append(row)
    cols = BASE_COLUMNS + metric_cols + ["started", "reason"]
    return pd.DataFrame(rows, columns=cols)


def metrics_frame(records: Iterable[RunRecord]):
    """Long form for curves: one row per (run, epoch) with run, group, strategy and the flattened record."""
    import pandas as pd

    rows = []
    for r in records:
        for i, m in enumerate(r.metrics):
            row = {"run": r.id, "group": r.group, "strategy": r.strategy}
            row.update(_flat(m))
            row.setdefault("epoch", i + 1)
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ weights

def load_weights(path: str | os.PathLike, device: str = "cpu") -> dict:
    """Read ``model.safetensors`` (``path`` is the file or its run folder). Safetensors only, never pickle."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if path.suffix != ".safetensors":
        raise UserError(f"{path.name} is not a .safetensors file; only safetensors weights are loaded")
    if not path.is_file():
        raise UserError(f"no saved weights at {path} (train with save_weights on)")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"weights file {path} is unreadable: {' '.join(str(e).split())}") from None
