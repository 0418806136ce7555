"""Weights that go into a loaded model: a run's checkpoint (`run:PATH`) and the shipped trained default.

A leaf of engine/ (models.py calls it; it imports no other engine module but runs/):

- `parse_run_ref("run:runs/x@3")` -> (folder, epoch or None): a run's final `model.safetensors`, or the
  checkpoint it kept after epoch 3 (`model.epoch3.safetensors`, written with `save_every_epoch`).
- `check_state(model, state, what)`: a checkpoint fits the model only if it has exactly the model's tensors with
  the model's shapes; anything else is a one-line UserError (never a silent re-initialisation).
- The trained default `minilm-demo` ships as a *delta* on the embedded encoder (assets/trained/): a rank-r
  factorisation A @ B of each encoder matrix's fine-tuning change, the full change of the small vectors, and
  the pooler and classifier as they are. `assets/trained/make_minilm_demo.py` writes it; `merge_delta` adds it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import UserError
from .runs import WEIGHTS_FILE, is_plain_file, load_run, load_weights

RUN_PREFIX = "run:"
TRAINED_DIR = Path(__file__).resolve().parents[2] / "assets" / "trained"
TRAINED = {  # name -> (base model, task, delta file)
    "minilm-demo": ("minilm", "demo", TRAINED_DIR / "minilm-demo.safetensors"),
}
ABSOLUTE = ("classifier.", "bert.pooler.")  # stored as they are, not as a change


def epoch_weights_file(epoch: int) -> str:
    return f"model.epoch{int(epoch)}.safetensors"


def run_ref(folder, epoch: int | None = None) -> str:
    """`run:FOLDER[@EPOCH]` with the folder absolute: one spelling of a checkpoint wherever it comes from (the
    sidebar's list of kept checkpoints, a training job that just kept one), so that the two compare equal."""
    return RUN_PREFIX + str(Path(folder).resolve()) + ("" if epoch is None else f"@{int(epoch)}")


def fine_tune_start(name: str) -> str:
    """The model an experiment fine-tunes when `name` is chosen: `name` itself, or for a fine-tuned model its
    pre-trained base (pretrained_base)."""
    return pretrained_base(name) or name


def parse_run_ref(ref: str) -> tuple[Path, int | None]:
    """`run:PATH` or `run:PATH@EPOCH` -> (the run folder, the epoch or None for the final weights). An '@' followed
    by anything but digits is part of the path (a folder such as /home/jane@corp/runs: run names never hold '@'),
    unless no such folder exists, which is then said."""
    body = ref[len(RUN_PREFIX):].strip() if ref.startswith(RUN_PREFIX) else ref.strip()
    epoch = None
    if "@" in body:
        head, _, tail = body.rpartition("@")
        if tail.isdigit():
            body, epoch = head, int(tail)
        elif not Path(body).expanduser().is_dir():
            raise UserError(f"{ref!r}: the part after '@' must be an epoch number, e.g. run:runs/my-run@3")
    if not body:
        raise UserError("run: needs a run folder, e.g. run:runs/my-run")
    return Path(body).expanduser(), epoch


def run_checkpoint(ref: str) -> tuple[str, int | None, Path, dict]:
    """What `run:PATH[@E]` loads: (base model name, the run's number of labels or None, weights file, config)."""
    folder, epoch = parse_run_ref(ref)
    if not folder.is_dir():
        raise UserError(f"{ref!r}: no run folder at {folder}")
    rec = load_run(folder)
    if rec.status == "corrupt":
        raise UserError(f"{ref!r}: the run record is unreadable ({rec.reason})")
    base = rec.config.get("model")
    if not isinstance(base, str) or not base.strip():
        raise UserError(f"{ref!r}: the run's config.json does not name its base model")
    file = folder / (WEIGHTS_FILE if epoch is None else epoch_weights_file(epoch))
    if not file.is_file():
        kept = sorted(p.name for p in folder.glob("model*.safetensors"))
        stopped_early = rec.status == "stopped" and rec.config.get("save_weights")
        why = (f" (it has {', '.join(kept)})" if kept else " (it stopped before its first epoch ended)"
               if stopped_early else " (it was trained without saving weights)")
        raise UserError(f"{ref!r}: no weights {file.name} in the run folder" + why)
    labels = rec.config.get("num_labels")
    return base.strip(), labels if isinstance(labels, int) and not isinstance(labels, bool) else None, file, rec.config


def pretrained_base(name: str) -> str | None:
    """The pre-trained model a fine-tuned one grew from (a shipped trained model's base; a run checkpoint's base
    model, followed down while that is a fine-tuned one too), or None where `name` is not a fine-tuned model (or
    its run can no longer be read). Experiments fine-tune this base, never the fine-tuned model again: its loss
    would start at a model that has already fitted the data."""
    base, seen = None, set()
    while (name in TRAINED or name.startswith(RUN_PREFIX)) and name not in seen:
        seen.add(name)
        try:
            name = TRAINED[name][0] if name in TRAINED else run_checkpoint(name)[0]
        except UserError:
            return None
        base = name
    return base


def check_state(model: torch.nn.Module, state: dict, what: str) -> None:
    """Refuse a checkpoint that is not exactly this model's set of tensors and shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or extra or wrong):
        return
    if wrong and all(k.startswith("classifier") for k in wrong) and not (missing or extra):
        k = wrong[0]
        raise UserError(f"{what} has a classification head of shape {tuple(state[k].shape)}, the chosen data needs "
                        f"{tuple(own[k].shape)}: its number of labels does not match")
    first = (missing or extra or wrong)[0]
    raise UserError(f"{what} does not fit its base model ({len(missing)} tensors missing, {len(extra)} unknown, "
                    f"{len(wrong)} of another shape, e.g. {first!r})")


def load_run_state(file: Path, model: torch.nn.Module, what: str) -> None:
    state = load_weights(file)
    check_state(model, state, what)
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------- the trained default

def make_delta(base: dict, tuned: dict, rank: int) -> dict:
    """The shipped form of `tuned` relative to `base` (both state dicts): see the module's docstring."""
    out = {}
    for k, w0 in base.items():
        w1 = tuned[k].to(w0.dtype)
        if k.startswith(ABSOLUTE):
            out[f"{k}::abs"] = w1.clone().contiguous()
            continue
        if "embeddings." in k or not torch.is_floating_point(w0):
            continue  # the embeddings stay the encoder's own
        d = (w1 - w0).float()
        if not d.abs().max() > 0:
            continue
        if d.ndim == 2 and min(d.shape) > rank:
            u, s, v = torch.linalg.svd(d, full_matrices=False)
            out[f"{k}::a"] = (u[:, :rank] * s[:rank]).half().contiguous()  # [out, r]
            out[f"{k}::b"] = v[:rank].half().contiguous()                   # [r, in]
        else:
            out[f"{k}::d"] = d.half().contiguous()
    return out


def merge_delta(model: torch.nn.Module, delta: dict) -> None:
    """Add a `make_delta` result to `model` in place."""
    state = model.state_dict()
    for key, t in delta.items():
        name, _, kind = key.rpartition("::")
        if name not in state or kind not in ("abs", "a", "b", "d"):
            raise UserError(f"the trained weights do not fit the model (unknown tensor {name!r})")
        if kind == "b":
            continue
        w = state[name]
        if kind == "abs":
            new = t.to(w.dtype)
        elif kind == "d":
            new = w + t.to(w.dtype)
        else:
            new = w + (t.float() @ delta[f"{name}::b"].float()).to(w.dtype)
        if new.shape != w.shape:
            raise UserError(f"the trained weights do not fit the model ({name!r} has another shape)")
        state[name] = new
    model.load_state_dict(state, strict=True)


@lru_cache(maxsize=8)
def trained_info(name: str) -> dict:
    """The metadata the builder wrote beside the delta (task, dev accuracy, rank, how it was trained); read once
    per process (the sidebar shows it on every rerun). Callers must not change the dict."""
    _, _, file = TRAINED[name]
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception:  # noqa: BLE001 - a missing or broken asset is reported by load_trained
        return {}
    try:
        return json.loads(meta.get("addrop", "{}"))
    except ValueError:
        return {}


def load_trained(name: str, model: torch.nn.Module) -> None:
    _, _, file = TRAINED[name]
    if not file.is_file():
        raise UserError(f"the trained model {name!r} is missing: expected {file} (reinstall addrop-studio, or "
                        "run assets/trained/make_minilm_demo.py)")
    from safetensors.torch import load_file

    try:
        delta = load_file(str(file))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for a damaged file
        raise UserError(f"the trained model file {file} is unreadable: {' '.join(str(e).split())[:200]}") from None
    merge_delta(model, delta)


# ---------------------------------------------------------------------------------------------- the run list

def list_checkpoints(root, limit: int = 60) -> list[dict]:
    """Every checkpoint kept under the runs folder `root`, newest run first: {ref, run, epoch, task, num_labels,
    metric, value, strategy, label}; `label` is "run name, epoch N, dev <metric> x" (the app's model list)."""
    from .runs import list_runs

    out = []
    for rec in reversed(list_runs(root)):
        if rec.status not in ("finished", "stopped"):
            continue
        files = sorted(f for f in rec.path.glob("model*.safetensors") if is_plain_file(f))  # no links, no FIFOs
        if not files:
            continue
        metric = rec.config.get("primary_metric")
        by_epoch = {m.get("epoch"): m for m in rec.metrics if isinstance(m, dict)}
        last = rec.metrics[-1].get("epoch") if rec.metrics else None
        name = rec.id if rec.group is None else f"{rec.group}/{rec.id}"
        for f in reversed(files):
            epoch = last if f.name == WEIGHTS_FILE else _epoch_of(f.name)
            ref = run_ref(rec.path, None if f.name == WEIGHTS_FILE else epoch)
            m = by_epoch.get(epoch, {})
            value = m.get(f"dev_{metric}") if isinstance(metric, str) else None
            shown = f", dev {metric} {value:.3f}" if isinstance(value, (int, float)) else ""
            out.append({"ref": ref, "run": name, "epoch": epoch, "task": rec.config.get("task_name"),
                        "num_labels": rec.config.get("num_labels"), "metric": metric, "value": value,
                        "strategy": rec.config.get("strategy"), "label": f"{name}, epoch {epoch}{shown}"})
            if len(out) >= limit:
                return out
    return out


def _epoch_of(file_name: str) -> int | None:
    body = file_name[len("model.epoch"):-len(".safetensors")] if file_name.startswith("model.epoch") else ""
    return int(body) if body.isdigit() else None
