"""What one mask draw did to one example, in sentences computed from its numbers (`effect_sentences`): which
mask moved the prediction more, by how much, on the probability of the attributed class c and on the loss. One
sentence and one draw make no general claim; the Deletion curves page measures it over the dev set."""
from __future__ import annotations

from .effects import Effect

SAME = 0.005  # changes of p(c) (or of the loss) closer than this are called "about the same"
DELETION_PAGE = "the *Deletion curves* page"


def _changes(effect: Effect, column: str) -> tuple[float, float]:
    """(AD-DROP - no mask, random - no mask) of one column."""
    base = effect.row("no mask")[column]
    return effect.row("AD-DROP mask")[column] - base, effect.row("random mask")[column] - base


def _compare(d_ad: float, d_rd: float, what: str) -> str:
    """Which mask moved `what` more, in words."""
    a, r = abs(d_ad), abs(d_rd)
    if abs(a - r) < SAME:
        return f"both masks moved {what} about as much ({d_ad:+.3f} and {d_rd:+.3f})"
    more, less = ("the AD-DROP mask", "the random mask") if a > r else ("the random mask", "the AD-DROP mask")
    big, small = max(a, r), min(a, r)
    if small >= SAME and (d_ad > 0) != (d_rd > 0):  # opposite ways: "n times as much" would read as one effect
        return (f"the two masks moved {what} in opposite directions ({d_ad:+.3f} under AD-DROP, {d_rd:+.3f} under "
                f"random), {more} further")
    ratio = big / small if small >= 1e-4 else float("inf")
    times = f", {ratio:.1f} times as much" if ratio < 20 else ", over 20 times as much"
    return (f"{more} moved {what} more than {less} ({d_ad:+.3f} under AD-DROP, {d_rd:+.3f} under random"
            f"{times})")


def _flip(effect: Effect, condition: str) -> str:
    before, after = effect.row("no mask")["prediction"], effect.row(condition)["prediction"]
    if after == before:
        return "keeps the prediction"
    moved = abs(effect.row(condition)["p_c"] - effect.row("no mask")["p_c"])
    if moved < 2 * SAME:  # a prediction that sat on the boundary: a hair, not a flip worth a word
        return f"tips the prediction to **{after}** by a hair (p(c) moved {moved:.3f}: it sat on the boundary)"
    return f"flips the prediction to **{after}**"


def effect_sentences(effect: Effect, method: str = "ga") -> str:
    """A few sentences (Markdown) on what the AD-DROP mask and the random mask of the same size did to this
    example: the probability of c and the loss before and after each, which mask moved each more and by how
    much, whether either flips the prediction, and where the data-set-level evidence is. `method`: the
    attribution behind the AD-DROP mask (with rd both masks are random, and the sentences say so)."""
    b, ad, rd = (effect.row(k) for k in ("no mask", "AD-DROP mask", "random mask"))
    if effect.regression:
        ds_ad, ds_rd = _changes(effect, "score")
        out = [f"The AD-DROP mask moves the predicted score from {b['score']:.3f} to {ad['score']:.3f} "
               f"({ds_ad:+.3f}); a random mask that drops as many positions in every row moves it to "
               f"{rd['score']:.3f} ({ds_rd:+.3f}).", f"On this example {_compare(ds_ad, ds_rd, 'the score')}."]
        if b["loss"] == b["loss"]:  # a gold score: the squared error too
            dl_ad, dl_rd = _changes(effect, "loss")
            out.append(f"On the squared error against {effect.reference}, {_compare(dl_ad, dl_rd, 'it')}.")
    else:
        c = effect.target_name or "c"
        dp_ad, dp_rd = _changes(effect, "p_c")
        dl_ad, dl_rd = _changes(effect, "loss")
        f_ad, f_rd = _flip(effect, "AD-DROP mask"), _flip(effect, "random mask")
        flips = (f"both masks {f_ad.replace('keeps', 'keep')}" if f_ad == f_rd == "keeps the prediction" else
                 f"the AD-DROP mask {f_ad}, the random one {f_rd}")
        out = [f"The probability of **{c}** (the attributed class) is {b['p_c']:.3f} without a mask, "
               f"{ad['p_c']:.3f} under the AD-DROP mask and {rd['p_c']:.3f} under a random mask that drops as many "
               f"positions in every row; {flips}.",
               f"On this example and this draw, {_compare(dp_ad, dp_rd, f'p({c})')}.",
               f"On the loss against {effect.reference} ({b['loss']:.3f} without a mask), "
               f"{_compare(dl_ad, dl_rd, 'it')}."]
    if method == "rd":
        out.insert(0, "With RD the AD-DROP mask comes from random scores too, so the two masks differ by chance "
                      "alone: any difference below is noise.")
    out.append(f"One example and one draw are not evidence either way: {DELETION_PAGE} measures the drop over "
               f"the dev set, against random deletions.")
    return " ".join(out)
