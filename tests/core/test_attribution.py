"""Attribution (paper Eq. 2-5) checked against other computations of the same quantity: central finite
differences in float64 for GA, per-layer calls, the plain m-pass IGA loop, A * GA for one IGA step."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from addrop.core.objective import objective, real_only
from addrop.core.attribution import attribute, choose_path
from addrop.engine.batching import encode_example
from addrop.core.grouping import worth_grouping
from addrop.config import AttributionConfig
from addrop.errors import UserError
from addrop.core.passes import model_inputs

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("tiny-bert", "tiny-roberta", "tiny-electra", "tiny-distilbert")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max abs difference relative to the largest entry of b."""
    return ((a - b).abs().max() / b.abs().max()).item()


def _two(loaded, make_batch, sample_texts):
    """A padded batch of 2 with different lengths."""
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts[:2], pairs[:2])
    lengths = batch["attention_mask"].sum(1)
    assert lengths[0] != lengths[1]
    return batch


# ------------------------------------------------------------------------------------------ GA vs finite differences


def _perturbed_objective(loaded, inputs, target, layer, pos, eps):
    """F_c with A[layer][pos] += eps, the change made at the layer's probe (post-softmax probabilities)."""

    def hook(module, args, out):
        out = out.clone()
        out[pos] += eps
        return out

    handle = loaded.ctrl.probes[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return objective(loaded.model(**inputs).logits, target).item()
    finally:
        handle.remove()


def _positions(scores_l: torch.Tensor, key_mask: torch.Tensor, k=3):
    """The k largest |scores| (informative), a pad key, a zero-gradient row and a fixed interior position."""
    flat = scores_l.abs().flatten().topk(k).indices
    pos = [tuple(int(x) for x in torch.unravel_index(i, scores_l.shape)) for i in flat]
    B, H, T, _ = scores_l.shape
    n0 = int(key_mask[0].sum())
    if n0 < T:
        pos.append((0, H - 1, 0, T - 1))  # a pad key of a real query row
    pos.append((1, 0, 1, 2))
    pos.append((B - 1, H // 2, T - 1, 0))
    return pos


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
@pytest.mark.parametrize("target", ["pseudo", "label"])
def test_ga_equals_central_finite_differences_in_float64(load, make_batch, sample_texts, name, target):
    loaded = load(name)
    loaded.model.double()
    batch = _two(loaded, make_batch, sample_texts)
    cfg = AttributionConfig(method="ga", target=target, label=1 if target == "label" else None)
    res = attribute(loaded, batch, cfg)
    assert res.scores.dtype == torch.float64
    if target == "label":
        assert (res.target == 1).all()
    inputs = model_inputs(loaded.model, batch)
    eps = 1e-3  # F is smooth in A; central differences are exact to O(eps^2) and far from cancellation here
    checked = 0
    for i, layer in enumerate(res.layers):
        s = res.scores[i]
        scale = s.abs().max().item()
        assert scale > 0
        for pos in _positions(s, res.key_mask):
            b, _, qi, kj = pos
            if not (res.key_mask[b, qi] and res.key_mask[b, kj]):
                assert s[pos].item() == 0.0  # pad positions are zeroed by design (real_only)
                continue
            fd = (_perturbed_objective(loaded, inputs, res.target, layer, pos, eps)
                  - _perturbed_objective(loaded, inputs, res.target, layer, pos, -eps)) / (2 * eps)
            ga = s[pos].item()
            assert abs(fd - ga) <= 1e-6 * abs(ga) + 1e-9 * scale, (layer, pos, fd, ga)
            checked += 1
    assert checked >= 2 * 5


def test_ga_regression_equals_finite_differences(load, make_batch, sample_texts):
    """num_labels=1: F is minus the squared error against the gold score (paper appendix), or the prediction."""
    loaded = load("tiny-bert", num_labels=1)
    loaded.model.double()
    batch = _two(loaded, make_batch, sample_texts)
    inputs = model_inputs(loaded.model, batch)
    eps = 1e-3
    for labels in (torch.tensor([0.7, -1.3], dtype=torch.float64), None):
        res = attribute(loaded, batch, AttributionConfig(method="ga"), labels=labels)
        target = res.target
        assert torch.isnan(target).all() == (labels is None)
        s = res.scores[0]
        for pos in _positions(s, res.key_mask, k=2):
            if not (res.key_mask[pos[0], pos[2]] and res.key_mask[pos[0], pos[3]]):
                assert s[pos].item() == 0.0  # pad positions are zeroed by design (real_only)
                continue
            fd = (_perturbed_objective(loaded, inputs, target, 0, pos, eps)
                  - _perturbed_objective(loaded, inputs, target, 0, pos, -eps)) / (2 * eps)
            assert abs(fd - s[pos].item()) <= 1e-6 * abs(fd) + 1e-9 * s.abs().max().item(), (pos, fd)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert", "minilm"])
def test_ga_one_call_equals_per_layer_calls(load, minilm, make_batch, sample_texts, name):
    loaded = minilm if name == "minilm" else load(name)
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    full = attribute(loaded, batch, AttributionConfig(method="ga"))
    assert full.layers == list(range(loaded.num_layers))
    for i, l in enumerate(full.layers):
        one = attribute(loaded, batch, AttributionConfig(method="ga", layers=(l,)))
        assert one.layers == [l] and one.scores.shape[0] == 1
        assert torch.equal(one.attention[0], full.attention[i])
        assert _rel(one.scores[0], full.scores[i]) <= 1e-6
    # negative indices count from the top and select the same layer
    top = attribute(loaded, batch, AttributionConfig(method="ga", layers=(-1,)))
    assert top.layers == [loaded.num_layers - 1]
    assert _rel(top.scores[0], full.scores[-1]) <= 1e-6


# ------------------------------------------------------------------------------------------ IGA vs the m-pass loop


def _iga_loop(loaded, batch, layer, m, target):
    """Eq. 3 written out: A/m * sum_{k=1..m} dF_c(k/m A)/dA, one unbatched forward/backward per step."""
    model, ctrl = loaded.model, loaded.ctrl
    inputs = model_inputs(model, batch)
    B = batch["input_ids"].shape[0]
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), ctrl.pass_settings(record=[layer]) as s:
            model(**inputs)
            A = s.probs[layer].clone()
        total = torch.zeros_like(A)
        for k in range(1, m + 1):
            scale = torch.full((B,), k / m, dtype=A.dtype)
            with torch.enable_grad(), ctrl.pass_settings(record=[layer], scale={layer: scale}) as s:
                logits = model(**inputs).logits
                (g,) = torch.autograd.grad(objective(logits, target), [s.probs[layer]])
            total += g
    finally:
        model.train(was)
    return real_only((A * total / m)[None], batch["attention_mask"])[0]  # pads zeroed, as attribute() does


@pytest.fixture
def iga_model(request, load, albert):
    return albert if request.param == "albert" else load(request.param)


@pytest.mark.parametrize("iga_model", TINY + ("albert",), indirect=True)
def test_batched_iga_equals_the_m_pass_loop(iga_model, make_batch, sample_texts):
    loaded = iga_model
    batch = _two(loaded, make_batch, sample_texts)
    m = 7  # not a multiple of the chunk sizes below: the last chunk is partial
    # one padded pass, as the loop does (the other paths: tested below)
    results = {chunk: attribute(loaded, batch, AttributionConfig(method="iga", steps=m, iga_chunk=chunk,
                                                                 path="padded"))
               for chunk in (0, 1, 3)}
    assert {r.path for r in results.values()} == {"padded"}
    ref = results[0]
    assert ref.layers == list(range(loaded.num_layers))
    for chunk in (1, 3):
        assert _rel(results[chunk].scores, ref.scores) <= 1e-5, chunk
        assert torch.equal(results[chunk].attention, ref.attention)
    for i, layer in enumerate(ref.layers):
        loop = _iga_loop(loaded, batch, layer, m, ref.target)
        assert torch.equal(ref.attention[i], loaded_attention(loaded, batch, layer))
        assert _rel(ref.scores[i], loop) <= 1e-5, layer
    # pads: padded query rows and keys of the shorter example carry (near) zero attention and so (near) zero IGA
    short = int(batch["attention_mask"].sum(1).argmin())
    n = int(batch["attention_mask"][short].sum())
    assert ref.scores[:, short, :, :n, n:].abs().max().item() <= 1e-6 * ref.scores.abs().max().item()


def loaded_attention(loaded, batch, layer):
    with torch.no_grad(), loaded.ctrl.pass_settings(record=[layer]) as s:
        loaded.model(**model_inputs(loaded.model, batch))
        return real_only(s.probs[layer][None], batch["attention_mask"])[0]


def test_iga_loop_on_minilm_for_a_middle_and_top_layer(minilm, make_batch, sample_texts):
    batch = _two(minilm, make_batch, sample_texts)
    res = attribute(minilm, batch, AttributionConfig(method="iga", steps=4, layers=(2, 5), path="padded"))
    for i, layer in enumerate((2, 5)):
        assert _rel(res.scores[i], _iga_loop(minilm, batch, layer, 4, res.target)) <= 1e-5


def _query_rows(loaded, layer):
    """Hook the query projection of `layer`: the list it fills with the rows of every input it sees."""
    seen = []
    query = loaded.model.base_model.encoder.layer[layer].attention.self.query
    return seen, query.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
@pytest.mark.parametrize("path,mode", [("padded", "eval"), ("rows", "eval"), ("padded", "train")])
def test_iga_sharing_the_scaled_layers_probabilities_equals_expanding_its_input(load, make_batch, sample_texts,
                                                                                 name, path, mode, monkeypatch):
    """Where the model allows it (`can_share`), IGA's copies share the scaled layer's Q, K, V and softmax, not only
    the layers below: the same scores, attention, logits and target as repeating the layer's input (padded and
    packed rows; a train-mode pass draws the same dropout either way), and the query projection of layer 0
    sees the batch's rows only, its scaled passes included."""
    loaded = load(name)
    assert loaded.ctrl.can_share and loaded.ctrl.can_expand
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts + ("ok", "a fine film"), pairs + ("no", "yes it was"))
    cfg = AttributionConfig(method="iga", steps=7, iga_chunk=3, path=path, attribution_pass=mode)
    res = {}
    for share in (True, False):
        monkeypatch.setattr(loaded.ctrl, "can_share", share)
        seen, hook = _query_rows(loaded, 0)
        torch.manual_seed(0)
        try:
            res[share] = attribute(loaded, batch, cfg)
        finally:
            hook.remove()
        # layer 0 runs once per pass; only its own scaled copies could repeat it: never where they share it
        assert (len(set(seen)) == 1) == share, (share, seen)
    shared, expanded = res[True], res[False]
    assert shared.path == expanded.path == path
    assert _rel(shared.scores, expanded.scores) <= 1e-5 and torch.equal(shared.attention, expanded.attention)
    assert (shared.logits - expanded.logits).abs().max().item() <= 1e-6
    assert torch.equal(shared.target, expanded.target)


def test_iga_falls_back_where_the_layer_cannot_share(load, albert, make_batch, sample_texts):
    """DistilBERT adds the residual outside any module that could unfold the copies, ALBERT has no per-layer
    module list: no sharing (a request is refused), and IGA still equals the m-pass loop there (tested above)."""
    distil = load("tiny-distilbert")
    assert not distil.ctrl.can_share and distil.ctrl.can_expand
    assert not albert.ctrl.can_share and not albert.ctrl.can_expand
    for loaded in (distil, albert):
        with pytest.raises(ValueError, match="can_share"):
            with loaded.ctrl.pass_settings(share={0: 2}):
                pass
    batch = _two(distil, make_batch, sample_texts)
    res = attribute(distil, batch, AttributionConfig(method="iga", steps=3, layers=(0,), path="padded"))
    assert _rel(res.scores[0], _iga_loop(distil, batch, 0, 3, res.target)) <= 1e-5


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
def test_iga_with_one_step_is_attention_times_ga(load, make_batch, sample_texts, name):
    loaded = load(name)
    batch = _two(loaded, make_batch, sample_texts)
    ga = attribute(loaded, batch, AttributionConfig(method="ga"))
    iga = attribute(loaded, batch, AttributionConfig(method="iga", steps=1))
    assert torch.equal(iga.target, ga.target)
    assert _rel(iga.scores, ga.attention * ga.scores) <= 1e-6


@pytest.mark.parametrize("name", TINY + ("minilm",))
@pytest.mark.parametrize("method", ["ga", "iga"])
def test_cls_cut_of_the_top_layer_changes_no_score(load, minilm, make_batch, sample_texts, name, method, monkeypatch):
    """Attribution passes compute the top layer at the first token only: the same scores (the other rows have zero
    gradient either way), attention, logits and target as passes over every row."""
    loaded = minilm if name == "minilm" else load(name)
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    cfg = AttributionConfig(method=method, steps=4, path="padded")  # the packed paths need the cut: one path for both
    cut = attribute(loaded, batch, cfg)
    monkeypatch.setattr(loaded.ctrl, "can_cls_only", False)
    full = attribute(loaded, batch, cfg)
    assert _rel(cut.scores, full.scores) <= 1e-5 and _rel(cut.attention, full.attention) <= 1e-6
    assert (cut.logits - full.logits).abs().max().item() <= 1e-5 and torch.equal(cut.target, full.target)
    top = full.scores[-1]  # rows other than the first have zero gradient in the top layer
    assert top[:, :, 1:].abs().max().item() == 0.0 and top[:, :, 0].abs().max().item() > 0


@pytest.mark.parametrize("name,pack_tokens", [(n, 512) for n in TINY + ("minilm",)] + [("tiny-roberta", 12)])
@pytest.mark.parametrize("method", ["ga", "aa"])
def test_packed_pass_equals_one_padded_pass(load, minilm, make_batch, sample_texts, name, pack_tokens, method):
    """GA and AA of a padded CPU batch run as one packed sequence (block-diagonal mask, positions restarting per
    example; several when the batch has more than pack_tokens real tokens): the same attention, scores, logits
    and target as one padded pass over the batch, pairs included."""
    from addrop.core.packing import groups

    loaded = minilm if name == "minilm" else load(name)
    assert loaded.ctrl.can_pack
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    assert worth_grouping(batch["attention_mask"].bool(), 1)
    packed = attribute(loaded, batch, AttributionConfig(method=method, path="packed"), pack_tokens=pack_tokens)
    assert packed.path == "packed"
    n = batch["attention_mask"].sum(1)
    assert len(groups(n, pack_tokens)) == (1 if pack_tokens == 512 else 3)
    whole = attribute(loaded, batch, AttributionConfig(method=method, path="padded"))
    assert whole.path == "padded"
    assert _rel(packed.scores, whole.scores) <= 1e-5 and _rel(packed.attention, whole.attention) <= 1e-5
    assert (packed.logits - whole.logits).abs().max().item() <= 1e-5 and torch.equal(packed.target, whole.target)
    assert packed.scores.shape == whole.scores.shape


@pytest.mark.parametrize("name", TINY + ("minilm",))
@pytest.mark.parametrize("method", ["ga", "aa", "iga"])
def test_rows_pass_equals_one_padded_pass(load, minilm, make_batch, sample_texts, name, method):
    """GA, AA and IGA of a padded CPU batch packed into rows of its own width (packing.RowPacking, as training
    packs; IGA's copies repeated per row): the same attention, scores, logits and target as one padded pass,
    pairs included. auto picks the rows path for them."""
    from addrop.core.packing import RowPacking

    loaded = minilm if name == "minilm" else load(name)
    texts, pairs = sample_texts
    texts, pairs = texts + ("ok", "a fine film"), pairs + ("no", "yes it was")
    batch = make_batch(loaded, texts, pairs)
    assert RowPacking(batch["attention_mask"]).rows < len(texts)  # some examples share a row
    cfg = AttributionConfig(method=method, steps=4)
    rows = attribute(loaded, batch, cfg)
    assert rows.path == "rows"  # auto
    whole = attribute(loaded, batch, replace(cfg, path="padded"))
    assert _rel(rows.scores, whole.scores) <= 1e-5 and _rel(rows.attention, whole.attention) <= 1e-5
    assert (rows.logits - whole.logits).abs().max().item() <= 1e-5 and torch.equal(rows.target, whole.target)
    assert rows.scores.shape == whole.scores.shape


def test_no_packing_without_the_top_layer_cut(load, make_batch, sample_texts, monkeypatch):
    loaded = load("tiny-roberta")  # RoBERTa positions count from padding_idx + 1: found at install
    assert loaded.ctrl.pack_offset == loaded.model.config.pad_token_id + 1
    monkeypatch.setattr(loaded.ctrl, "can_cls_only", False)
    assert not loaded.ctrl.can_pack


# ------------------------------------------------------------------------------------------ AA, RD, modes, targets


def test_aa_is_the_attention_and_rd_is_seeded_uniform(load, make_batch, sample_texts):
    loaded = load("tiny-bert")
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    aa = attribute(loaded, batch, AttributionConfig(method="aa"))
    ga = attribute(loaded, batch, AttributionConfig(method="ga"))
    assert torch.equal(aa.scores, aa.attention) and torch.equal(aa.attention, ga.attention)
    assert torch.equal(aa.logits, ga.logits) and torch.equal(aa.target, ga.target)
    rd = [attribute(loaded, batch, AttributionConfig(method="rd"), generator=torch.Generator().manual_seed(s))
          for s in (4, 4, 5)]
    assert rd[0].scores.shape == aa.scores.shape
    assert torch.equal(rd[0].scores, rd[1].scores) and not torch.equal(rd[0].scores, rd[2].scores)
    assert rd[0].scores.min() >= 0 and rd[0].scores.max() < 1


@pytest.mark.parametrize("method,backend", [("ga", "native"), ("iga", "native"), ("aa", "native"), ("rd", "native"),
                                            ("ga", "captum"), ("iga", "captum")])
def test_training_mode_is_restored_and_attribution_runs_without_dropout(load, make_batch, sample_texts, method,
                                                                         backend):
    loaded = load("tiny-bert")
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    cfg = AttributionConfig(method=method, backend=backend, steps=3)
    results = {}
    for training in (True, False):
        loaded.model.train(training)
        gen = torch.Generator().manual_seed(0)
        results[training] = attribute(loaded, batch, cfg, generator=gen)
        assert loaded.model.training is training
        assert all(m.training is training for m in loaded.model.modules())
    # in train mode dropout would make the scores random: equal scores show the passes ran in eval mode
    assert torch.equal(results[True].scores, results[False].scores)
    assert torch.equal(results[True].logits, results[False].logits)


def test_gold_target_uses_labels_and_pseudo_is_the_argmax(load, make_batch, sample_texts):
    loaded = load("tiny-bert", num_labels=3)
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    pseudo = attribute(loaded, batch, AttributionConfig(method="ga"))
    assert torch.equal(pseudo.target, pseudo.logits.argmax(-1))
    labels = torch.tensor([2, 0, 1])
    gold = attribute(loaded, dict(batch, labels=labels), AttributionConfig(method="ga", target="gold"))
    assert torch.equal(gold.target, labels)
    # attributing each class separately and the gold one per example agree example by example
    per_class = {c: attribute(loaded, batch, AttributionConfig(method="ga", target="label", label=c)) for c in range(3)}
    for b, c in enumerate(labels.tolist()):
        assert torch.equal(gold.scores[:, b], per_class[c].scores[:, b])
    with pytest.raises(UserError, match="gold"):
        attribute(loaded, batch, AttributionConfig(method="ga", target="gold"))
    with pytest.raises(UserError, match="out of range"):
        attribute(loaded, batch, AttributionConfig(method="ga", target="label", label=3))


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("kw,match", [
    (dict(p=0.0), "p must be strictly between 0 and 1"),
    (dict(p=1.0), "p must be strictly between 0 and 1"),
    (dict(p=1.5), "p must be strictly between 0 and 1"),
    (dict(p=float("nan")), "p must be strictly between 0 and 1"),
    (dict(q=0.0), "q must be strictly between 0 and 1"),
    (dict(q=-0.2), "q must be strictly between 0 and 1"),
    (dict(q=2), "q must be strictly between 0 and 1"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=2.5), "steps must be an integer >= 1"),
    (dict(method="shap"), "unknown attribution method 'shap'"),
    (dict(backend="jax"), "unknown backend"),
    (dict(method="aa", backend="captum"), "captum backend computes ga and iga only"),
    (dict(target="label"), "needs a label index"),
    (dict(mode="middle"), "unknown mode"),
    (dict(ties="loose"), "unknown ties rule"),
    (dict(layers="0,x"), "layers must be 'all' or comma-separated integers"),
    (dict(iga_chunk=-1), "iga_chunk must be >= 0"),
])
def test_bad_attribution_config_is_a_user_error(kw, match):
    with pytest.raises(UserError, match=match):
        AttributionConfig(**kw)


