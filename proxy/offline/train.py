"""Training the scorer with numpy: logistic regression over the core's sparse features.

Thresholds are picked on out-of-fold scores (folds grouped by model), never on the rows a
model was fitted on. numpy is a training-time dependency only; the detector loads JSON.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from proxy.detect.engine import DetectorParts
from proxy.detect.features import AnswerView, Windows, extract
from proxy.detect.model import LinearModel, Scorer, Thresholds
from proxy.detect.request import read_request
from proxy.detect.text import split_think
from proxy.offline.dataset import Example

Floats = npt.NDArray[np.float64]
Features = dict[str, float]


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Knobs of the fit and of threshold selection."""

    l2: float = 1e-3
    iterations: int = 150
    learning_rate: float = 0.1
    min_df: int = 5
    inner_folds: int = 3
    fpr_cap: float = 0.015
    early_fpr_cap: float = 0.008
    release_miss: float = 0.05
    release_clean: float = 0.75
    prune: float = 0.01
    meta_l2_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class Featurized:
    """The features of one example for the whole-answer and first-window models."""

    whole: Features
    early: Features
    long: bool


def featurize(parts: DetectorParts, ex: Example) -> Featurized:
    """Features exactly as the runtime detector computes them."""
    req = read_request(ex.prompt, parts.topics, parts.request_words)
    split = split_think(ex.response)
    reasoning = -1 if ex.reasoning is None else len(ex.reasoning.strip())
    view = AnswerView(
        split.visible, True, split.state, len(split.think), reasoning, ex.finish_reason
    )
    whole = extract(view, req, parts.lexicon, parts.windows).features()
    window = parts.stream.window
    early_view = AnswerView(split.visible[:window], False, split.state, 0, reasoning)
    early = extract(early_view, req, parts.lexicon, Windows.opening(window)).features()
    return Featurized(whole, early, len(split.visible) >= window)


def fit(rows: Sequence[Features], y: Floats, settings: TrainSettings) -> LinearModel:
    """A logistic regression fitted with full-batch Adam on a sparse design matrix."""
    df: dict[str, int] = {}
    for feats in rows:
        for name in feats:
            df[name] = df.get(name, 0) + 1
    vocab = {name: i for i, name in enumerate(n for n, c in df.items() if c >= settings.min_df)}
    r_idx: list[int] = []
    c_idx: list[int] = []
    vals: list[float] = []
    for i, feats in enumerate(rows):
        for name, value in feats.items():
            j = vocab.get(name)
            if j is not None:
                r_idx.append(i)
                c_idx.append(j)
                vals.append(value)
    r = np.asarray(r_idx, dtype=np.int64)
    c = np.asarray(c_idx, dtype=np.int64)
    v = np.asarray(vals, dtype=np.float64)
    n, d = len(rows), len(vocab)
    # Named (meta) features carry over between models better than n-grams of one model's style.
    l2 = np.full(d, settings.l2)
    for name, j in vocab.items():
        if ":" in name:
            l2[j] *= settings.meta_l2_factor
    w = np.zeros(d)
    b = 0.0
    m_w, s_w = np.zeros(d), np.zeros(d)
    m_b = s_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, settings.iterations + 1):
        z = np.bincount(r, weights=v * w[c], minlength=n) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        g = p - y
        gw = np.bincount(c, weights=v * g[r], minlength=d) / n + l2 * w
        gb = float(g.mean())
        m_w = beta1 * m_w + (1 - beta1) * gw
        s_w = beta2 * s_w + (1 - beta2) * gw * gw
        m_b = beta1 * m_b + (1 - beta1) * gb
        s_b = beta2 * s_b + (1 - beta2) * gb * gb
        lr = settings.learning_rate * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        w -= lr * m_w / (np.sqrt(s_w) + eps)
        b -= float(lr * m_b / (np.sqrt(s_b) + eps))
    names = list(vocab)
    weights = {names[j]: round(float(w[j]), 4) for j in np.flatnonzero(np.abs(w) >= settings.prune)}
    return LinearModel(weights, round(b, 4))


