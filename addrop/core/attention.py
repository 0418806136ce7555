"""The one place that touches transformers' internals: a registered attention function and its mask function.

`install(model)` switches a model to the "addrop" attention implementation and attaches a `Controller`. The
controller's per-thread state, set for one forward pass, is what the attention function reads:

    drops  {layer: bool [B, H, T, T]}   positions to drop (additive dtype-min before softmax, Eq. 1 and 7)
    record set of layers                whose probabilities are recorded (in s.probs) for gradients: after the
                                        attention dropout, which is the identity in eval mode
    probes {layer: nn.Identity}         this thread's own probes, used instead of the shared ones (Captum's hooks)
    scale  {layer: float [N]}           per-row factor on the probabilities (IGA's k/m, Eq. 3)
    gate   {layer: float [N]}           per-row factor that Captum integrates over (IG baseline = 0)
    expand {layer: c}                   repeat the hidden states c times at the input of that layer (IGA copies
                                        share the layers below instead of recomputing them)
    share  {layer: c}                   where `can_share`: that layer computes its probabilities once and repeats
                                        them c times (copy-major) before scale/gate/record, and its attention
                                        output becomes c copies at the input of `attention.output` (IGA copies
                                        share the layer's Q, K, V and softmax too; see below)
    cls_only bool                       the top layer computes its output for the first token only (see below)
    cls_rows LongTensor [B]             packed passes (packing.py): the rows the top layer keeps, one per example
    packed_rows int                     rows R of a packed training batch: cls_rows are flat indices into R * W

The probabilities of layer l pass through `controller.probes[l]`, an `nn.Identity` that Captum can attribute at.
Layers are numbered by call order within a forward pass (ALBERT shares one attention module across layers).
The classification heads of the supported families read the top layer's output at the first token only ([CLS]
/ <s>), so attribution passes may skip the top layer's output projection and feed-forward block for every other
row (`cls_only`, where `install` finds the place to cut and has checked that the logits do not change): GA and
IGA scores are unchanged, because those rows have exactly zero gradient anyway.
State lives in a `threading.local`, so sessions that share one cached model do not see each other's masks; hooks
(Captum's) go on per-pass probes of the thread's own, never on a module other threads run through.

`share` (sharing.py has the hooks and the install-time check): the attention function returns the context of the
c copies folded into the heads, [N, T, c * H, d] laid out as [N, T, c, H, d] (the attention module reshapes it
to [N, T, c * D] for the N rows it was given), and a pre-hook on that layer's `attention.output` unfolds it to
[c * N, T, D] (copy-major) and repeats the residual c times; everything above sees c * N rows, as with `expand`.
`install` enables it (`can_share`: BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT) only where a scaled two-copy pass
gives the same logits and gradients both ways; elsewhere (DistilBERT, ALBERT) IGA keeps `expand` or repeats the
whole input.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, eager_mask

from ..errors import UnsupportedModelError
from .packing import supported as packing_offset
from .passes import eval_mode, check_batch, has_submodule
from .sharing import install_share

IMPL = "addrop"
SUPPORTED_FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert", "albert", "camembert")


class _State(threading.local):
    def __init__(self):
        self.reset()

    def __deepcopy__(self, memo):  # a copied model gets fresh, empty state
        return _State()

    def reset(self):
        self.drops: dict[int, torch.Tensor] = {}
        self.record: set[int] = set()
        self.probs: dict[int, torch.Tensor] = {}
        self.scale: dict[int, torch.Tensor] = {}
        self.gate: dict[int, torch.Tensor] = {}
        self.expand: dict[int, int] = {}
        self.share: dict[int, int] = {}
        self.cls_only = False
        self.cls_rows: torch.Tensor | None = None
        self.packed_rows = 1  # rows of a packed batch (packing.RowPacking): cls_rows index their R * W slots
        self.probes: dict[int, nn.Module] = {}  # this thread's own probes (Captum hooks them, not the shared ones)
        self.calls = 0


class Controller(nn.Module):
    """Per-forward-pass settings of the addrop attention function for one model."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        self.probes = nn.ModuleList(nn.Identity() for _ in range(num_layers))
        self._state = _State()
        self.can_expand = False
        self.can_share = False  # IGA copies may share the scaled layer's probabilities (`share`)
        self.can_cls_only = False
        self.pack_offset: int | None = None  # position-id offset of packed passes; None = no packing
        # {layer: bool [B, H, T, T]} held for a whole training step, not per thread: a backward pass that
        # re-runs the forward (gradient checkpointing; on CUDA it runs in autograd's own threads) sees them too
        self.pinned: dict[int, torch.Tensor] | None = None
        self.per_token = False  # the head has an output per token (token classification): no top-layer cut

    @property
    def state(self) -> _State:
        return self._state

    def start_pass(self):
        self._state.calls = 0
        self._state.probs = {}

    @contextmanager
    def pin(self, drops: dict):
        """Masks for every forward pass of this model until exit, in any thread, each tied to its layer (the
        attention module's place in the encoder, not the call order): a training step's forward and the
        recomputed forward of a checkpointed backward. Only for a model no one else uses meanwhile."""
        self.pinned = dict(drops)
        try:
            yield
        finally:
            self.pinned = None

    @property
    def can_pack(self) -> bool:  # packed passes need the top-layer cut to pick one row per example
        return self.pack_offset is not None and self.can_cls_only

    @contextmanager
    def pass_settings(self, drops=None, record=(), scale=None, gate=None, expand=None, cls_only=False, cls_rows=None,
                      probes=None, packed_rows=1, share=None):
        """Set what the next forward pass(es) do; everything is cleared on exit. `cls_only` is a request, honoured
        only where the model supports it (`can_cls_only`): the caller may then read nothing but the logits.
        `probes` {layer: nn.Identity}: modules of this thread's own that the probabilities pass through instead of
        the shared `self.probes`, so that hooks put on them (Captum's) see this thread's passes only. `share`
        {layer: c}: only where `can_share` (a request elsewhere would break the pass: refused)."""
        if share and not self.can_share:
            raise ValueError("this model cannot share a layer's probabilities across copies (can_share is False)")
        s = self._state
        s.probes = dict(probes or {})
        s.drops, s.record = dict(drops or {}), set(record)
        s.scale, s.gate, s.expand = dict(scale or {}), dict(gate or {}), dict(expand or {})
        s.share = {l: int(c) for l, c in (share or {}).items() if int(c) > 1}
        s.cls_only = bool(cls_only) and self.can_cls_only
        s.cls_rows = cls_rows if self.can_cls_only else None
        s.packed_rows = int(packed_rows)
        try:
            yield s
        finally:
            s.reset()


