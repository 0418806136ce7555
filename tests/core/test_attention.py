"""The addrop attention function and its controller, checked against transformers' own eager path and against
other ways of computing the same thing (padding vs dropping a key, renormalised softmax, another thread, a copy)."""
from __future__ import annotations

import copy
import threading

import pytest
import torch

from addrop.core.attention import Controller, IMPL, SUPPORTED_FAMILIES, install
from addrop.errors import UnsupportedModelError, UserError
from addrop.engine.models import clone_model
from addrop.core.passes import model_inputs

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_NAMES = ("tiny-bert", "tiny-roberta", "tiny-electra", "tiny-distilbert", "minilm")


@pytest.fixture
def any_model(request, load, minilm):
    """Parametrised by name: minilm is the shared module fixture, tiny models are fresh."""
    return minilm if request.param == "minilm" else load(request.param)


def _logits(loaded, batch, **settings):
    inputs = model_inputs(loaded.model, batch)
    with torch.no_grad(), loaded.ctrl.pass_settings(**settings):
        return loaded.model(**inputs).logits


def _hidden(loaded, batch, **settings):
    inputs = model_inputs(loaded.model, batch)
    with torch.no_grad(), loaded.ctrl.pass_settings(**settings):
        out = loaded.model(**inputs, output_hidden_states=True)
    return out.logits, out.hidden_states[-1]


@pytest.mark.parametrize("any_model", ALL_NAMES, indirect=True)
def test_no_mask_equals_stock_eager(any_model, make_batch, sample_texts):
    loaded, model = any_model, any_model.model
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    assert batch["attention_mask"].sum(1).unique().numel() == 3  # three different lengths: padding is exercised
    ours = _logits(loaded, batch)
    try:
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        stock = _logits(loaded, batch)
    finally:
        model.set_attn_implementation(IMPL)
    assert model.config._attn_implementation == IMPL
    again = _logits(loaded, batch)
    assert (ours - stock).abs().max().item() <= 1e-6
    assert torch.equal(ours, again)
    # and the addrop function is really in the loop again: every layer reports its probabilities
    with torch.no_grad(), loaded.ctrl.pass_settings(record=range(loaded.num_layers)) as s:
        model(**model_inputs(model, batch))
        assert sorted(s.probs) == list(range(loaded.num_layers))


@pytest.mark.parametrize("any_model", ALL_NAMES, indirect=True)
def test_padding_is_respected(any_model, make_batch, sample_texts):
    """A padded example gives what it gives alone: the addrop mask function is registered (without it, pads
    would be attended to). The negative control shows the check can fail: ignoring the pads moves the output."""
    loaded = any_model
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    logits, hidden = _hidden(loaded, batch)
    unmasked = dict(batch, attention_mask=torch.ones_like(batch["attention_mask"]))
    _, hidden_ignoring_pads = _hidden(loaded, unmasked)
    for i in range(3):
        alone = make_batch(loaded, texts[i], pairs[i])
        n = alone["input_ids"].shape[1]
        assert torch.equal(batch["input_ids"][i, :n], alone["input_ids"][0])
        l1, h1 = _hidden(loaded, alone)
        assert (logits[i] - l1[0]).abs().max().item() <= 1e-5
        assert (hidden[i, :n] - h1[0]).abs().max().item() <= 1e-5
        if n < batch["input_ids"].shape[1]:  # a padded example
            assert (hidden_ignoring_pads[i, :n] - h1[0]).abs().max().item() > 1e-3


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-distilbert"])
def test_dropping_a_key_everywhere_equals_padding_it(load, make_batch, sample_texts, name):
    """drops of key j in every row of every layer == attention_mask[j] = 0 (two routes to the same softmax)."""
    loaded = load(name)
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    B, T = batch["input_ids"].shape
    H = loaded.num_heads
    j = 2
    drop = torch.zeros(B, H, T, T, dtype=torch.bool)
    drop[..., j] = True
    l_drop, h_drop = _hidden(loaded, batch, drops={l: drop for l in range(loaded.num_layers)})
    masked = dict(batch, attention_mask=batch["attention_mask"].clone())
    masked["attention_mask"][:, j] = 0
    l_pad, h_pad = _hidden(loaded, masked)
    other = [t for t in range(T) if t != j]
    assert (l_drop - l_pad).abs().max().item() <= 1e-6
    assert (h_drop[:, other] - h_pad[:, other]).abs().max().item() <= 1e-5
    l_plain = _logits(loaded, batch)
    assert (l_drop - l_plain).abs().max().item() > 1e-7  # and it is not a no-op


