"""Naming what kind of non-answer a censored verdict found, and the signals that explain it."""

from __future__ import annotations

from proxy.detect.features import OPENING, AnswerView, Extracted
from proxy.detect.model import LinearModel
from proxy.detect.request import Request
from proxy.detect.verdict import Category, Signal

_MAX_SIGNALS = 12


def categorize(ex: Extracted, req: Request, view: AnswerView) -> Category:
    """The category of an answer already judged censored, from the evidence that fired."""
    if "degenerate" in ex.meta:
        return Category.NON_ANSWER
    early = {h.category for h in ex.hits if h.start < 200}
    allhits = [h.category for h in ex.hits]
    if "refusal" in early:
        return Category.REFUSAL
    if "deflection" in early:
        return Category.DEFLECTION
    propaganda = allhits.count("propaganda")
    if propaganda >= 2 or "propaganda" in early or (propaganda and ex.language != req.language):
        return Category.PROPAGANDA
    if "refusal" in allhits:
        return Category.REFUSAL
    if "deflection" in allhits:
        return Category.DEFLECTION
    if ex.language != req.language and ex.language == "zh":
        return Category.PROPAGANDA
    if view.finish_reason == "length" and len(view.visible.strip()) < 40:
        return Category.NON_ANSWER
    return Category.EVASION


def _strength(entry: tuple[str, float, int, int, str]) -> float:
    return -abs(entry[1])


def explain(
    ex: Extracted,
    model: LinearModel,
    terms: list[tuple[str, float]],
    visible: str,
    offset: int,
    ngram: float,
) -> tuple[Signal, ...]:
    """The phrase hits and the strongest non-n-gram features, with their weights in the score.

    `terms` are the valued features' shares of the score (`LinearModel.terms`), `ngram` the
    summed contribution of the n-grams, shown as one signal.
    """
    weights = model.weights
    # Candidates as plain tuples (Signal's fields): only the strongest few become Signals.
    entries: list[tuple[str, float, int, int, str]] = []
    seen: set[str] = set()
    for hit in ex.hits:
        # The first place each rule fired is enough to show why.
        if hit.rule in seen:
            continue
        seen.add(hit.rule)
        where = "@o" if hit.start < OPENING else "@h"
        w = weights.get("lex:" + hit.category + where, 0.0)
        name = f"{hit.category}:{hit.rule}"
        text = visible[hit.start : hit.end]
        entries.append((name, w, offset + hit.start, offset + hit.end, text))
    for name, contribution in terms:
        if abs(contribution) >= 0.1 and not name.startswith(("lex:", "lexn:")):
            entries.append((name, contribution, -1, -1, ""))
    entries.append(("ngrams", ngram, -1, -1, ""))
    entries.sort(key=_strength)
    return tuple(Signal(*entry) for entry in entries[:_MAX_SIGNALS])
