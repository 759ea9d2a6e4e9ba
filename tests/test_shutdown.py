"""ShutdownWatch: when a request cancelled is the server's cut rather than its client leaving."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from proxy.shutdown import ShutdownWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_are_the_servers_to_cut_once_the_grace_is_over() -> None:
    clock = Clock()
    watch = ShutdownWatch(grace=30, clock=clock)
    assert not watch.cutting
    watch.begin()
    clock.now += 29.9
    assert not watch.cutting  # a client hanging up now has left
    watch.begin()  # a second signal does not move the grace
    clock.now += 0.1
    assert watch.cutting


def test_a_signal_is_noted_then_goes_on_to_the_servers_handler() -> None:
    received: list[int] = []

    def server(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    before = signal.signal(signal.SIGTERM, server)
    try:
        watch = ShutdownWatch(grace=0)
        with watch.signals():
            signal.raise_signal(signal.SIGTERM)
            assert watch.cutting
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is server  # the server's again after
    finally:
        signal.signal(signal.SIGTERM, before)


def test_nothing_is_installed_where_no_server_handles_the_signal() -> None:
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with ShutdownWatch(grace=0).signals():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def test_off_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def enter() -> None:
        with ShutdownWatch(grace=0).signals():
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [before]