def test_drops_renormalise_the_softmax_in_their_layer_only(load, make_batch, sample_texts):
    loaded = load("tiny-bert")
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    inputs = model_inputs(loaded.model, batch)
    keys = batch["attention_mask"].bool()[:, None, None, :]
    with torch.no_grad(), loaded.ctrl.pass_settings(record=[0, 1]) as s:
        loaded.model(**inputs)
        plain = {l: a.clone() for l, a in s.probs.items()}
    gen = torch.Generator().manual_seed(0)
    drop = (torch.rand(plain[0].shape, generator=gen) < 0.5) & keys
    drop[..., 0] = False  # every row keeps a real key
    with torch.no_grad(), loaded.ctrl.pass_settings(record=[0, 1], drops={0: drop}) as s:
        loaded.model(**inputs)
        dropped = {l: a.clone() for l, a in s.probs.items()}
    # layer 0 sees the same inputs: its probabilities are the plain ones with the dropped keys removed, renormalised
    kept = plain[0].masked_fill(drop, 0.0)
    expected = kept / kept.sum(-1, keepdim=True)
    assert (dropped[0] - expected).abs().max().item() <= 1e-6
    assert (dropped[0][drop] == 0).all()
    assert (dropped[1] - plain[1]).abs().max().item() > 1e-6  # the next layer sees different hidden states
    # drops given for layer 1 only leave layer 0 untouched
    with torch.no_grad(), loaded.ctrl.pass_settings(record=[0, 1], drops={1: drop}) as s:
        loaded.model(**inputs)
        assert torch.equal(s.probs[0], plain[0])
        assert (s.probs[1][drop] == 0).all()


def test_heavy_drops_in_layer_0_change_the_logits(minilm, make_batch, sample_texts):
    texts, pairs = sample_texts
    batch = make_batch(minilm, texts, pairs)
    B, T = batch["input_ids"].shape
    plain = _logits(minilm, batch)
    nothing = torch.zeros(B, minilm.num_heads, T, T, dtype=torch.bool)
    assert torch.equal(_logits(minilm, batch, drops={0: nothing}), plain)  # an empty mask is a no-op
    heavy = torch.rand(B, minilm.num_heads, T, T, generator=torch.Generator().manual_seed(0)) < 0.8
    heavy[..., 0] = False
    changed = _logits(minilm, batch, drops={0: heavy})
    assert torch.isfinite(changed).all()
    assert (changed - plain).abs().max().item() > 1e-3
    assert torch.equal(_logits(minilm, batch), plain)  # settings end with the context


def test_pass_settings_are_cleared_on_exit_even_after_an_error(load, make_batch):
    loaded = load("tiny-bert")
    ctrl = loaded.ctrl
    with pytest.raises(RuntimeError, match="boom"):
        with ctrl.pass_settings(drops={0: torch.ones(1, 1, 1, 1, dtype=torch.bool)}, record=[0], expand={0: 3},
                               share={1: 2}):
            raise RuntimeError("boom")
    s = ctrl.state
    assert not s.drops and not s.record and not s.scale and not s.gate and not s.expand and not s.probs
    assert not s.share


def test_settings_are_thread_local(load, make_batch, sample_texts):
    """Masks set by one session (thread) are not seen by a forward pass in another thread on the same model."""
    loaded = load("tiny-bert")
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    inputs = model_inputs(loaded.model, batch)
    B, T = batch["input_ids"].shape
    plain = _logits(loaded, batch)
    heavy = torch.ones(B, loaded.num_heads, T, T, dtype=torch.bool)
    heavy[..., 0] = False  # only [CLS] left as a key: a very different output
    settings_made, other_done = threading.Event(), threading.Event()
    out: dict = {}

    def session_a():
        try:
            with torch.no_grad(), loaded.ctrl.pass_settings(drops={0: heavy, 1: heavy}, record=[0]) as s:
                settings_made.set()
                assert other_done.wait(30)
                out["a"] = loaded.model(**inputs).logits
                out["a_probs"] = sorted(s.probs)
        except BaseException as e:  # noqa: BLE001 - reported below
            out["error"] = e
            settings_made.set()

    def session_b():
        with torch.no_grad(), loaded.ctrl.pass_settings(record=[1]) as s:
            out["b"] = loaded.model(**inputs).logits
            out["b_probs"] = sorted(s.probs)

    ta = threading.Thread(target=session_a)
    ta.start()
    assert settings_made.wait(30)
    tb = threading.Thread(target=session_b)  # runs while A's settings are live
    tb.start()
    tb.join(30)
    # and the main thread sees no settings either
    assert not loaded.ctrl.state.drops and not loaded.ctrl.state.record
    main = _logits(loaded, batch)
    other_done.set()
    ta.join(30)
    assert "error" not in out, out.get("error")
    assert torch.equal(out["b"], plain) and torch.equal(main, plain)
    assert (out["a"] - plain).abs().max().item() > 1e-6
    assert out["a_probs"] == [0] and out["b_probs"] == [1]