@pytest.mark.parametrize("layers", [(2,), (0, 5), (-3,)])
@pytest.mark.parametrize("backend", ["native", "captum"])
def test_layers_out_of_range_is_a_user_error(load, make_batch, layers, backend):
    loaded = load("tiny-bert")  # 2 layers
    batch = make_batch(loaded, "a sentence")
    with pytest.raises(UserError, match=r"out of range: this model has 2 layers \(0\.\.1\)"):
        attribute(loaded, batch, AttributionConfig(layers=layers, backend=backend))


def test_encode_checks_empty_text_and_reports_truncation(load):
    loaded = load("tiny-bert")
    for text in ("", "   "):
        with pytest.raises(UserError, match="empty"):
            encode_example(loaded, text)
    batch, tokens, truncated = encode_example(loaded, "one two three four five six", "  ")  # a blank pair is no pair
    assert not truncated and tokens[0] == "[CLS]" and tokens.count("[SEP]") == 1
    assert batch["input_ids"].shape == (1, len(tokens))
    batch, tokens, truncated = encode_example(loaded, "one two three four five six", max_length=4)
    assert truncated and len(tokens) == 4


@pytest.mark.parametrize("method,backend", [("ga", "native"), ("iga", "native"), ("aa", "native"), ("rd", "native"),
                                            ("ga", "captum"), ("iga", "captum")])
