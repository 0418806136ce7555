"""What one mask draw did to one example, in sentences computed from its numbers (`effect_sentences`): which
mask moved the prediction more, by how much, on the probability of the attributed class c and on the loss. One
sentence and one draw make no general claim; the Deletion curves page measures it over the dev set."""
from __future__ import annotations

from .effects import Effect

SAME = 0.005  # changes of p(c) (or of the loss) closer than this are called "about the same"
DELETION_PAGE = "the *Deletion curves* page"


def mask_name(method: str = "ga", mode: str = "high") -> str:
    """What the explorer calls its attribution-driven mask: "AD-DROP" only for AD-DROP's own region (the highest
    attributions, Eq. 6); "low-region" for the lowest (the prior experiment's drop-low), "random-region" for a random
    region, "RD" for random scores. Used as "the {name} mask"."""
    if method == "rd":
        return "RD"
    return {"low": "low-region", "random": "random-region"}.get(mode, "AD-DROP")


def _changes(effect: Effect, column: str) -> tuple[float, float]:
    """(attribution-driven mask - no mask, random - no mask) of one column."""
    base = effect.row("no mask")[column]
    return effect.row("AD-DROP mask")[column] - base, effect.row("random mask")[column] - base


def _moved(d: float) -> str:
    return "raised" if d > 0 else "lowered"


def _compare(d_ad: float, d_rd: float, what: str, name: str = "AD-DROP") -> str:
    """Which mask moved `what` more and which way, in words. `name`: the attribution-driven mask's (mask_name)."""
    a, r = abs(d_ad), abs(d_rd)
    nums = f"({d_ad:+.3f} under {name}, {d_rd:+.3f} under random)"
    if abs(a - r) < SAME:
        return f"both masks moved {what} about as much {nums}"
    (more, d_more), (less, d_less) = sorted(((f"the {name} mask", d_ad), ("the random mask", d_rd)),
                                            key=lambda m: -abs(m[1]))
    if min(a, r) < SAME:  # the other one barely moved it: no ratio, which would be huge and mean nothing
        return f"{more} {_moved(d_more)} {what} and {less} barely moved it {nums}"
    if (d_ad > 0) != (d_rd > 0):  # opposite ways: "n times as much" would read as one effect
        return f"the two masks moved {what} in opposite directions {nums}, {more} further"
    ratio = max(a, r) / min(a, r)
    times = f"{ratio:.1f} times as much" if round(ratio, 1) < 10 else f"{ratio:.0f} times as much"
    return f"both masks {_moved(d_ad)} {what}, {more} more than {less} {nums[:-1]}, {times})"


def _flip(effect: Effect, condition: str) -> str:
    before, after = effect.row("no mask")["prediction"], effect.row(condition)["prediction"]
    if after == before:
        return "keeps the prediction"
    moved = abs(effect.row(condition)["p_c"] - effect.row("no mask")["p_c"])
    if moved < 2 * SAME:  # a prediction that sat on the boundary: a hair, not a flip worth a word
        return f"tips the prediction to **{after}** by a hair (p(c) moved {moved:.3f}: it sat on the boundary)"
    return f"flips the prediction to **{after}**"


def _flips(f_ad: str, f_rd: str, name: str) -> str:
    """Both masks' effect on the prediction in one clause: "both masks keep / flip ..." when they do the same."""
    if f_ad == f_rd and not f_ad.startswith("tips"):
        return "both masks " + f_ad.replace("keeps", "keep", 1).replace("flips", "flip", 1)
    return f"the {name} mask {f_ad}, the random one {f_rd}"


FOREWORD = {
    "RD": "With RD the attribution-driven mask comes from random scores too, so the two masks differ by chance "
          "alone: any difference below is noise.",
    "low-region": "With the low region this is not AD-DROP's mask: it drops among the positions of *lowest* "
                  "attribution, as the prior experiment's drop-low does.",
    "random-region": "With a random region the attribution plays no part in the mask: its candidates are drawn at "
                     "random, so the two masks differ by chance alone.",
}


def effect_sentences(effect: Effect, method: str = "ga", mode: str = "high") -> str:
    """A few sentences (Markdown) on what the attribution-driven mask and the random mask of the same size did to
    this example: the probability of c and the loss before and after each, which mask moved each more, which way
    and by how much, whether either flips the prediction, and where the data-set-level evidence is. `method` and
    `mode` (the region): what the first mask is (mask_name), said first where it is not AD-DROP's own."""
    b, ad, rd = (effect.row(k) for k in ("no mask", "AD-DROP mask", "random mask"))
    name = mask_name(method, mode)
    if effect.regression:
        ds_ad, ds_rd = _changes(effect, "score")
        out = [f"The {name} mask moves the predicted score from {b['score']:.3f} to {ad['score']:.3f} "
               f"({ds_ad:+.3f}); a random mask that drops as many positions in every row moves it to "
               f"{rd['score']:.3f} ({ds_rd:+.3f}).", f"On this example {_compare(ds_ad, ds_rd, 'the score', name)}."]
        if b["loss"] == b["loss"]:  # a gold score: the squared error too
            dl_ad, dl_rd = _changes(effect, "loss")
            out.append(f"On the squared error against {effect.reference}, {_compare(dl_ad, dl_rd, 'it', name)}.")
    else:
        c = effect.target_name or "c"
        dp_ad, dp_rd = _changes(effect, "p_c")
        dl_ad, dl_rd = _changes(effect, "loss")
        flips = _flips(_flip(effect, "AD-DROP mask"), _flip(effect, "random mask"), name)
        out = [f"The probability of **{c}** (the attributed class) is {b['p_c']:.3f} without a mask, "
               f"{ad['p_c']:.3f} under the {name} mask and {rd['p_c']:.3f} under a random mask that drops as many "
               f"positions in every row; {flips}.",
               f"On this example and this draw, {_compare(dp_ad, dp_rd, f'p({c})', name)}.",
               f"On the loss against {effect.reference} ({b['loss']:.3f} without a mask), "
               f"{_compare(dl_ad, dl_rd, 'it', name)}."]
    if name in FOREWORD:
        out.insert(0, FOREWORD[name])
    out.append(f"One example and one draw are not evidence either way: {DELETION_PAGE} measures the drop over "
               f"the dev set, against random deletions.")
    return " ".join(out)
