"""Run ids and paths: the file names of a run folder, safe run ids, and paths that cannot leave the runs folder."""
from __future__ import annotations

import math
import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from ...errors import UserError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
WEIGHTS_FILE = "model.safetensors"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, STATUS_FILE)
RUNS_ENV = "ADDROP_RUNS_DIR"

FINAL_STATUSES = ("finished", "stopped", "failed")
# statuses a reader may report: the writer's ones plus the reader's verdicts
STATUSES = ("running",) + FINAL_STATUSES + ("incomplete", "corrupt", "unknown")

MAX_ID_LEN = 80

_ID_OK = re.compile(r"^[A-Za-z0-9._-]+$")

def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def parse_time(value) -> float | None:
    """An ISO time (or epoch seconds) -> epoch seconds; None when absent or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value[:64])
        if dt.tzinfo is None:
            dt = dt.astimezone()  # naive -> this machine's local time
        return dt.timestamp()
    except (ValueError, OverflowError, OSError):  # unparsable, or a date the platform cannot place (year 1)
        return None


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
        raise UserError(f"run name {shown!r} must be a plain name, not a path (no slash or backslash)")
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


def default_runs_dir() -> str:
    """Where run records go when no folder is given, in the app and the command line alike: $ADDROP_RUNS_DIR, else
    ./runs."""
    return os.path.expanduser(os.environ.get(RUNS_ENV) or "runs")