def test_results_carry_no_autograd_graph(load, make_batch, method, backend):
    """Callers turn the tensors into numpy (the CLI, the app): none may require grad or hold a graph."""
    loaded = load("tiny-bert")
    batch = make_batch(loaded, ["a sentence", "another, longer sentence"])
    res = attribute(loaded, batch, AttributionConfig(method=method, backend=backend, steps=2))
    for name in ("attention", "scores", "logits", "target"):
        t = getattr(res, name)
        assert not t.requires_grad and t.grad_fn is None, name
        t.numpy()


@pytest.mark.parametrize("method", ["ga", "iga", "aa", "rd"])
@pytest.mark.parametrize("path", ["by-length", "per-example"])
def test_length_split_equals_one_padded_pass(load, method, path):
    """A padded batch attributed in length-sorted sub-batches (of 4, or of one example): the same numbers as one
    padded pass (RD: the same attention; its scores are random)."""
    loaded = load("tiny-bert")
    texts = ["a", "a fine film", "the plot drags on and on and on", "ok", "what a waste of two hours", "yes", "no way"]
    batch = dict(loaded.tokenizer(texts, padding=True, return_tensors="pt"))
    split = attribute(loaded, batch, AttributionConfig(method=method, steps=3, path=path))
    whole = attribute(loaded, batch, AttributionConfig(method=method, steps=3, path="padded"))
    assert (split.path, whole.path) == (path, "padded")
    if method != "rd":
        assert _rel(split.scores, whole.scores) <= 1e-5
    assert _rel(split.attention, whole.attention) <= 1e-5
    assert torch.allclose(split.logits, whole.logits, atol=1e-6) and torch.equal(split.target, whole.target)


