"""A self-contained GPU check: the cost of AD-DROP at the paper's model sizes (Table 7), on random weights.

Needs torch, transformers and this package only: no weights, tokenizer, data or network (and neither Captum,
plotly nor streamlit is imported). Per size (`bert-base`: BERT-base's config; `roberta-large`: RoBERTa-large's;
`tiny`: 2 layers of 32, for the CPU test only), on synthetic batches (`lengths.synthetic_batch`):

- the trainer's steps (`measure.Stepper`): vanilla, and AD-DROP GA / IGA / AA / RD with every layer masked and
  with layer 0 only; each ratio is paired per repeat (method time / vanilla time of the same round), reported
  as median, min and max over the repeats (`timing.interleaved`, `timing.paired`);
- the peak tensor memory of one untimed run of each (`timing.peak_memory_mb`);
- each step's matrix-product FLOPs and the FLOP-limited ratio they give at the device's best measured rate
  (flops.py, an estimate);
- the length sweep (`lengths.length_sweep`, fewer repeats).

    python -m addrop.experiments.bench.gpu [--quick] [--out FILE.json] [--device cuda]

prints one Markdown table (and a line per size for its sweep) and writes the record as JSON. `--quick` shrinks
everything (batch, length, repeats, sweep); on a CPU it runs too, slowly.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from ...config import METHODS
from ...core.attention import install
from ...engine.models import LoadedModel, resolve_device
from ...errors import ArgumentParser, UserError
from .flops import flop_record
from .lengths import length_sweep, synthetic_batch
from .machine import allocator_tuned, machine_info
from .report import format_lengths
from .steps import Stepper
from .timing import interleaved, paired, peak_memory_mb, stats, torch_threads

# The paper's Table 7 sizes; "tiny" exists for the CPU test only
SIZES = {
    "bert-base": dict(family="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, vocab_size=30522),
    "roberta-large": dict(family="roberta", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          intermediate_size=4096, vocab_size=50265, max_position_embeddings=514, pad_token_id=1,
                          bos_token_id=0, eos_token_id=2, type_vocab_size=1),
    "tiny": dict(family="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 vocab_size=1000),
}
STEP_KEYS = ("vanilla",) + tuple(f"{m}_{w}" for m in METHODS for w in ("all", "layer0"))


def size_config(size: str, num_labels: int = 2):
    """The transformers config of a size (random init: nothing is read from disk)."""
    from transformers import BertConfig, RobertaConfig

    if size not in SIZES:
        raise UserError(f"unknown size {size!r}: use one of {', '.join(SIZES)}")
    kw = dict(SIZES[size])
    family = kw.pop("family")
    cfg = (BertConfig if family == "bert" else RobertaConfig)(num_labels=num_labels, **kw)
    cfg.problem_type = "regression" if num_labels == 1 else "single_label_classification"
    cfg._attn_implementation = "eager"
    return cfg


def random_model(size: str, device: str | torch.device = "auto", num_labels: int = 2, seed: int = 0) -> LoadedModel:
    """A randomly initialised model of `size` (SIZES) with the addrop attention installed, as load_model builds
    its tiny models (eager attention, then `core.attention.install`). It has no tokenizer (None): the
    measurements feed it synthetic token ids, and LoadedModel.max_length then goes by the position table."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    cfg = size_config(size, num_labels)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    prev = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_config(cfg, attn_implementation="eager")
    finally:
        hf_logging.set_verbosity(prev)
    model.to(dev)
    model.eval()
    install(model)
    return LoadedModel(name=f"random-{size}", model=model, tokenizer=None, device=dev,
                       notes=(f"{size}: random weights, no tokenizer (synthetic token ids only)",))


