"""The app factory's parts (the app itself is tested end to end in tests/e2e/)."""

from __future__ import annotations

import logging

import pytest

from proxy import app
from proxy.detect import native
from proxy.detect.engine import CandorDetector
from proxy.settings import Settings


def test_a_detector_without_the_c_extension_works_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(native, "AVAILABLE", False)
    with caplog.at_level(logging.WARNING, logger="proxy.app"):
        detector = app.build_detector(Settings())
    assert isinstance(detector, CandorDetector) and not detector.native_sums
    assert "_sums.c is not built" in caplog.text


def test_a_detector_with_the_c_extension_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("proxy.detect._sums", reason="the C extension is not built")
    with caplog.at_level(logging.WARNING, logger="proxy.app"):
        detector = app.build_detector(Settings())
    assert isinstance(detector, CandorDetector) and detector.native_sums
    assert "_sums.c" not in caplog.text