def test_auto_path_per_method_and_device(load, minilm, make_batch, sample_texts):
    """auto: GA, AA and IGA packed in rows where the model allows it (else by-length, IGA per example); RD and
    unpadded batches in one padded pass. An explicit path the method or model cannot take is a UserError."""
    texts, pairs = sample_texts
    for loaded in (minilm, load("tiny-bert")):
        batch = make_batch(loaded, texts, pairs)
        km = batch["attention_mask"].bool()
        for method, want in (("ga", "rows"), ("aa", "rows"), ("iga", "rows"), ("rd", "padded")):
            assert choose_path(loaded, AttributionConfig(method=method), km) == want, method
        full = torch.ones_like(km)  # no padding: nothing to gain from splitting
        assert choose_path(loaded, AttributionConfig(method="ga"), full) == "padded"
    with pytest.raises(UserError, match="packed path computes ga and aa only"):
        choose_path(minilm, AttributionConfig(method="iga", path="packed"), km)
    with pytest.raises(UserError, match="unknown attribution path"):
        AttributionConfig(path="sideways")


def test_auto_falls_back_to_by_length_without_packing(load, make_batch, sample_texts, monkeypatch):
    loaded = load("tiny-bert")
    monkeypatch.setattr(loaded.ctrl, "pack_offset", None)  # a model that cannot be packed
    texts = ["a", "a fine film", "the plot drags on and on and on", "ok", "what a waste of two hours", "yes"]
    km = make_batch(loaded, texts)["attention_mask"].bool()
    assert choose_path(loaded, AttributionConfig(method="ga"), km) == "by-length"
    with pytest.raises(UserError, match="cannot run packed passes"):
        choose_path(loaded, AttributionConfig(method="ga", path="packed"), km)
