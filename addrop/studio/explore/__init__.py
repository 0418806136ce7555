"""Library side of the attribution explorer (no Streamlit here): explain.py, effects.py, backends.py, start.py,
exports.py; every name is importable from here.

One example at a time: its attention and attribution in every layer and head (`explain`), the AD-DROP mask
drawn from them (`draw_mask`, paper Eq. 6-7), a random mask with the same number of drops in every row
(`random_like`), what either mask does to the prediction (`mask_effect`), per-head summaries (`head_summary`),
the native/Captum cross-check (`compare_backends`), the "start here" search for an example whose prediction
flips under the AD-DROP mask but not under the random one (`find_flip`), and exports (`to_npz_bytes`,
`to_csv_text`, `settings_json`), the effect in computed sentences (`effect_sentences`), and the overlap of eval- and train-mode attribution passes' regions
(`pass_overlap`).

Shapes follow the library: the `Attribution` inside an `Explanation` keeps [L, B, H, T, T] with B = 1; the
arrays handed to the page drop the batch axis, [L, H, T, T] (layers, heads, query, key).
"""
from __future__ import annotations

from .backends import BackendComparison, compare_backends
from .effects import (CONDITIONS, RANDOM_SEED_OFFSET, SPEARMAN_SAMPLE, Analysis, DropCounts, Effect, analyse,
                      drop_counts, head_summary, idle_rows, mask_effect, plain_logits, random_like,
                      random_mask_generator)
from .explain import RD_SCORE_OFFSET, Explanation, Mask, draw_mask, explain
from .exports import settings_json, to_csv_text, to_npz_bytes
from .overlap import PassOverlap, jaccard, pass_overlap
from .start import FlipCase, find_flip
from .verdict import effect_sentences, mask_name

__all__ = ["BackendComparison", "compare_backends", "CONDITIONS", "RANDOM_SEED_OFFSET", "SPEARMAN_SAMPLE", "Analysis",
           "DropCounts", "drop_counts", "idle_rows", "Effect", "analyse", "head_summary", "mask_effect",
           "plain_logits", "random_like", "random_mask_generator", "RD_SCORE_OFFSET", "Explanation", "Mask",
           "draw_mask", "explain", "settings_json", "to_csv_text", "to_npz_bytes", "FlipCase", "find_flip",
           "effect_sentences", "mask_name", "PassOverlap", "jaccard", "pass_overlap"]
