"""Shared fixtures. No test may reach the internet: the guard below fails any that tries."""

from __future__ import annotations

import ipaddress
import pathlib
import shutil
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from proxy.offline.loader import DEFAULT_POLICIES, PolicyError, load_detector

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect


def _is_local(host: Any) -> bool:
    if not isinstance(host, str | bytes):
        return True
    name = host.decode() if isinstance(host, bytes) else host
    if name in ("localhost", "") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host):
        raise OSError(f"test tried to reach the network: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise OSError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_internet() -> Iterator[None]:
    """Loopback only, for the whole run."""
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    yield
    socket.getaddrinfo = _real_getaddrinfo
    socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture
def policies_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the shipped detector policies (`policies/detector/`) to edit."""
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES / "detector", target / "detector")
    return target


@pytest.fixture
def detector_yaml_error(policies_copy: pathlib.Path) -> Callable[[str, str, str], None]:
    """`check(old, new, match)`: a copy of the shipped `detector.yaml` with `old` replaced by
    `new` fails to load with a `PolicyError` matching `match`."""
    target = policies_copy
    cfg = target / "detector" / "detector.yaml"
    text = cfg.read_text(encoding="utf-8")

    def check(old: str, new: str, match: str) -> None:
        assert old in text
        cfg.write_text(text.replace(old, new, 1), encoding="utf-8")
        with pytest.raises(PolicyError, match=match):
            load_detector(target)

    return check
