"""Run records on disk: written atomically, read tolerantly.

Layout of one run::

    <root>/<run_id>/config.json       the TrainConfig as a dict (written once, atomically)
                    metrics.jsonl     one JSON object per line, one line per epoch (append-only)
                    status.json       {"status", "pid", "host", "started", "updated", ...} (replaced atomically)
                    model.safetensors optional weights (safetensors only, never pickle)

A group of runs (the four runs of the prior experiment, a sweep) is a sub-folder of a root laid out the same
way; it may also hold other files such as ``curves.html``. ``list_runs(root)`` walks groups recursively.

Modules: names (ids, file names, safe paths), files (atomic writes, tolerant JSON reads), writer (RunWriter),
reader (RunRecord, load_run, list_runs), tables (runs_table, metrics_frame), manage (disk_size, delete_run).

Writers never leave a file that a reader cannot parse: JSON files are replaced with ``os.replace`` after an
fsync, and each metrics line is appended with one ``write`` of the whole line. Readers skip a trailing
partial line and never raise for a broken folder: they report it with status ``corrupt`` or ``unknown``.

Epoch records are flat dicts; the conventional keys are ``epoch``, ``train_loss``, ``dev_loss`` and
``dev_<metric>`` (``dev_accuracy``, ``dev_f1``, ...). A nested ``{"dev": {"accuracy": ...}}`` is also read as
``dev_accuracy`` by :func:`runs_table`.
"""
from __future__ import annotations

from .files import (NotAFile, atomic_write_bytes, atomic_write_json, atomic_write_text, check_folder,
                    check_output_file, is_plain_file, parse_json, read_json, read_regular, to_json)
from .names import (CONFIG_FILE, FINAL_STATUSES, METRICS_FILE, RUN_FILES, STATUS_FILE, STATUSES, WEIGHTS_FILE,
                    safe_child, safe_run_id)
from .manage import delete_run, disk_size
from .reader import RunRecord, list_runs, load_run, load_weights, pid_alive, read_metrics
from .tables import metrics_frame, runs_table
from .writer import RunWriter

__all__ = ["NotAFile", "check_folder", "check_output_file", "is_plain_file", "parse_json", "read_regular", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_text", "read_json", "to_json", "CONFIG_FILE", "FINAL_STATUSES",
           "METRICS_FILE", "RUN_FILES", "STATUS_FILE", "STATUSES", "WEIGHTS_FILE", "safe_child", "safe_run_id",
           "RunRecord", "list_runs", "load_run", "load_weights", "pid_alive", "read_metrics", "metrics_frame",
           "runs_table", "RunWriter", "delete_run", "disk_size"]