def test_deepcopy_has_an_independent_controller(load, make_batch, sample_texts):
    loaded = load("tiny-bert")
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    inputs = model_inputs(loaded.model, batch)
    B, T = batch["input_ids"].shape
    heavy = torch.ones(B, loaded.num_heads, T, T, dtype=torch.bool)
    heavy[..., 0] = False
    plain = _logits(loaded, batch)
    with loaded.ctrl.pass_settings(drops={0: heavy}):  # state live in the original while it is copied
        twin = copy.deepcopy(loaded.model)
    ctrl2 = twin.addrop
    assert isinstance(ctrl2, Controller) and ctrl2 is not loaded.ctrl
    assert not ctrl2.state.drops  # a copy starts with empty settings
    model_modules = [m for n, m in twin.named_modules() if not n.startswith("addrop")]
    assert all(getattr(m, "_addrop_ctrl", None) is ctrl2 for m in model_modules)
    assert twin.config._attn_implementation == IMPL
    with torch.no_grad():
        assert torch.equal(twin(**inputs).logits, plain)
        with ctrl2.pass_settings(drops={0: heavy, 1: heavy}, record=[0]) as s:
            changed = twin(**inputs).logits
            original = loaded.model(**inputs).logits  # the original does not see the copy's settings
            assert sorted(s.probs) == [0]
    assert (changed - plain).abs().max().item() > 1e-6
    assert torch.equal(original, plain)
    with torch.no_grad(), loaded.ctrl.pass_settings(drops={0: heavy, 1: heavy}):
        assert torch.equal(twin(**inputs).logits, plain)  # nor the copy the original's
    # clone_model is the same deepcopy wrapped in a LoadedModel
    clone = clone_model(loaded)
    assert clone.model is not loaded.model and clone.ctrl is not loaded.ctrl and clone.tokenizer is loaded.tokenizer
    assert torch.equal(_logits(clone, batch), plain)


def test_install_is_idempotent_and_keeps_state_dict(load):
    loaded = load("tiny-bert")
    assert install(loaded.model) is loaded.ctrl
    assert not any(k.startswith("addrop") for k in loaded.model.state_dict())  # the controller holds no weights


def _tiny(cls_cfg, cls_model, **extra):
    cfg = cls_cfg(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100,
                  **extra)
    return cls_model(cfg)


@pytest.mark.parametrize("family", ["mpnet", "deberta-v2"])
def test_install_refuses_a_model_without_the_attention_interface(family):
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, MPNetConfig, MPNetForSequenceClassification

    model = (_tiny(MPNetConfig, MPNetForSequenceClassification) if family == "mpnet"
             else _tiny(DebertaV2Config, DebertaV2ForSequenceClassification))
    with pytest.raises(UnsupportedModelError, match="supported families: " + ", ".join(SUPPORTED_FAMILIES)) as e:
        install(model)
    assert isinstance(e.value, UserError) and family in str(e.value) and "\n" not in str(e.value)
    # a failed install leaves nothing behind, so trying again fails again instead of returning a dead controller
    assert not isinstance(getattr(model, "addrop", None), Controller)
    assert not any(hasattr(m, "_addrop_ctrl") for m in model.modules())
    assert model.config._attn_implementation != IMPL
    with pytest.raises(UnsupportedModelError, match="does not route its attention"):
        install(model)


def test_albert_shared_layers_are_numbered_by_call_order(albert, make_batch, sample_texts):
    ctrl = albert.ctrl
    assert ctrl.num_layers == 3 and not ctrl.can_expand
    texts, pairs = sample_texts
    batch = make_batch(albert, texts, pairs)
    with torch.no_grad(), ctrl.pass_settings(record=range(3)) as s:
        ours = albert.model(**model_inputs(albert.model, batch)).logits
        assert sorted(s.probs) == [0, 1, 2]
        assert not torch.equal(s.probs[0], s.probs[1])
    try:
        albert.model.set_attn_implementation("eager")
        stock = _logits(albert, batch)
    finally:
        albert.model.set_attn_implementation(IMPL)
    assert (ours - stock).abs().max().item() <= 1e-6


