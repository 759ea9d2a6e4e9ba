"""Two versions of the detector timed in one process, interleaved, so the machine's drift cancels.

Usage: python bench/detector_ab.py REV [--rounds N]
The `proxy` package and `policies/` of git revision REV are loaded beside the working tree's.
Both judge the bench answers (see `detector_latency.py`), taking turns at going first. Prints the
p50 of each, the ratio (working tree / REV), whether each used the C extension's sums (REV's is
compiled from its source) and how many verdicts differ in status, category or score. Run it
with REV set to HEAD first: an A/A run shows the noise (ratios near 1.00).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import pathlib
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from typing import Any

from detector_latency import exchanges, quantiles

from proxy.offline.loader import load_detector

ROOT = pathlib.Path(__file__).resolve().parents[1]
# `proxy.x` and `from proxy import` become `proxy_base...`: the two packages cannot share a name.
_IMPORT = re.compile(r"(?<![\w-])proxy(?=\.[a-z_]|\s+import\b)")


def _load_revision(rev: str, into: pathlib.Path) -> tuple[Any, Any]:
    """REV's detector and its `Exchange` type, from a copy of its package renamed `proxy_base`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "proxy", "policies"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "proxy").rename(into / "proxy_base")
    for path in (into / "proxy_base").rglob("*.py"):
        path.write_text(_IMPORT.sub("proxy_base", path.read_text("utf-8")), "utf-8")
    _build_extension(into / "proxy_base" / "detect" / "_sums.c")
    sys.path.insert(0, str(into))
    loader = importlib.import_module("proxy_base.offline.loader")
    detect = importlib.import_module("proxy_base.detect")
    return loader.load_detector(into / "policies"), detect.Exchange


def _build_extension(source: pathlib.Path) -> None:
    """REV's C speed-up, built beside its source as setup.py would (if REV has one)."""
    if not source.exists():
        return
    target = source.with_name("_sums" + sysconfig.get_config_var("EXT_SUFFIX"))
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    command = [*compiler, "-O3", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)]
    subprocess.run(command, check=True, timeout=120)


def _key(verdict: Any) -> tuple[str, str, float]:
    return verdict.status.value, verdict.category.value, round(verdict.score, 9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base, base_exchange = _load_revision(args.rev, pathlib.Path(tmp))
        work = load_detector()
        answers = exchanges()
        base_answers = [base_exchange(messages=e.messages, answer=e.answer) for e in answers]
        differ = sum(
            _key(work.judge(a)) != _key(base.judge(b))
            for a, b in zip(answers, base_answers, strict=True)
        )
        times: dict[str, list[int]] = {"rev": [], "work": []}
        for r in range(args.rounds):
            for a, b in zip(answers, base_answers, strict=True):
                turns = [("work", work, a), ("rev", base, b)]
                for name, detector, exchange in turns if r % 2 else turns[::-1]:
                    start = time.perf_counter_ns()
                    detector.judge(exchange)
                    times[name].append(time.perf_counter_ns() - start)
    p50 = {name: quantiles(t)["p50_us"] for name, t in times.items()}
    report = {
        "rev": args.rev,
        "p50_us_rev": p50["rev"],
        "p50_us_work": p50["work"],
        "ratio": round(p50["work"] / p50["rev"], 3),
        "native_rev": getattr(base, "native_sums", False),
        "native_work": work.native_sums,
        "verdicts_differ": differ,
        "answers": len(answers),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
