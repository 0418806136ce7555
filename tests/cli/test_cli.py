"""`python -m addrop attribute`: the .npz it writes equals the library's own result, and bad input is one line."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from addrop.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
TEXT, PAIR = "the film was a delight from start to end", "i enjoyed it"


def _run(capsys, *argv):
    code = main(["attribute", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _direct(model, text, pair, seed, **cfg_kw):
    """What the CLI should have computed, through the library."""
    from addrop.core.attribution import attribute
    from addrop.engine.batching import encode_example
    from addrop.config import AttributionConfig
    from addrop.core.masking import make_drops
    from addrop.engine.models import load_model

    loaded = load_model(model, "cpu", num_labels=2, seed=seed)
    batch, tokens, _ = encode_example(loaded, text, pair)
    cfg = AttributionConfig(seed=seed, **cfg_kw)
    res = attribute(loaded, batch, cfg)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    region, dropped = make_drops(res.scores, res.key_mask, cfg.p, cfg.q, cfg.mode, cfg.ties, cfg.fixed_rate, gen)
    return tokens, res, region[:, 0], dropped[:, 0], cfg


def test_attribute_round_trips_through_npz(tmp_path, capsys):
    out = tmp_path / "f.npz"
    code, stdout, err = _run(capsys, "--model", "tiny-bert", "--text", TEXT, "--pair", PAIR, "--out", str(out),
                             "--seed", "3", "--p", "0.4", "--q", "0.5", "--device", "cpu")
    assert code == 0, err
    assert out.is_file() and str(out) in stdout and "predicted class" in stdout
    tokens, res, region, dropped, cfg = _direct("tiny-bert", TEXT, PAIR, 3, p=0.4, q=0.5)
    with np.load(out) as z:
        assert set(z.files) >= {"tokens", "layers", "attention", "attribution", "region", "dropped", "logits"}
        L, H, T = 2, 4, len(tokens)
        assert z["tokens"].tolist() == tokens and tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
        assert z["layers"].tolist() == [0, 1]
        for key in ("attention", "attribution", "region", "dropped"):
            assert z[key].shape == (L, H, T, T), key
        assert z["dropped"].dtype == np.bool_ and z["region"].dtype == np.bool_
        assert not (z["dropped"] & ~z["region"]).any()
        np.testing.assert_array_equal(z["attention"], res.attention[:, 0].numpy())
        np.testing.assert_array_equal(z["attribution"], res.scores[:, 0].numpy())
        np.testing.assert_array_equal(z["region"], region.numpy())
        np.testing.assert_array_equal(z["dropped"], dropped.numpy())
        np.testing.assert_array_equal(z["logits"], res.logits[0].numpy())
        if "settings" in z.files:
            assert json.loads(str(z["settings"])) == cfg.to_dict()


@pytest.mark.parametrize("method", ["iga", "aa", "rd"])
def test_every_method_writes_a_file(tmp_path, capsys, method):
    out = tmp_path / f"{method}.npz"
    code, _, err = _run(capsys, "--model", "tiny-bert", "--text", TEXT, "--out", str(out), "--method", method,
                        "--steps", "3", "--device", "cpu")
    assert code == 0 and "Traceback" not in err, err
    tokens, res, region, dropped, _ = _direct("tiny-bert", TEXT, None, 0, method=method, steps=3)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["attribution"], res.scores[:, 0].numpy())
        np.testing.assert_array_equal(z["dropped"], dropped.numpy())


def test_layers_method_backend_and_label_flags(tmp_path, capsys):
    out = tmp_path / "one.npz"
    code, _, err = _run(capsys, "--model", "tiny-distilbert", "--text", TEXT, "--out", str(out), "--layers", "0",
                        "--method", "iga", "--backend", "captum", "--steps", "4", "--label", "1", "--device", "cpu")
    assert code == 0, err
    tokens, res, _, _, _ = _direct("tiny-distilbert", TEXT, None, 0, layers="0", method="iga", steps=4,
                                   target="label", label=1)
    with np.load(out) as z:
        assert z["layers"].tolist() == [0]
        assert z["attention"].shape == (1, 2, len(tokens), len(tokens))
        assert z["attribution"].shape == z["attention"].shape
        a, b = z["attribution"], res.scores[:, 0].numpy()  # captum in the CLI vs native here
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


@pytest.mark.parametrize("argv,match", [
    (["--model", "tiny-bert", "--text", TEXT, "--p", "1.5"], "p must be strictly between 0 and 1"),
    (["--model", "tiny-bert", "--text", TEXT, "--q", "0"], "q must be strictly between 0 and 1"),
    (["--model", "no-such-model-xyz", "--text", TEXT], "cannot load 'no-such-model-xyz'"),
    (["--model", "tiny-bert", "--text", ""], "the text is empty"),
    (["--model", "tiny-bert", "--text", "   "], "the text is empty"),
    (["--model", "tiny-bert", "--text", TEXT, "--layers", "7"], "layer 7 is out of range"),
    (["--model", "tiny-bert", "--text", TEXT, "--steps", "0"], "steps must be an integer >= 1"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys, argv, match):
    out = tmp_path / "x.npz"
    code, stdout, err = _run(capsys, *argv, "--out", str(out), "--device", "cpu")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0] and "Traceback" not in err
    assert not out.exists() and stdout == ""


def test_out_must_be_npz(tmp_path, capsys):
    code, _, err = _run(capsys, "--model", "tiny-bert", "--text", TEXT, "--out", str(tmp_path / "x.txt"))
    assert code == 2 and err.startswith("error: --out must name a .npz file") and "Traceback" not in err


def _attribute_subparser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["attribute"]


def test_help_mentions_every_flag():
    flags = [s for a in _attribute_subparser()._actions for s in a.option_strings if s.startswith("--")]
    assert {"--model", "--text", "--pair", "--method", "--backend", "--layers", "--steps", "--target", "--label",
            "--p", "--q", "--mode", "--ties", "--seed", "--num-labels", "--device", "--out"} <= set(flags)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "addrop", "attribute", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for flag in flags:
        assert flag in done.stdout, flag
    # every flag also comes with its own help text
    assert all(a.help for a in _attribute_subparser()._actions)


def test_attribute_explains_the_trained_default_and_says_when_a_head_is_untrained(tmp_path, capsys):
    """The README's first example attributes a trained model's decision (minilm-demo, as the explorer's default for
    the demo data); a model with an untrained head gets a note after its result."""
    code, out, err = _run(capsys, "--text", "a gripping, beautifully shot film", "--out", str(tmp_path / "a.npz"),
                          "--device", "cpu")
    assert code == 0 and "predicted class 1" in out and "untrained" not in err  # 1: positive
    code, out, err = _run(capsys, "--model", "tiny-bert", "--text", TEXT, "--out", str(tmp_path / "b.npz"),
                          "--device", "cpu")
    assert code == 0 and "note: tiny-bert has an untrained classification head" in err
