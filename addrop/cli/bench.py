"""python -m addrop bench: AD-DROP's training cost against plain fine-tuning (see addrop/bench.py)."""
from __future__ import annotations

import os
import sys

from ..config import TrainConfig
from .options import add_options

REEXEC_GUARD = "ADDROP_BENCH_REEXEC"


def add_parser(sub):
    p = sub.add_parser(
        "bench", help="time AD-DROP steps (GA, IGA, AA, RD) against vanilla fine-tuning; print a table, write JSON",
        description="Measure, in one process on the same batches of real sentences (SST-2 train from the GLUE "
                    "folder when present, else the demo set), the vanilla training step and AD-DROP steps (GA, "
                    "IGA, AA, RD; all layers and layer 0), the reference-style GA step, a cross-tuned epoch pair, "
                    "native against Captum attribution, the explorer's latency, one epoch against "
                    "transformers.Trainer, a length sweep (T = 32 ... 512), each step's matrix-product FLOPs "
                    "against the device's measured rate, and peak memory. Methods are interleaved within each "
                    "repeat; min, median and max are reported. The command re-executes "
                    "itself once with glibc allocator settings (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) "
                    "unless they are already set or --no-reexec is given.")
    add_options(p, TrainConfig, only=("model", "device", "batch_size"))
    p.add_argument("--out", default="bench.json", help="JSON file to write (default bench.json)")
    p.add_argument("--quick", action="store_true", help="CI mode: few repeats and batches, every key still there")
    p.add_argument("--data", default="auto", choices=["auto", "sst-2", "demo"],
                   help="auto: SST-2 from ADDROP_GLUE_DIR or ../shared/data/glue when present, else the demo set")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats of the steps (default 20, quick 3)")
    p.add_argument("--epoch-batches", type=int, default=None,
                   help="batches per epoch of the cross-tuned pair (default 20, quick 2)")
    p.add_argument("--iga-steps", type=int, default=20, help="IGA steps m (default 20)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="of the training steps and epochs, ours and the Trainer's (bf16: autocast; auto: bf16 where "
                        "the device computes it natively); the explorer's passes stay fp32 (default fp32)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's own choice, usually the core count)")
    p.add_argument("--seed", type=int, default=0, help="seed (data subset, head init, masks)")
    p.add_argument("--show", metavar="JSON", default=None,
                   help="print the table of a saved record instead of measuring (e.g. to compare machines)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--no-reexec", action="store_true",
                   help="do not restart the process with the allocator settings (the record says they are missing)")
    p.set_defaults(func=run)


_TOP = __package__.split(".")[0]  # "addrop": the package `python -m` runs


def _running_as_cli() -> bool:
    """True when this process is `python -m addrop` (not a test or a notebook calling cli.main)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == f"{_TOP}.__main__"


def _maybe_reexec(a) -> None:
    """glibc reads MALLOC_* at start-up only: restart this command once with them set."""
    from ..engine.allocator import MALLOC_ENV, env_set

    if a.no_reexec or os.environ.get(REEXEC_GUARD) or env_set():
        return
    if not _running_as_cli():
        return
    env = dict(os.environ, **{k: v for k, v in MALLOC_ENV.items() if not os.environ.get(k)}, **{REEXEC_GUARD: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", _TOP] + sys.argv[1:], env)


def _check_args(a) -> None:
    """Every argument, before torch is imported and before the benchmark runs (its result is never lost)."""
    from ..config import MAX_IGA_STEPS, check_device_name, check_int, check_seed
    from ..engine.runs import check_output_file

    check_int("--batch-size", a.batch_size, 1, 4096)
    check_int("--iga-steps", a.iga_steps, 1, MAX_IGA_STEPS)
    for flag, v in (("--repeats", a.repeats), ("--epoch-batches", a.epoch_batches), ("--threads", a.threads)):
        if v is not None:
            check_int(flag, v, 1, 10_000)
    check_seed(a.seed, "--seed")
    check_device_name(a.device)
    check_output_file(a.out, ".json")


def run(a) -> int:
    from dataclasses import replace

    from ..experiments.bench.report import format_table, markdown_table

    show = markdown_table if a.markdown else format_table
    if a.show is not None:
        rec = _read_record(a.show)
        try:
            table = show(rec)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
            from ..errors import UserError

            raise UserError(f"{a.show} is not a complete benchmark record ({type(e).__name__}: {e})") from None
        print(table)
        return 0
    _check_args(a)
    _maybe_reexec(a)

    from ..engine.runs import atomic_write_json
    from ..experiments.bench.measure import Settings, run_bench

    opts = Settings.quick() if a.quick else Settings()
    if a.repeats is not None:
        opts = replace(opts, repeats=a.repeats)
    if a.epoch_batches is not None:
        opts = replace(opts, epoch_batches=a.epoch_batches)
    opts = replace(opts, iga_steps=a.iga_steps, precision=a.precision)
    rec = run_bench(model=a.model, device=a.device, batch_size=a.batch_size, quick=a.quick, settings=opts,
                    data=a.data, seed=a.seed, threads=a.threads, progress=lambda s: print(s, file=sys.stderr, flush=True))
    atomic_write_json(a.out, rec)
    print(show(rec))
    print(f"-> {a.out} ({rec['seconds']:.0f} s)")
    return 0


def _read_record(path: str) -> dict:
    from ..engine.runs import parse_json, read_regular
    from ..experiments.bench.report import check_targets
    from ..errors import UserError

    try:
        rec = parse_json(read_regular(path, max_bytes=16 * 1024 * 1024).decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"no such benchmark record: {path}") from None
    except (OSError, ValueError) as e:  # also a FIFO, a link, an oversized or too deeply nested file
        raise UserError(f"{path} is not a readable benchmark record (JSON): {e}") from None
    needed = ("model", "device", "machine", "ratios", "ratio_stats", "step_ms_stats", "cpu", "captum", "latency_ms_stats")
    missing = [k for k in needed if not isinstance(rec, dict) or k not in rec]
    if missing:
        raise UserError(f"{path} is not a benchmark record from this version: missing {', '.join(missing)}")
    if "targets" not in rec:
        try:
            rec["targets"] = check_targets(rec)
        except (KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{path} is not a complete benchmark record (missing or null: {e})") from None
    return rec