def _rows(factor: torch.Tensor, n: int) -> torch.Tensor:
    # factor: [N] per row of the (possibly expanded) batch -> [N, 1, 1, 1]
    return factor.to(torch.get_default_dtype() if not factor.is_floating_point() else factor.dtype).view(n, 1, 1, 1)


def addrop_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention, the same operations in the same order, plus the controller's settings."""
    ctrl: Controller | None = getattr(module, "_addrop_ctrl", None)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    # query, key, value: [N, H, T, d]
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # [N, H, T, T]
    if attention_mask is not None:
        if attention_mask.shape[0] != attn_weights.shape[0]:  # expanded IGA copies share the pad mask
            attention_mask = attention_mask.repeat(attn_weights.shape[0] // attention_mask.shape[0], 1, 1, 1)
        attn_weights = attn_weights + attention_mask
    layer = None
    if ctrl is not None:
        s = ctrl.state
        # layers are numbered by call order; the modulo keeps a pass that did not start at the top model
        # (where _reset_hook zeroes the count) numbered 0..L-1 too
        layer = s.calls % ctrl.num_layers
        s.calls += 1
        tagged = getattr(module, "_addrop_layer", None)  # the module's own layer (absent: ALBERT's shared one)
        layer = tagged if tagged is not None else layer
        drop = s.drops.get(layer)
        if drop is None and ctrl.pinned is not None:
            drop = ctrl.pinned.get(layer)
        if drop is not None:
            attn_weights = attn_weights.masked_fill(drop, torch.finfo(attn_weights.dtype).min)
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    copies = s.share.get(layer) if layer is not None else None
    if copies:  # c copies of this layer's probabilities, copy-major (the context is folded back below)
        attn_weights = attn_weights.repeat(copies, 1, 1, 1)
    if layer is not None:
        n = attn_weights.shape[0]
        if layer in s.scale:
            attn_weights = attn_weights * _rows(s.scale[layer], n)
        if layer in s.gate:
            attn_weights = attn_weights * _rows(s.gate[layer], n)
        probe = s.probes.get(layer)
        attn_weights = (probe if probe is not None else ctrl.probes[layer])(attn_weights)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    if layer is not None and layer in s.record:
        # recorded after attention dropout (the identity in eval mode): a train-mode attribution pass then
        # differentiates the probabilities the values are really multiplied by, as the reference code does
        if not attn_weights.requires_grad:  # nothing upstream needs grad (e.g. frozen model): make it a leaf
            attn_weights.requires_grad_(True)
        s.probs[layer] = attn_weights
    if copies:
        # [c, N, H, T, T] @ [N, H, T, d] -> [c, N, H, T, d], returned as [N, T, c * H, d] in the memory order
        # [N, T, c, H, d]: the caller reshapes it to [N, T, c * D], which _share_hook unfolds to [c * N, T, D]
        N, H, T, d = query.shape[0], query.shape[1], query.shape[2], value.shape[-1]
        attn_output = torch.matmul(attn_weights.reshape(copies, N, H, T, attn_weights.shape[-1]), value)
        attn_output = attn_output.permute(1, 3, 0, 2, 4).reshape(N, T, copies * H, d)
        return attn_output, attn_weights
    attn_output = torch.matmul(attn_weights, value)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


AttentionInterface.register(IMPL, addrop_attention)
AttentionMaskInterface.register(IMPL, eager_mask)  # without it, padding would be silently ignored
assert IMPL in ALL_MASK_ATTENTION_FUNCTIONS


def _layer_list(model) -> nn.ModuleList | None:
    """The per-layer module list of the encoder, if the model has one (ALBERT shares layers: None)."""
    n = model.config.num_hidden_layers
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n and name.endswith(("encoder.layer", "transformer.layer", "layers")):
            return mod
    return None


def _expand_hook(layer, args, kwargs):
    """Forward pre-hook on an encoder layer: repeat its input hidden states c times (IGA copies)."""
    c = layer._addrop_ctrl.state.expand.get(layer._addrop_index)
    if not c or c == 1:
        return None
    if args:
        hidden = args[0]
        return (hidden.repeat(c, *([1] * (hidden.dim() - 1))),) + tuple(args[1:]), kwargs
    key = "hidden_states" if "hidden_states" in kwargs else "hidden_state"
    hidden = kwargs[key]
    return args, dict(kwargs, **{key: hidden.repeat(c, *([1] * (hidden.dim() - 1)))})


# Where the top layer can be cut to its first row: the module whose inputs are the attention context and the
# residual (BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT: `attention.output`), or the first LayerNorm after attention
# (DistilBERT: `sa_layer_norm`). Everything after it then runs on one row.
_CLS_CUTS = ("attention.output", "sa_layer_norm")


def _cls_hook(module, args, kwargs):
    """Forward pre-hook at the cut of the top layer: keep the first token of every [N, T, D] input (a packed
    [1, N, D] input: the rows `cls_rows`, one per example, as [B, 1, D]; a packed [R, W, D] batch: cls_rows index
    its R * W slots)."""
    s = module._addrop_ctrl.state
    if s.cls_rows is not None:
        rows, R = s.cls_rows, s.packed_rows

        def cut(v):  # [c * R, W, D] -> [c, R * W, D] -> [c * B, 1, D], copy-major (c = 1 unless IGA copies)
            if not isinstance(v, torch.Tensor) or v.dim() != 3:
                return v
            return v.reshape(v.shape[0] // R, -1, v.shape[-1])[:, rows].reshape(-1, 1, v.shape[-1])
    elif s.cls_only:
        cut = lambda v: v[:, :1] if isinstance(v, torch.Tensor) and v.dim() == 3 else v  # noqa: E731
    else:
        return None
    return tuple(cut(a) for a in args), {k: cut(v) for k, v in kwargs.items()}


def _install_cls_cut(model, ctrl: Controller, layers: nn.ModuleList | None) -> list:
    """Hook the top layer's cut if there is one and the logits are the same with it (checked on a random input);
    otherwise leave the model alone. Returns the hooks."""
    if layers is None:
        return []
    top = layers[-1]
    for path in _CLS_CUTS:
        mod = top.get_submodule(path) if has_submodule(top, path) else None
        if mod is None:
            continue
        hook = mod.register_forward_pre_hook(_cls_hook, with_kwargs=True)
        ctrl.can_cls_only = True
        if _cls_cut_is_exact(model, ctrl):
            return [hook]
        hook.remove()
        ctrl.can_cls_only = False
    return []


def _cls_cut_is_exact(model, ctrl: Controller) -> bool:
    ids, mask = check_batch(model, [7, 5], 7, seed=0)
    try:
        with eval_mode(model), torch.no_grad():
            with ctrl.pass_settings():
                full = model(input_ids=ids, attention_mask=mask).logits
            with ctrl.pass_settings(cls_only=True):
                cut = model(input_ids=ids, attention_mask=mask).logits
    except Exception:  # noqa: BLE001 - a head that needs every row: no cut
        return False
    return cut.shape == full.shape and bool(torch.allclose(cut, full, rtol=1e-4, atol=1e-5))


def _reset_hook(model, args, kwargs):
    """Forward pre-hook on the top model: a new pass numbers layers from 0 again."""
    model.addrop.start_pass()


def install(model) -> Controller:
    """Route the model's attention through the addrop function and check that it really is called."""
    existing = getattr(model, "addrop", None)
    if isinstance(existing, Controller):
        return existing
    model_type = getattr(model.config, "model_type", "?")
    previous_impl = getattr(model.config, "_attn_implementation", None)
    try:
        model.set_attn_implementation(IMPL)
    except Exception:  # noqa: BLE001 - transformers raises several types here
        raise unsupported(model_type) from None
    ctrl = Controller(model.config.num_hidden_layers)
    tagged = list(model.modules())
    for mod in tagged:
        # tag every submodule (only the attention function reads it); object.__setattr__ keeps the controller
        # from being registered as a child of each of them
        object.__setattr__(mod, "_addrop_ctrl", ctrl)
    model.add_module("addrop", ctrl)  # holds the probes; no parameters, so state dicts are unchanged
    hooks = [model.register_forward_pre_hook(_reset_hook, with_kwargs=True)]
    layers = _layer_list(model)
    ctrl.can_expand = layers is not None
    if layers is not None:
        for i, layer in enumerate(layers):
            object.__setattr__(layer, "_addrop_index", i)
            for sub in layer.modules():  # the attention function finds its layer from its module
                object.__setattr__(sub, "_addrop_layer", i)
            hooks.append(layer.register_forward_pre_hook(_expand_hook, with_kwargs=True))
    try:
        ctrl.per_token = _check_called(model, ctrl, model_type)
        hooks += _install_cls_cut(model, ctrl, layers) if not ctrl.per_token else []
        hooks += install_share(model, ctrl, layers)
        ctrl.pack_offset = packing_offset(model, ctrl)
    except UnsupportedModelError:
        # undo, so the model is not left looking installed (a second install() would return this controller)
        for h in hooks:
            h.remove()
        del model._modules["addrop"]
        for mod in tagged:
            mod.__dict__.pop("_addrop_ctrl", None)
            mod.__dict__.pop("_addrop_index", None)
            mod.__dict__.pop("_addrop_layer", None)
        if previous_impl is not None and getattr(model.config, "_attn_implementation", None) != previous_impl:
            try:
                model.set_attn_implementation(previous_impl)
            except Exception:  # noqa: BLE001 - best effort; the error below is what the user sees
                pass
        raise
    return ctrl


def unsupported(model_type: str) -> UnsupportedModelError:
    """The one message for a model whose attention AD-DROP cannot reach."""
    return UnsupportedModelError(
        f"model type '{model_type}' does not route its attention through transformers' AttentionInterface, so "
        f"AD-DROP cannot reach its attention maps; supported families: {', '.join(SUPPORTED_FAMILIES)}")


def _check_called(model, ctrl: Controller, model_type: str) -> bool:
    """The config can name our implementation while the model still runs its own attention: check by calling.
    Returns whether the head has an output per token ([B, T, C] logits: token classification)."""
    device = next(model.parameters()).device
    ids = torch.tensor([[0, 1, 2]], device=device)
    try:
        with eval_mode(model), torch.no_grad(), ctrl.pass_settings(record=range(ctrl.num_layers)) as s:
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
            called = len(s.probs)
    except Exception:  # noqa: BLE001 - a model that cannot run our attention function
        raise unsupported(model_type) from None
    if called != ctrl.num_layers:
        raise unsupported(model_type)
    logits = getattr(out, "logits", None)
    return isinstance(logits, torch.Tensor) and logits.dim() == 3


def controller(model) -> Controller:
    ctrl = getattr(model, "addrop", None)
    if not isinstance(ctrl, Controller):
        ctrl = install(model)
    return ctrl
