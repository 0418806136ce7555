"""The benchmark in quick mode on tiny-bert: every key is there and every number is sane. No timing assertions:
speed is measured by `python -m addrop bench`, never asserted by a test."""
from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from addrop import cli
from addrop.experiments.bench.machine import MALLOC_ENV
from addrop.experiments.bench.measure import Settings, max_rel_diff, run_bench
from addrop.experiments.bench.report import COMPARISONS, GOALS, HEAD, STEP_KEYS, check_targets, format_table, table_rows
from addrop.errors import UserError

RATIO_KEYS = ("ga_all", "ga_layer0", "ga_reference_all", "iga_all", "aa_all", "rd_all", "crosstuned_pair")
CAPTUM_KEYS = ("ga_time_ratio", "ga_max_rel_diff", "iga_time_ratio", "iga_max_rel_diff")


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    rc = cli.main(["bench", "--model", "tiny-bert", "--device", "cpu", "--quick", "--threads", "1",
                   "--out", str(out)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # the run's thread setting does not leak
    return json.loads(out.read_text())


def _finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_record_has_every_key(record):
    for key in ("device", "model", "batch_size", "ratios", "captum", "latency_ms", "step_ms", "peak_mem_mb",
                "ratio_stats", "step_ms_stats", "machine", "malloc_env", "targets"):
        assert key in record, key
    assert record["device"] == "cpu" and record["model"] == "tiny-bert" and record["batch_size"] == 16
    assert record["quick"] is True
    assert set(RATIO_KEYS) <= set(record["ratios"])
    assert set(CAPTUM_KEYS) <= set(record["captum"])
    assert set(record["latency_ms"]) == {"explorer_ga", "explorer_iga"}
    assert set(STEP_KEYS) <= set(record["step_ms"])


def test_numbers_are_sane(record):
    for k in RATIO_KEYS:
        assert _finite_positive(record["ratios"][k]), (k, record["ratios"][k])
        s = record["ratio_stats"][k]
        assert s["min"] <= s["median"] <= s["max"]
    for k, v in record["step_ms"].items():
        assert _finite_positive(v), (k, v)
    for k in ("ga_time_ratio", "iga_time_ratio"):
        assert _finite_positive(record["captum"][k])
    for v in record["latency_ms"].values():
        assert _finite_positive(v)
    for k, v in record["peak_mem_mb"].items():  # None only where the profiler could not tell
        assert v is None or (math.isfinite(v) and v >= 0), (k, v)
    assert record["peak_mem_mb"]["iga_all"] is None or record["peak_mem_mb"]["iga_all"] > 0


def test_native_matches_captum(record):
    assert record["captum"]["ga_max_rel_diff"] <= 1e-5
    assert record["captum"]["iga_max_rel_diff"] <= 1e-5


def test_table_and_targets(record):
    text = format_table(record)
    assert "vanilla step" in text and "cross-tuned" in text and "explorer" in text
    assert set(check_targets(record)) == {key for key, _, _ in GOALS} == set(record["targets"])
    for key, op, target in GOALS:
        t = record["targets"][key]
        assert t["met"] is COMPARISONS[op](t["value"], target), key  # judged with the goal's own comparison
        assert t["target"] == f"{op} {target:g}"


def test_check_targets_uses_each_goal_s_comparison():
    rec = {"ratios": {"a": 1.2, "b": 1.2}, "cpu": {"ratios": {"a": 0.9, "b": 2.0}}}
    at_most = check_targets(rec, goals=(("ratios.a", "<=", 1.0), ("ratios.b", "<=", 1.5)))
    at_least = check_targets(rec, goals=(("ratios.a", ">=", 1.0), ("ratios.b", ">=", 1.5)))
    assert (at_most["ratios.a"]["met"], at_most["ratios.a"]["met_cpu"]) == (False, True)
    assert (at_least["ratios.a"]["met"], at_least["ratios.a"]["met_cpu"]) == (True, False)
    assert (at_most["ratios.b"]["met"], at_least["ratios.b"]["met"]) == (True, False)
    missing = check_targets({"ratios": {"a": None}, "cpu": {"ratios": {"a": float("nan")}}},
                            goals=(("ratios.a", "<=", 1.0),))
    assert missing["ratios.a"]["met"] is False and missing["ratios.a"]["met_cpu"] is False


def test_steps_are_the_trainer_s_own():
    from addrop.core import algorithm
    from addrop.engine import training
    from addrop.experiments.bench import lengths, measure, steps

    assert steps.train_step is training.train_step and steps.drops_for is algorithm.drops_for
    assert measure.Stepper is steps.Stepper is lengths.Stepper  # the main table and the length sweep alike


def test_explorer_view_is_what_the_explorer_computes():
    from addrop.config import AttributionConfig
    from addrop.engine.models import load_model
    from addrop.experiments.bench.measure import explorer_view
    from addrop.studio.explore import draw_mask, explain

    loaded = load_model("tiny-bert", "cpu")
    sentence = "a quiet, moving film about two brothers"
    for method in ("ga", "iga"):
        cfg = AttributionConfig(method=method, steps=4)
        res, region, dropped = explorer_view(loaded, sentence, cfg, seed=3)
        expl = explain(loaded, sentence, cfg=cfg)
        mask = draw_mask(expl, cfg.p, cfg.q, seed=3)
        torch.testing.assert_close(res.scores, expl.attribution.scores, rtol=0, atol=0)
        assert torch.equal(region[:, 0], mask.region) and torch.equal(dropped[:, 0], mask.dropped)


def test_show_prints_a_saved_record_as_text_or_markdown(record, tmp_path, capsys):
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(record))
    assert cli.main(["bench", "--show", str(path)]) == 0
    text = capsys.readouterr().out.strip()
    assert text == format_table(record)  # the same table the measuring run printed
    assert cli.main(["bench", "--show", str(path), "--markdown"]) == 0
    md = capsys.readouterr().out.split("\n\n")  # the main table, then the length sweep's tables
    rows = [l for l in md[1].splitlines() if l.startswith("| ")]
    assert len(rows) == 1 + len(table_rows(record))  # header row + one per measure
    assert all(l.count(" | ") == len(HEAD) - 1 for l in rows)
    # a file that is not a record: a one-line error, exit 2
    (tmp_path / "bad.json").write_text('{"model": "x"}')
    assert cli.main(["bench", "--show", str(tmp_path / "bad.json")]) == 2
    assert cli.main(["bench", "--show", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "not a benchmark record" in err and "no such benchmark record" in err


def test_in_process_run_does_not_reexec(record):
    # called through cli.main inside pytest, the command must not replace this process: the record says whether
    # the allocator variables were there
    env = record["malloc_env"]
    assert set(MALLOC_ENV) <= set(env)
    # without the variables, the in-process run tunes glibc with mallopt() instead (Linux)
    assert env["set"] or env["mallopt_in_process"] or not sys.platform.startswith("linux")


def test_the_command_restarts_itself_once_with_the_allocator_variables(tmp_path):
    """`python -m addrop bench` re-executes itself with MALLOC_* set (glibc reads them at start-up only)."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = tmp_path / "b.json"
    done = subprocess.run([sys.executable, "-m", "addrop", "bench", "--quick", "--model", "tiny-bert", "--data",
                           "demo", "--out", str(out)], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert rec["malloc_env"]["set"] and rec["malloc_env"] == {**MALLOC_ENV, "set": True, "mallopt_in_process": False}


def test_max_rel_diff():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    assert max_rel_diff(a, a) == 0.0
    b = a.clone()
    b[0, 1] = 2.2
    assert max_rel_diff(b, a) == pytest.approx(0.1)


def test_bad_arguments():
    with pytest.raises(UserError, match="batch size must be >= 1"):
        run_bench("tiny-bert", "cpu", batch_size=0, settings=Settings.quick())
    with pytest.raises(UserError, match="threads must be an integer >= 1"):
        run_bench("tiny-bert", "cpu", threads=0, settings=Settings.quick())
    assert cli.main(["bench", "--model", "tiny-bert", "--out", "x.txt"]) == 2


def test_data_falls_back_to_the_demo_set(monkeypatch, tmp_path):
    from addrop.experiments.bench.measure import bench_data
    from addrop.engine.models import minilm_path
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
    monkeypatch.setenv("ADDROP_GLUE_DIR", str(tmp_path))  # a GLUE folder without SST-2
    source, spec, got, dev = bench_data(tok, n_batches=2, batch_size=4)
    assert source == "demo train" and len(got) == 2
    assert all(b["input_ids"].shape[0] == 4 and "labels" in b for b in got)
    with pytest.raises(UserError, match="SST-2 not found"):
        bench_data(tok, 1, 4, data="sst-2")


def test_the_trainer_comparison_is_in_the_record(record):
    from addrop.experiments.bench.trainers import KEYS, RATIOS

    tr = record["trainers"]
    assert tr["examples"] == 2 * 16 and tr["layout"] == "packed"  # quick: 2 batches of 16; the CPU packs
    assert set(tr["epoch_ms_stats"]) == set(KEYS)
    for name in RATIOS:
        assert _finite_positive(tr["ratios"][name]) and _finite_positive(tr["cpu_ratios"][name])
        s = tr["ratios_stats"][name]
        assert s["min"] <= s["median"] <= s["max"]
    assert record["trainer_ratios"] == tr["ratios"]
    assert "Trainer epoch" in format_table(record)


def test_the_headline_is_a_trimmed_mean_that_ignores_an_outlying_repeat():
    from addrop.experiments.bench.timing import stats, trimmed_mean

    assert trimmed_mean([1.0, 1.1, 1.2, 1.3, 9.0]) == pytest.approx(1.2)  # 9.0 (a slowed repeat) is cut
    assert trimmed_mean([2.0]) == 2.0 and trimmed_mean([1.0, 3.0]) == 2.0  # too few to cut: the mean
    s = stats([1.0, 1.1, 1.2, 1.3, 9.0])
    assert s["min"] <= s["trimmed"] <= s["max"] and s["median"] == 1.2


def test_steps_run_in_the_layout_a_run_uses(record):
    assert record["layout"] == "packed"  # tiny-bert on the CPU packs, as its runs do


def test_steps_run_in_the_precision_asked():
    """--precision bf16 runs the steps as a bf16 run does (engine.training's autocast): close to fp32, not equal."""
    from addrop.engine.models import clone_model, load_model
    from addrop.experiments.bench.steps import Stepper

    loaded = load_model("tiny-bert", "cpu", num_labels=2)
    g = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(1000, 2000, (4, 12), generator=g),
             "attention_mask": torch.ones(4, 12, dtype=torch.long), "labels": torch.tensor([0, 1, 0, 1])}
    losses = {}
    for p in ("fp32", "bf16"):
        stepper = Stepper(clone_model(loaded), 10, precision=p)
        losses[p] = [stepper.addrop_step(batch, stepper.acfg("ga", None)), stepper.train_step(batch)]
    assert losses["fp32"] != losses["bf16"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=5e-3)
    assert Settings().precision == "fp32"


def test_flops_per_step_follow_the_passes_each_step_makes(record):
    f = record["flops"]
    g = f["gflop"]
    assert set(STEP_KEYS) <= set(g) and all(_finite_positive(v) for v in g.values())
    # masks change no product: RD (no attribution) costs the vanilla step's FLOPs, exactly
    assert g["rd_all"] == g["rd_layer0"] == g["vanilla"]
    # AA adds a forward pass; GA adds that forward and a backward; IGA adds m - 1 scaled copies above that
    assert g["vanilla"] < g["aa_all"] < g["ga_all"] < g["iga_all"]
    assert g["ga_all"] < g["ga_reference_all"]  # the reference way computes the lower layers' backward per layer
    assert f["x_vanilla"]["vanilla"] == 1.0 and _finite_positive(f["matmul_gflop_per_s"])
    assert f["precision"] == record["settings"]["precision"]  # the rate is timed in the steps' precision
    for k, v in f["floor_ms"].items():
        assert _finite_positive(v) and _finite_positive(f["floor_share"][k]), k
    assert f["ratio_floor"]["vanilla"] == 1.0 and f["ratio_floor"]["rd_all"] == 1.0
    assert 1.0 < f["ratio_floor"]["aa_all"] < f["ratio_floor"]["ga_all"] < f["ratio_floor"]["iga_all"]


def test_the_flop_count_is_torch_s_own_flop_counter_s():
    from torch.utils.flop_counter import FlopCounterMode

    from addrop.engine.models import load_model
    from addrop.experiments.bench.flops import count_flops

    loaded = load_model("tiny-bert", "cpu")
    ids = torch.randint(5, 90, (3, 7))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0])}

    def step():  # forward and backward, no torch.autograd.grad (FlopCounterMode's module hooks refuse it)
        loaded.model.zero_grad(set_to_none=True)
        loaded.model(**batch).loss.backward()

    theirs = FlopCounterMode(display=False)
    with theirs:
        step()
    assert count_flops(step) == theirs.get_total_flops() > 0


def test_memory_measurement_prints_nothing_of_torch_s_profiler(capfd):
    from addrop.experiments.bench.timing import peak_memory_mb

    kept = torch.randn(1000)  # allocated before the profiler starts, freed inside it: torch warns about such blocks

    def fn():
        nonlocal kept
        kept = None
        return torch.randn(64, 64) @ torch.randn(64, 64)

    peak = peak_memory_mb({"x": fn}, torch.device("cpu"))
    err = capfd.readouterr().err
    assert "profiler_start" not in err and "CPUAllocator" not in err, err
    assert peak["x"] is None or peak["x"] >= 0
    print("after", file=sys.stderr)  # stderr works again afterwards
    assert "after" in capfd.readouterr().err
