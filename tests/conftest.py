"""Shared pytest fixtures. Keep this small and generic; module-specific fixtures live in their test files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` run without installing the package
    sys.path.insert(0, str(ROOT))


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The shared GLUE folder: $ADDROP_GLUE_DIR, else ../shared/data/glue beside the project root.

    Skips when it is missing, except on CI (CI=true), where a missing folder fails the test.
    """
    env = os.environ.get("ADDROP_GLUE_DIR")
    path = Path(env).expanduser() if env else ROOT.parent / "shared" / "data" / "glue"
    if not path.is_dir():
        msg = f"GLUE folder not found at {path} (set ADDROP_GLUE_DIR)"
        if _on_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


# --- model fixtures (tests/test_models.py, test_attention.py, test_attribution.py, test_captum_backend.py, ...) ---

# Nothing in the test suite may reach the network: the built-in models load from the embedded package or are
# built from a config, and an unknown name must fail fast instead of retrying against the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A padded batch of three examples of different lengths, each a sentence pair.
TEXTS = ("a gripping, funny film", "the plot drags on and on while nothing at all happens to anyone", "fine")
PAIRS = ("i liked it", "boring", "it was okay i suppose, nothing special")


@pytest.fixture(scope="module")
def minilm():
    """The embedded MiniLM, loaded once per test module on the CPU (tests must leave it as they found it)."""
    from addrop.engine.models import load_model

    return load_model("minilm", "cpu")


@pytest.fixture
def load():
    """load(name, **kw): a fresh model on the CPU (tiny models take ~0.1 s)."""
    from addrop.engine.models import load_model

    def _load(name="tiny-bert", **kw):
        kw.setdefault("device", "cpu")
        return load_model(name, **kw)

    return _load


@pytest.fixture(scope="session")
def make_batch():
    """make_batch(loaded, texts, pairs=None): padded tokenizer output as a plain dict on the model's device."""

    def _make(loaded, texts=TEXTS, pairs=None):
        texts = [texts] if isinstance(texts, str) else list(texts)
        if isinstance(pairs, str):
            pairs = [pairs]
        enc = loaded.tokenizer(texts, list(pairs) if pairs is not None else None, padding=True, return_tensors="pt")
        return {k: v.to(loaded.device) for k, v in enc.items()}

    return _make


@pytest.fixture(scope="session")
def sample_texts():
    """(texts, pairs): three sentence pairs of different lengths, for a padded batch."""
    return TEXTS, PAIRS


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tiny-model tests on one intra-op thread, restoring the count afterwards.

    The tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP's barrier waits make a
    2 ms forward pass take half a second. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def albert():
    """A tiny ALBERT with the addrop attention installed: one attention module shared by its 3 layers, so there is
    no per-layer module list and IGA repeats the whole input instead of expanding at the scaled layer."""
    import torch
    from transformers import AlbertConfig, AlbertForSequenceClassification

    from addrop.core.attention import install
    from addrop.engine.models import LoadedModel, load_model

    tok = load_model("tiny-bert", "cpu").tokenizer  # the embedded MiniLM (BERT) tokenizer
    torch.manual_seed(0)
    cfg = AlbertConfig(embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                       intermediate_size=64, vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id)
    model = AlbertForSequenceClassification(cfg).eval()
    install(model)
    return LoadedModel("albert", model, tok, torch.device("cpu"))
