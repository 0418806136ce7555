"""The paper's method, and nothing else: every equation of Section 2 lives in this folder.

    attention.py       Eq. 1 and 7: the registered attention function adds the mask before the softmax and keeps
                       the post-softmax maps A_h for gradients (transformers' AttentionInterface, no model copy)
    objective.py       Eq. 4: the pseudo label c; F_c, the function attribution differentiates
    attribution.py     Eq. 2, 3, 5: GA (one backward for all layers), IGA (m scaled copies), AA, RD
    captum_backend.py  the same GA and IGA through Captum, to cross-check
    masking.py         Eq. 6-7: the candidate discard region (top p of each row) and the drops (rate q)
    algorithm.py       Algorithm 1: one batch's masks, and the cross-tuning schedule
    packing.py, grouping.py, passes.py, sharing.py   how passes are run cheaply and checked; no equation of
                       their own (sharing.py: IGA's copies share the scaled layer's Q, K, V and softmax)

Imports: only `addrop.config`, `addrop.errors`, torch and transformers. Nothing here loads models or data.
"""
