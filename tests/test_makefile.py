"""The Makefile's targets the README names: what each would run (`make -n`, nothing is run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make -n` in the repository, as on a fresh clone (no stamps yet)."""
    cmd = ["make", "-n", "-C", str(REPO), f"STAMP={tmp_path / 'stamps'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_serve_installs_candor_only(tmp_path: Path) -> None:
    # Before, `make serve` depended on `install`: the test tools' system packages (chromium,
    # prometheus, node and npm, as root) and the Node SDK, so it failed on a server without npm.
    done = dry_run(tmp_path, "serve", "CONFIG=candor.yaml")
    assert done.returncode == 0, done.stderr
    assert "pip install" in done.stdout
    assert "candor serve --config candor.yaml" in done.stdout
    assert "system-deps.sh" not in done.stdout and "npm" not in done.stdout


def test_serve_without_config_says_how(tmp_path: Path) -> None:
    (tmp_path / "stamps").mkdir()
    for stamp in ("system", "python", "node"):
        (tmp_path / "stamps" / stamp).touch()
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), f"STAMP={tmp_path / 'stamps'}", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "make serve CONFIG=path/to/candor.yaml" in done.stdout
