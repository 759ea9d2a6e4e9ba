"""The pure detection core: text in, typed verdict out. No I/O, no clock, no logger."""

from proxy.detect.verdict import (
    UNKNOWN,
    Category,
    Decision,
    Detector,
    Exchange,
    ProviderError,
    Signal,
    Status,
    StreamJudge,
    StreamStep,
    Verdict,
    answer_choice,
)

__all__ = [
    "UNKNOWN",
    "Category",
    "Decision",
    "Detector",
    "Exchange",
    "ProviderError",
    "Signal",
    "Status",
    "StreamJudge",
    "StreamStep",
    "Verdict",
    "answer_choice",
]
