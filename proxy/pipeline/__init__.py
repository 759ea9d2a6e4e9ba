"""request -> upstream -> detect -> act, for whole answers and for streams."""

from __future__ import annotations

from proxy.pipeline.annotate import annotation
from proxy.pipeline.streamed import StreamedAnswers
from proxy.pipeline.types import ChatRequest, JudgingDetector, Reply, StreamReply, TopicReader
from proxy.pipeline.whole import WholeAnswers


class Pipeline(WholeAnswers, StreamedAnswers):
    """The request path. Routes call `complete` or `stream`; nothing here knows HTTP."""


__all__ = [
    "ChatRequest",
    "JudgingDetector",
    "Pipeline",
    "Reply",
    "StreamReply",
    "TopicReader",
    "annotation",
]