def _check(sizes, batch_size, seq_len, repeats) -> list[str]:
    if isinstance(sizes, str):
        sizes = [s for s in sizes.split(",") if s]
    if not sizes:
        raise UserError("choose at least one size: " + ", ".join(SIZES))
    for s in sizes:
        if s not in SIZES:
            raise UserError(f"unknown size {s!r}: use one of {', '.join(SIZES)}")
    for name, v in (("batch size", batch_size), ("sequence length", seq_len), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{name} must be an integer >= 1, got {v!r}")
    return list(sizes)


def gpu_check(sizes=("bert-base", "roberta-large"), device: str = "auto", batch_size: int = 16, seq_len: int = 128,
              repeats: int = 10, progress: Callable[[str], None] | None = None, iga_steps: int = 20,
              sweep_lengths=(32, 64, 128, 256, 512), sweep_repeats: int = 3, sweep_batch_size: int | None = None,
              cap_s: float = 20.0, seed: int = 0, threads: int | None = None) -> dict:
    """Measure every size (see the module docstring). Returns {"device", "machine", "settings", "sizes": {size:
    {"step_ms", "step_ms_stats", "ratios" ({key: {min, median, max, n}}), "drops_ms", "peak_mem_mb", "sweep",
    ...}}, "seconds"}. `threads`: torch's intra-op threads for the run (restored afterwards)."""
    todo = _check(sizes, batch_size, seq_len, repeats)
    with torch_threads(threads):
        return _check_all(todo, device, batch_size, seq_len, repeats, progress, iga_steps, sweep_lengths,
                          sweep_repeats, sweep_batch_size, cap_s, seed)


def _check_all(todo, device, batch_size, seq_len, repeats, progress, iga_steps, sweep_lengths, sweep_repeats,
               sweep_batch_size, cap_s, seed) -> dict:
    say = progress or (lambda s: None)
    dev = resolve_device(device)
    t_start = time.perf_counter()
    out = {"device": str(dev), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(dev),
           "settings": {"batch_size": batch_size, "seq_len": seq_len, "repeats": repeats, "iga_steps": iga_steps,
                        "sweep_lengths": list(sweep_lengths), "sweep_repeats": sweep_repeats,
                        "sweep_batch_size": sweep_batch_size or batch_size, "cap_s": cap_s, "seed": seed},
           "sizes": {}}
    for size in todo:
        loaded = random_model(size, dev, seed=seed)
        out["sizes"][size] = _one_size(loaded, size, batch_size, seq_len, repeats, iga_steps, seed, say)
        out["sizes"][size]["sweep"] = length_sweep(
            loaded, sweep_lengths, sweep_batch_size or batch_size, iga_steps, sweep_repeats, cap_s, say, seed,
            copy=False)
        del loaded
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    out["seconds"] = time.perf_counter() - t_start
    return out


def _one_size(loaded: LoadedModel, size, batch_size, seq_len, repeats, iga_steps, seed, say) -> dict:
    dev = loaded.device
    T = min(seq_len, loaded.max_length)
    batch = synthetic_batch(loaded, batch_size, T, torch.Generator().manual_seed(seed))  # [B, T]
    stepper = Stepper(loaded, (repeats + 3) * len(STEP_KEYS), seed)
    fns: dict[str, Callable[[int], object]] = {"vanilla": lambda r: stepper.train_step(batch)}
    for m in METHODS:
        for w in ("all", "layer0"):
            acfg = replace(stepper.acfg(m, None if w == "all" else (0,)), steps=iga_steps)
            fns[f"{m}_{w}"] = lambda r, _a=acfg, _k=f"{m}_{w}": stepper.addrop_step(batch, _a, _k)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    say(f"gpu check: {size} ({loaded.num_layers} layers, {loaded.num_heads} heads, {n_params / 1e6:.0f}M "
        f"parameters) on {dev}, batch {batch_size} x {T} tokens, {len(fns)} methods, {repeats} repeats")
    with allocator_tuned():
        steps = interleaved(fns, repeats, 1, dev, say)
        drops_ms = {k: statistics.median(v[-repeats:]) for k, v in stepper.drop_ms.items()}  # the timed runs only
        peak = peak_memory_mb({k: (lambda _f=f: _f(0)) for k, f in fns.items()}, dev,
                              before=lambda: stepper.opt.zero_grad(set_to_none=True))
    ratios = {k: stats(paired(v, steps.wall["vanilla"])) for k, v in steps.wall.items() if k != "vanilla"}
    step_ms = {k: statistics.median(v) for k, v in steps.wall.items()}
    flops = flop_record(fns, 1, step_ms, dev, batch_size * T,  # padded on a GPU: every position is a row
                        loaded.model.config, stepper.precision)
    return {
        "model": loaded.name,
        "layers": loaded.num_layers,
        "heads": loaded.num_heads,
        "parameters": n_params,
        "batch_size": batch_size,
        "seq_len": T,
        "layout": "packed" if stepper.packed else "padded",  # the steps' (as a run's)
        "step_ms": step_ms,
        "step_ms_stats": {k: stats(v) for k, v in steps.wall.items()},
        "ratios": ratios,
        "drops_ms": drops_ms,
        "peak_mem_mb": peak,
        "flops": flops,  # flops.py: matrix-product FLOPs of each step, their floor and the FLOP-limited ratio
    }


# ------------------------------------------------------------------------------------------------ table
def _f(x, digits: int = 0) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x:
        return "n/a"
    return f"{x:.{digits}f}"


def _mb(x) -> str:
    return _f(x, 1 if isinstance(x, (int, float)) and x < 10 else 0)


def format_gpu(rec: dict) -> str:
    """One Markdown table: a row per size and method (step ms, ratio to vanilla median [min-max], peak MiB),
    then a line per size summarising its length sweep."""
    lines = [f"AD-DROP step cost on {rec.get('device')} ({rec.get('machine', {}).get('gpu', 'no GPU')}), random "
             "weights, synthetic batches", "",
             "| size | method | step ms | ratio to vanilla, median [min-max] | FLOP-limited ratio | drops ms | "
             "peak MiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for size, r in rec.get("sizes", {}).items():
        where = f"{size} (b{r.get('batch_size')} x T{r.get('seq_len')})"
        for k in STEP_KEYS:
            q = r.get("ratios", {}).get(k)
            ratio = "1" if k == "vanilla" else (f"{q['median']:.2f} [{q['min']:.2f}-{q['max']:.2f}]" if q else "n/a")
            low = (r.get("flops") or {}).get("ratio_floor", {}).get(k)
            lines.append(f"| {where} | {k} | {_f(r.get('step_ms', {}).get(k), 1)} | {ratio} | {_f(low, 2)} | "
                         f"{_f(r.get('drops_ms', {}).get(k), 1)} | {_mb(r.get('peak_mem_mb', {}).get(k))} |")
    lines.append("")
    for size, r in rec.get("sizes", {}).items():
        f = r.get("flops")
        if f:
            nan = float("nan")
            lines.append(f"FLOPs {size}: {f['matmul_gflop_per_s']:.0f} GFLOP/s, the best of {f['rate_shape']} "
                         f"products with 1, 4 and 16 times the rows; vanilla step "
                         f"{f['gflop'].get('vanilla', nan):.1f} GFLOP, at {f['floor_share'].get('vanilla', nan):.2f} "
                         "of its floor (FLOP-limited ratio, an "
                         "estimate: 1 + the products the step adds, at that rate, / the vanilla median)")
    for size, r in rec.get("sizes", {}).items():
        sw = r.get("sweep")
        if not sw:
            continue
        exps = ", ".join(f"{m} {_f(e, 2)}" for m, e in sw.get("exponent", {}).items())
        at = sw.get("explorer_ga_1s_interp")
        lines.append(f"sweep {size} (batch {sw.get('batch_size')}, T={sw.get('lengths')}): log-log exponents "
                     f"{exps}; explorer GA <= 1 s up to T={sw.get('explorer_ga_1s_max_len')} measured, "
                     f"1 s at T~{_f(at)}" + (f"; capped: {', '.join(sw['skipped'])}" if sw.get("skipped") else ""))
    return "\n".join(lines)


QUICK = dict(batch_size=2, seq_len=16, repeats=2, iga_steps=4, sweep_lengths=(8, 16), sweep_repeats=1,
             sweep_batch_size=2, cap_s=20.0)


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m addrop.experiments.bench.gpu", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shrink everything (batch, length, repeats, sweep)")
    ap.add_argument("--out", help="write the record here as JSON")
    ap.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    ap.add_argument("--sizes", default="bert-base,roberta-large", help="comma-separated: " + ", ".join(SIZES))
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--sweep-lengths", help="comma-separated sequence lengths of the sweep")
    ap.add_argument("--sweep-repeats", type=int)
    ap.add_argument("--cap", type=float, help="seconds: a sweep method is not measured at longer lengths after "
                    "one run over this")
    ap.add_argument("--threads", type=int, help="torch's intra-op threads (1 on a CPU shared with other jobs)")
    ap.add_argument("--full-sweep-tables", action="store_true", help="also print each size's sweep table")
    ap.add_argument("--verbose", action="store_true", help="progress on stderr")
    args = ap.parse_args(argv)
    kw = dict(QUICK) if args.quick else {}
    for name in ("batch_size", "seq_len", "repeats", "sweep_repeats", "threads"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.cap is not None:
        kw["cap_s"] = args.cap
    try:
        if args.sweep_lengths:
            kw["sweep_lengths"] = tuple(int(x) for x in args.sweep_lengths.split(",") if x.strip())
        rec = gpu_check(sizes=args.sizes, device=args.device, progress=(lambda s: print(s, file=sys.stderr,
                                                                                        flush=True))
                        if args.verbose else None, **kw)
    except (UserError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rec["quick"] = bool(args.quick)
    print(format_gpu(rec))
    if args.full_sweep_tables:
        for size, r in rec["sizes"].items():
            print(f"\n{size}:\n" + format_lengths(r["sweep"], markdown=True, memory=True))
    if args.out:
        Path(args.out).write_text(json.dumps(rec, indent=2))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
