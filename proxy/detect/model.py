"""The learned scorer: a logistic model over named sparse features, plus its thresholds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def weight_sum(weights: Mapping[Any, float], keys: Iterable[Any]) -> float:
    """The summed weights of binary features `keys`; keys without a weight add nothing."""
    return float(sum(filter(None, map(weights.get, keys))))


@dataclass(frozen=True, slots=True)
class LinearModel:
    """`sigmoid(bias + sum(weight[f] * value))`; unknown features weigh nothing."""

    weights: Mapping[str, float] = field(default_factory=dict)
    bias: float = 0.0

    def grams_sum(self, grams: Iterable[str]) -> float:
        """The summed weights of binary features."""
        return weight_sum(self.weights, grams)

    def terms(self, feats: Mapping[str, float]) -> list[tuple[str, float]]:
        """Each valued feature with its share of the logit (weight times value), in order.

        `bias + sum` of the shares is `logit(feats)`; the shares also explain the verdict.
        """
        get = self.weights.get
        return [(k, get(k, 0.0) * v) for k, v in feats.items()]

    def logit(self, feats: Mapping[str, float], grams: Iterable[str] = ()) -> float:
        """The raw score of valued features plus binary features `grams`."""
        get = self.weights.get
        total = self.bias + sum(get(k, 0.0) * v for k, v in feats.items())
        return total + self.grams_sum(grams)

    def probability(self, feats: Mapping[str, float], grams: Iterable[str] = ()) -> float:
        """The calibrated probability that the answer is censored."""
        return sigmoid(self.logit(feats, grams))


def sigmoid(z: float) -> float:
    """The logistic function, safe from overflow."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Decision points on probabilities.

    `flag`: whole answers at or above are censored. `stop` / `release`: the early (first-window)
    score at or above `stop` stops a stream, below `release` lets it flow; between, hold on
    until the hold bound, then stop at or above `settle`.
    """

    flag: float = 0.5
    stop: float = 0.8
    release: float = 0.2
    settle: float = 0.5


@dataclass(frozen=True, slots=True)
class Scorer:
    """The whole-answer model, the first-window model and their thresholds."""

    whole: LinearModel = field(default_factory=LinearModel)
    early: LinearModel = field(default_factory=LinearModel)
    thresholds: Thresholds = field(default_factory=Thresholds)
