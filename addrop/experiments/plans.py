"""Experiment plans: groups of runs that share data and, per seed, a model. The command line (`prior`, `compare`)
and the app run the same plans through the same `run_plan`.

    prior_plan    the paper's prior experiment (Section 2.2): none / random / low / high, one seed
    compare_plan  AD-DROP against vanilla: per seed a vanilla and an AD-DROP run with the same seed

`run_plan(progress, plan, ...)` trains the runs into `<runs_dir>/<group>/<run>`: one after the other, or
side by side in worker processes (experiments/parallel.py). It reports through `progress` (an object with
`update(**kw)`, `add_event(obj)` and `should_stop()`: the app's background job, or the command line's printer)
after every step and epoch, and stops when `progress.should_stop()` (the runs under way are recorded as stopped,
the rest are not started). Reading groups back: experiments/groups.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

from ..config import PRIOR_STRATEGIES, AttributionConfig, TrainConfig, resolve_layers
from ..engine.preflight import check_runs, check_schedule
from ..engine.runs import safe_child, safe_run_id
from ..errors import UserError
from .seeds import parse_seeds

PRIOR = "prior"
COMPARE = "compare"
COMPARE_STRATEGIES = ("vanilla", "addrop")
# The prior experiment's own settings (what is dropped, and where), shared by the command line and the app's form.
# count: "equal" drops the same number of keys per row for high, low and random ("reference": the reference code's
# asymmetric rule, see core/masking.py)
# precision auto: bf16 where the device computes it natively (engine/precision.py); the experiment compares
# strategies with each other, and its losses agree with fp32 to about 1e-3 (docs/performance.md)
# the prior experiment's defaults, in the app's form and on the command line alike
PRIOR_DEFAULTS = {"rate": 0.3, "layers": (0,), "count": "equal", "precision": "auto", "train_size": 200,
                  "dev_size": 100, "lr": 5e-5}
# The run sizes of the prior experiment's two settings. quick: the defaults above (about a minute; drop-low fits
# fastest and drop-high slowest, but no run overfits yet). overfit: chosen on the demo data by the protocol in
# docs/prior-preset.md (four candidates, seeds 1-3), where drop-low's dev loss turns upwards as in the paper's
# Figure 2 (two to three times as long).
PRIOR_SETTINGS = {
    "quick": {"train_size": PRIOR_DEFAULTS["train_size"], "dev_size": PRIOR_DEFAULTS["dev_size"],
              "epochs": TrainConfig().epochs, "lr": PRIOR_DEFAULTS["lr"]},
    "overfit": {"train_size": 128, "dev_size": 140, "epochs": 12, "lr": 5e-5},
}


def overfit_setting_helps(config: dict | None) -> bool:
    """Whether pointing a prior experiment that shows no overfitting to the overfit setting helps: its runs (a run
    record's config) are on the demo data, where the setting was chosen, did not already use its epochs and lr, and
    fine-tune a real model (a tiny random one learns next to nothing, however long)."""
    over = PRIOR_SETTINGS["overfit"]
    return (isinstance(config, dict) and config.get("task") == "demo"
            and not str(config.get("model") or "").startswith("tiny-")
            and (config.get("epochs"), config.get("lr")) != (over["epochs"], over["lr"]))


class Progress(Protocol):
    """Where a plan reports: the app's Job (addrop/studio/jobs.py) or the command line's printer."""

    def update(self, **kw) -> None: ...
    def add_event(self, obj) -> None: ...
    def should_stop(self) -> bool: ...


@dataclass
class Plan:
    kind: str  # prior | compare
    group: str  # folder under runs_dir
    runs_dir: str
    configs: list[TrainConfig]
    title: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return safe_child(self.runs_dir, self.group)

    @property
    def total_epochs(self) -> int:
        return sum(c.epochs for c in self.configs)


def prior_plan(base: TrainConfig, rate: float, layers, runs_dir: str, group: str | None = None,
               strategies=PRIOR_STRATEGIES, count: str | None = None) -> Plan:
    """The prior experiment (paper Section 2.2): the same data, seed and model, four strategies (none, random,
    low, high) that drop a fixed share `rate` of each attention row in `layers`, chosen by gold-label GA (what the
    drop-* strategies use is `TrainConfig.masking`). `count`: equal (default: the same number of keys per row
    for high, low and random) or reference (the reference code's rule)."""
    count = count or base.attribution.count or PRIOR_DEFAULTS["count"]
    attr = replace(base.attribution, method="ga", target="gold", layers=layers, p=rate, seed=base.seed, count=count)
    configs = [replace(base, strategy=s, attribution=attr, name=s, clean_train_loss=True) for s in strategies]
    for c in configs:
        c.__post_init__()
    group = safe_run_id(group, prefix=PRIOR)
    return Plan(PRIOR, group, str(runs_dir), configs, title=f"prior experiment: {base.model} on {base.task}",
                meta={"rate": rate, "layers": attr.to_dict()["layers"], "count": count})


def compare_plan(base: TrainConfig, attribution: AttributionConfig, cross_tuning: bool, seeds, runs_dir: str,
                 group: str | None = None, strategy: str = "addrop") -> Plan:
    """AD-DROP vs vanilla: for every seed a vanilla run and a `strategy` run (addrop by default) with the same
    seed (same data subset, order and head initialisation), named vanilla-s<seed> and <strategy>-s<seed>."""
    seeds = parse_seeds(seeds)
    if strategy == "vanilla":
        raise UserError("compare runs vanilla against another strategy: choose addrop (default) or a drop-* one")
    configs = []
    for s in seeds:
        for strat in ("vanilla", strategy):
            configs.append(replace(base, strategy=strat, seed=s, attribution=replace(attribution, seed=s),
                                   cross_tuning=cross_tuning, name=f"{strat}-s{s}"))
    group = safe_run_id(group, prefix=COMPARE)
    return Plan(COMPARE, group, str(runs_dir), configs, title=f"AD-DROP vs vanilla: {base.model} on {base.task}",
                meta={"seeds": seeds, "cross_tuning": cross_tuning, "attribution": attribution.to_dict()})


# Seconds per example pass of minilm in fp32 on an idle 2-core CPU (start-up included), the fastest and the slowest
# machine measured (docs/performance.md): an Intel Xeon with AVX-512 ran the prior experiment's defaults (7,200
# passes as example_passes counts them) in 36 s and the compare page's (8,400) in 59 s; an AMD EPYC Zen 3 (AVX2)
# took 74 s and 109 s. A shared machine takes longer.
MINILM_SECONDS_PER_PASS = (0.005, 0.013)


# Mean tokens per example of the data those rates were measured on (the demo set, minilm's tokenizer: 15.9 train,
# 15.2 dev): an example pass costs about in proportion to its tokens (docs/performance.md's length sweep: exponent
# 1.04 for a training step), so longer inputs (MRPC's pairs: about 53) take longer.
DEMO_TOKENS = 15.6

# The time of a plan's runs two at a time, in two worker processes of one thread already started, against one after
# the other on two threads: 0.79 for the prior experiment's defaults on the Intel Xeon (docs/performance.md), 0.85
# for the runs alone on an AMD EPYC Zen 3.
SIDE_BY_SIDE = 0.8


def _passes(configs) -> tuple[int, int]:
    """(passes over training examples, passes over dev examples) of a plan, as example_passes counts them."""
    from ..core.algorithm import masks_in_epoch

    train = dev = 0
    for c in configs:
        n, d = c.train_size or 0, c.dev_size or 0
        m = c.masking()
        extra = 0 if m is None or m.mode == "random" or m.method == "rd" else (m.steps if m.method == "iga" else 1)
        for e in range(1, c.epochs + 1):
            train += n + (n if c.wants_clean_loss else 0) + (extra * n if masks_in_epoch(c, e) else 0)
            dev += d
    return train, dev


def example_passes(configs) -> int:
    """A plan's work before it starts, in example passes: per epoch one per training example, one more per
    training example in a masked epoch (the attribution pass; IGA: m), one per training example for the clean
    training loss, one per dev example."""
    return sum(_passes(configs))


def mean_tokens(tokenizer, split, max_length: int, sample: int = 256) -> float | None:
    """Mean tokens per example (special tokens included, cut at max_length) over the first `sample` examples of a
    split (engine.tasks.Split); None for an empty split."""
    n = min(sample, len(split.texts))
    if not n:
        return None
    enc = tokenizer(split.texts[:n], split.pairs[:n] if split.pairs is not None else None, truncation=True,
                    max_length=max_length, verbose=False)
    return sum(len(ids) for ids in enc["input_ids"]) / n


def time_estimate(configs, model: str, tokens: tuple[float | None, float | None] | None = None,
                  workers: int = 1) -> str:
    """'about N example passes' and, for the built-in models, a rough time on an idle 2-core CPU: the range from the
    fastest to the slowest machine measured. `tokens`: the data's mean tokens per training and per dev example
    (mean_tokens); inputs longer than the demo data's (DEMO_TOKENS) scale the time up in proportion. `workers` > 1:
    the runs two at a time in worker processes already started (the app's), SIDE_BY_SIDE of the time."""
    from ..engine.weights import TRAINED  # a shipped fine-tuned model costs what its base model costs

    train, dev = _passes(configs)
    text = f"about {train + dev:,} example passes"
    if TRAINED.get(model, (model,))[0] == "minilm":
        t_train, t_dev = tokens or (None, None)
        scale = [max(1.0, (t or DEMO_TOKENS) / DEMO_TOKENS) for t in (t_train, t_dev)]
        work = train * scale[0] + dev * scale[1]
        lo, hi = (work * s * (SIDE_BY_SIDE if workers > 1 else 1.0) for s in MINILM_SECONDS_PER_PASS)
        if hi >= 180:
            text += f", roughly {_span(round(lo / 60), round(hi / 60))} minutes with minilm on an idle 2-core CPU"
        else:
            text += (f", about {_span(max(10, round(lo, -1)), max(10, round(hi, -1)))} s with minilm on an idle "
                     "2-core CPU")
        if workers > 1:
            text += f", {workers} runs at a time"
        if work > 1.2 * (train + dev):
            text += f" for inputs of about {t_train or t_dev:.0f} tokens, against the demo data's {DEMO_TOKENS:.0f}"
    elif model.startswith("tiny-"):
        text += ", seconds with a tiny model"
    return text


def _span(lo: float, hi: float) -> str:
    """'lo-hi', or one number where the two (already rounded) ends meet."""
    return f"{lo:.0f}-{hi:.0f}" if lo < hi else f"{hi:.0f}"


def check_plan(plan: Plan, num_layers: int) -> None:
    """Range checks before a plan starts (the runs would fail with the same message later)."""
    check_schedule(plan.configs)
    for c in plan.configs:
        if c.uses_masks:
            resolve_layers(c.attribution.layers, num_layers)
    check_group_free(plan)


def check_group_free(plan: Plan) -> None:
    """UserError when the plan's group folder already exists (a plan never adds runs to an earlier one)."""
    if safe_child(plan.runs_dir, plan.group).exists():
        raise UserError(f"a run group named {plan.group!r} already exists in {plan.runs_dir}; choose another name, "
                        "or leave the name out for a new one")


def run_plan(progress: Progress, plan: Plan, loaded=None, splits=None, load_for_seed: Callable | None = None,
             loaded_seed: int = 0, workers: int = 1) -> dict:
    """Train every run of `plan`: one after the other, or (`workers` > 1) side by side in worker processes.

    loaded: a model whose head was initialised with `loaded_seed` (the app's cached, pristine model; training
    copies it), or None. Runs with another seed get a model from `load_for_seed(seed)`, else
    `engine.models.load_model` with that seed (a fresh head initialised with it).
    splits: (spec, train, dev) as returned by `engine.training.load_splits`; None loads them from the first run's
    settings.
    workers: 1 = one after the other in this process; N = up to N runs side by side in worker processes
    (experiments/parallel.py), each loading the model by name with its run's seed (the weights `loaded` has;
    `loaded` itself stays unused) and sharing the CPUs. A `load_for_seed` keeps the runs in this process.
    """
    from ..engine.data import load_splits
    from .parallel import plan_workers

    check_runs(plan.configs, plan.runs_dir)  # before anything is trained or written
    nworkers, threads = (1, 0) if load_for_seed is not None else plan_workers(plan.configs, workers)
    if splits is None:
        splits = load_splits(plan.configs[0])
    root = plan.root
    root.mkdir(parents=True, exist_ok=True)
    n = len(plan.configs)
    epochs: list[dict] = []
    runs: list[dict] = [{"run": c.name, "strategy": c.strategy, "seed": c.seed, "status": "waiting"}
                        for c in plan.configs]
    done = {"epochs": 0}
    frac = [0.0] * n  # each run's share done
    t0 = time.time()
    side = f", {nworkers} side by side (worker processes of {threads} torch thread{'s' * (threads > 1)})"
    progress.update(fraction=0.0, message=f"preparing {n} runs" + (side if nworkers > 1 else ""), epochs=epochs,
                    runs=runs, group=plan.group, path=str(root), kind=plan.kind, total_epochs=plan.total_epochs,
                    workers=nworkers)

    now: dict[int, str] = {}  # what each run under way is doing (several at once side by side)

    def say(i: int, text: str | None, **kw) -> None:
        """The progress message: every run under way, e.g. 'runs 3 and 4 of 4 · drop-low: ...; drop-high: ...'."""
        if text is None:
            now.pop(i, None)
        else:
            now[i] = text
        ids = sorted(now)
        if ids:
            nums = [str(j + 1) for j in ids]
            head = f"run {nums[0]}/{n}" if len(nums) == 1 else f"runs {', '.join(nums[:-1])} and {nums[-1]} of {n}"
            kw["message"] = f"{head} · " + "; ".join(now[j] for j in ids)
        progress.update(**kw)

    def on_step(i, info):
        cfg = plan.configs[i]
        frac[i] = float(info["fraction"])
        say(i, f"{cfg.name}: epoch {info['epoch']}/{cfg.epochs}, step {info['step']}/{info['total_steps']}",
            fraction=sum(frac) / n)

    def on_epoch(i, rec):
        cfg = plan.configs[i]
        done["epochs"] += 1
        row = dict(rec, run=cfg.name, strategy=cfg.strategy, seed=cfg.seed)
        epochs.append(row)
        say(i, f"{cfg.name}: epoch {rec['epoch']}/{cfg.epochs} done", epochs=epochs, done_epochs=done["epochs"])
        progress.add_event(dict(row))

    def on_done(i, res):
        frac[i] = 1.0 if res["status"] == "finished" else frac[i]
        runs[i].update(status=res["status"], reason=res.get("reason"), path=res.get("path"), id=res.get("id"))
        say(i, None, runs=runs)

    if nworkers > 1:
        from .parallel import run_side_by_side

        def on_event(kind, i, payload):
            if kind == "start":
                runs[i]["status"] = "running"
                progress.update(runs=runs)
            elif kind == "step":
                on_step(i, payload)
            elif kind == "epoch":
                on_epoch(i, payload)
            elif kind == "message":
                say(i, payload)

        run_side_by_side(plan.configs, plan.root, splits, nworkers, threads, on_event, on_done,
                         progress.should_stop)
    else:
        _run_in_turn(progress, plan, splits, loaded, load_for_seed, loaded_seed, runs, on_step, on_epoch, on_done)

    progress.update(runs=runs, elapsed_total=time.time() - t0, message="stopped" if progress.should_stop() else "done")
    return {"group": plan.group, "path": str(root), "runs": runs, "kind": plan.kind, "title": plan.title}


def _run_in_turn(progress, plan, splits, loaded, load_for_seed, loaded_seed, runs, on_step, on_epoch, on_done):
    """The runs one after the other in this process, sharing one model per seed (each run trains a copy)."""
    from ..engine.models import load_model
    from ..engine.training import Callbacks, data_key, prepare_data, train

    models = {int(loaded_seed): loaded} if loaded is not None else {}
    data_cache: dict = {}
    for i, cfg in enumerate(plan.configs):
        if progress.should_stop():
            break
        seed = cfg.seed
        if seed not in models:
            progress.update(message=f"{cfg.name}: loading the model with seed {seed}")
            if load_for_seed is not None:
                models[seed] = load_for_seed(seed)
            else:
                models[seed] = load_model(cfg.model, cfg.device, num_labels=splits[0].num_labels, seed=seed)
        model = models[seed]
        key = data_key(cfg)
        if key not in data_cache:
            progress.update(message=f"{cfg.name}: tokenizing the data")
            data_cache[key] = prepare_data(cfg, model.tokenizer, splits)
        runs[i]["status"] = "running"
        res = train(cfg, runs_dir=str(plan.root), loaded=model, data=data_cache[key],
                    callbacks=Callbacks(on_step=lambda info, _i=i: on_step(_i, info),
                                        on_epoch=lambda rec, _i=i: on_epoch(_i, rec),
                                        should_stop=progress.should_stop))
        on_done(i, {"status": res.status, "reason": res.reason, "path": res.path, "id": res.id})
        if res.status != "finished":
            break


# ----------------------------------------------------------------------------------------------- reading back

def primary_metric_column(frame) -> str | None:
    """The dev metric to show: accuracy, else the first dev_* column that is not dev_loss."""
    cols = [c for c in frame.columns if c.startswith("dev_") and c != "dev_loss"]
    for pref in ("dev_accuracy", "dev_mcc", "dev_pearson", "dev_f1"):
        if pref in cols:
            return pref
    return cols[0] if cols else None


def compare_panels(frame) -> list[tuple[str, str]]:
    """The (column, title) panels of a comparison's curves: training loss, dev loss and the primary dev metric."""
    panels = [("train_loss", "training loss"), ("dev_loss", "dev loss")]
    metric = primary_metric_column(frame)
    if metric:
        panels.append((metric, metric.replace("dev_", "dev ")))
    return panels