def group_folds(groups: Sequence[str], k: int) -> list[int]:
    """Fold index per row, with whole groups (models) kept together and folds balanced."""
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    load = [0] * k
    fold_of: dict[str, int] = {}
    for g in sorted(sizes, key=lambda x: (-sizes[x], x)):
        f = min(range(k), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += sizes[g]
    return [fold_of[g] for g in groups]


def _best_f1(p: Floats, y: Floats, cap: float) -> float:
    clean = max(float((y == 0).sum()), 1.0)
    best, best_t = -1.0, 0.5
    for t in np.unique(np.round(p, 4)):
        flag = p >= t
        tp = float((flag & (y == 1)).sum())
        fp = float((flag & (y == 0)).sum())
        fn = float((~flag & (y == 1)).sum())
        if fp / clean > cap or tp == 0:
            continue
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best:
            best, best_t = f1, float(t)
    return best_t


def _stop_threshold(p: Floats, y: Floats, cap: float) -> float:
    clean = np.sort(p[y == 0])
    if clean.size == 0:
        return 0.5
    k = int(np.floor(cap * clean.size))
    return float(min(clean[-(k + 1)] + 1e-4, 0.999))


def _release_threshold(p: Floats, y: Floats, miss: float) -> float:
    bad = np.sort(p[y == 1])
    if bad.size == 0:
        return 0.5
    k = int(np.floor(miss * bad.size))
    return float(max(bad[k], 1e-4))


def choose_thresholds(
    whole: Floats, early: Floats, y: Floats, long: npt.NDArray[np.bool_], s: TrainSettings
) -> Thresholds:
    """Thresholds from out-of-fold probabilities (see `Thresholds`)."""
    flag = _best_f1(whole, y, s.fpr_cap)
    el, yl = early[long], y[long]
    stop = _stop_threshold(el, yl, s.early_fpr_cap)
    # Release at least `release_clean` of clean answers at the first window, so holds stay short.
    clean = np.sort(el[yl == 0])
    floor = float(clean[int(s.release_clean * (clean.size - 1))]) if clean.size else 0.0
    release = min(max(_release_threshold(el, yl, s.release_miss), floor + 1e-4), stop)
    settle = min(max(_best_f1(el, yl, s.fpr_cap), release), stop)
    return Thresholds(flag=flag, stop=stop, release=release, settle=settle)


def train_scorer(
    data: Sequence[Featurized],
    examples: Sequence[Example],
    s: TrainSettings,
    calibrate: Sequence[bool] | None = None,
) -> Scorer:
    """Fit both models on all rows; pick thresholds on inner folds grouped by model.

    Only rows marked in `calibrate` (default: all) choose the thresholds, so that extra
    training sets of another shape do not move them.
    """
    y = np.asarray([1.0 if ex.censored else 0.0 for ex in examples])
    long = np.asarray([d.long for d in data])
    folds = group_folds([ex.model for ex in examples], s.inner_folds)
    oof_whole = np.zeros(len(data))
    oof_early = np.zeros(len(data))
    for f in range(s.inner_folds):
        train = [i for i, g in enumerate(folds) if g != f]
        test = [i for i, g in enumerate(folds) if g == f]
        if not test or not train:
            continue
        mw = fit([data[i].whole for i in train], y[train], s)
        me = fit([data[i].early for i in train], y[train], s)
        for i in test:
            oof_whole[i] = mw.probability(data[i].whole)
            oof_early[i] = me.probability(data[i].early)
    mask = np.asarray(calibrate if calibrate is not None else [True] * len(data))
    thresholds = choose_thresholds(oof_whole[mask], oof_early[mask], y[mask], long[mask], s)
    whole = fit([d.whole for d in data], y, s)
    early = fit([d.early for d in data], y, s)
    return Scorer(whole=whole, early=early, thresholds=thresholds)


def write_scorer(scorer: Scorer, path: pathlib.Path, meta: dict[str, object]) -> None:
    """Write the weights file the loader reads."""
    t = scorer.thresholds
    doc = {
        "format": "candor-linear/1",
        "meta": meta,
        "thresholds": {
            "flag": round(t.flag, 4),
            "stop": round(t.stop, 4),
            "release": round(t.release, 4),
            "settle": round(t.settle, 4),
        },
        "whole": {"bias": scorer.whole.bias, "weights": dict(sorted(scorer.whole.weights.items()))},
        "early": {"bias": scorer.early.bias, "weights": dict(sorted(scorer.early.weights.items()))},
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