# ------------------------------------------------------------------------------------------ the [CLS] cut of the top layer


@pytest.mark.parametrize("any_model", ALL_NAMES, indirect=True)
def test_cls_cut_gives_the_same_logits_and_kept_attention(any_model, make_batch, sample_texts):
    """Attribution passes may compute the top layer's output at the first token only: same logits, same
    attention maps (every row of every layer, the top one included), a one-row last hidden state."""
    loaded = any_model
    assert loaded.ctrl.can_cls_only
    texts, pairs = sample_texts
    batch = make_batch(loaded, texts, pairs)
    n = loaded.ctrl.num_layers
    inputs = model_inputs(loaded.model, batch)
    outs = {}
    for cut in (False, True):
        with torch.no_grad(), loaded.ctrl.pass_settings(record=range(n), cls_only=cut) as s:
            out = loaded.model(**inputs, output_hidden_states=True)
            outs[cut] = out, dict(s.probs)
    (full, full_p), (cut, cut_p) = outs[False], outs[True]
    assert (cut.logits - full.logits).abs().max().item() <= 1e-5
    assert cut.hidden_states[-1].shape[1] == 1 and full.hidden_states[-1].shape[1] == batch["input_ids"].shape[1]
    assert torch.allclose(cut.hidden_states[-1][:, 0], full.hidden_states[-1][:, 0], atol=1e-5)
    for l in range(n):
        assert torch.equal(cut_p[l], full_p[l]), l


def test_cls_cut_is_off_outside_attribution_and_where_the_model_lacks_it(load, albert, make_batch, sample_texts):
    loaded = load("tiny-bert")
    batch = make_batch(loaded, *sample_texts)
    with torch.no_grad(), loaded.ctrl.pass_settings() as s:  # training and plain passes: every row
        assert not s.cls_only
        assert loaded.model(**model_inputs(loaded.model, batch), output_hidden_states=True).hidden_states[-1].shape[1] > 1
    assert not albert.ctrl.can_cls_only  # no per-layer module list: nothing to cut
    with albert.ctrl.pass_settings(cls_only=True) as s:
        assert not s.cls_only  # a request, honoured only where supported


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "camembert", "electra", "distilbert", "bert-tokens"])
def test_sharing_a_layer_across_copies_is_on_where_attention_output_takes_the_residual(family):
    """`can_share` (IGA copies share the scaled layer's probabilities): on for the families whose attention block
    calls `attention.output(context, residual)`, the token-classification head included; off for DistilBERT (its
    residual add is in no module of its own), where no hook is left behind."""
    import transformers as tf

    cls = {"bert": ("BertConfig", "BertForSequenceClassification"),
           "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForSequenceClassification"),
           "camembert": ("CamembertConfig", "CamembertForSequenceClassification"),
           "electra": ("ElectraConfig", "ElectraForSequenceClassification"),
           "bert-tokens": ("BertConfig", "BertForTokenClassification")}
    torch.manual_seed(0)
    if family == "distilbert":
        model = tf.DistilBertForSequenceClassification(tf.DistilBertConfig(dim=32, n_layers=2, n_heads=2,
                                                                           hidden_dim=64, vocab_size=100))
    else:
        model = _tiny(getattr(tf, cls[family][0]), getattr(tf, cls[family][1]))
    ctrl = install(model.eval())
    assert ctrl.can_expand and ctrl.can_share == (family != "distilbert")
    hooks = [h for m in model.modules() for h in m._forward_pre_hooks.values() if h.__name__ == "_share_hook"]
    assert len(hooks) == (ctrl.num_layers if ctrl.can_share else 0)


def test_cls_cut_is_refused_where_the_head_reads_every_token():
    """A token-classification head needs every row: install's check sees different logits and leaves the cut off."""
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    model = _tiny(BertConfig, BertForTokenClassification).eval()
    ctrl = install(model)
    assert ctrl.can_expand and not ctrl.can_cls_only
    hooks = [h for m in model.modules() for h in m._forward_pre_hooks.values() if h.__name__ == "_cls_hook"]
    assert hooks == []
