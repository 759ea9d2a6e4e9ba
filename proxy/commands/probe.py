"""`candor probe`: send the built-in suite to any OpenAI-compatible endpoint and report how
much the model censors, per topic, language and category (table, JSON file, PNG chart)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from proxy.commands.argtypes import int_in, seconds
from proxy.errors import ConfigError


def register(sub: Any) -> None:
    """Add `candor probe` to the CLI's sub-commands."""
    probe = sub.add_parser(
        "probe",
        help="measure how much a model censors, per topic and language",
        description=__doc__,
    )
    probe.add_argument("--base-url", required=True, help="e.g. http://localhost:8000/v1")
    probe.add_argument("--model", required=True, help="the model name the endpoint knows")
    probe.add_argument("--api-key-env", help="environment variable holding the API key")
    probe.add_argument(
        "--languages", default="en,zh", help="comma-separated language codes (default en,zh)"
    )
    probe.add_argument(
        "--out",
        type=Path,
        default=Path("probe-report"),
        help="report folder (default probe-report)",
    )
    probe.add_argument("--concurrency", type=int_in(1), default=4, help="requests in flight (4)")
    probe.add_argument("--retries", type=int_in(0), default=3, help="retries on 429/5xx/errors (3)")
    probe.add_argument(
        "--timeout", type=seconds(allow_zero=False), default=120.0, help="seconds per request (120)"
    )
    probe.add_argument(
        "--backoff", type=seconds(allow_zero=True), default=1.0, help="first retry delay, s (1)"
    )
    probe.add_argument("--suite", type=Path, help="a suite file (default: the built-in one)")
    probe.add_argument(
        "--judge",
        choices=("auto", "detector", "candor"),
        default="auto",
        help="auto: Candor's own verdict when the endpoint is Candor, else the shipped detector",
    )
    probe.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    probe.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from proxy.offline.loader import load_detector
    from proxy.probe.chart import INSTALL_HINT, write_chart
    from proxy.probe.client import RetryPolicy
    from proxy.probe.report import render_table, summarize, to_json
    from proxy.probe.run import ProbeTarget, run_probe
    from proxy.probe.suite import default_suite, load_suite

    if not args.base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url must start with http:// or https://: {args.base_url!r}")
    # Checked before the run, which may take minutes: its report must have somewhere to go.
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the report folder: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: the report folder is not writable")
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    suite_path = args.suite or default_suite()
    prompts = load_suite(suite_path, languages)
    target = ProbeTarget(
        base_url=args.base_url,
        model=args.model,
        api_key=_api_key(args.api_key_env),
        concurrency=args.concurrency,
        timeout=args.timeout,
        retry=RetryPolicy(retries=args.retries, backoff=args.backoff),
    )
    detector = None if args.judge == "candor" else load_detector()
    print(
        f"probing {args.model} at {args.base_url}: {len(prompts)} prompts "
        f"({', '.join(languages)}), {args.concurrency} at a time",
        file=sys.stderr,
    )
    started = time.time()
    results = asyncio.run(
        run_probe(
            target,
            prompts,
            detector,
            mode=args.judge,
            progress_out=None if args.no_progress else sys.stderr,
        )
    )
    report = summarize(results)
    title = f"Censorship probe of {args.model} ({args.base_url})"
    print(render_table(report, title))
    stem = "probe-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", args.model)
    json_path, png_path = out / f"{stem}.json", out / f"{stem}.png"
    meta = {
        "model": args.model,
        "base_url": args.base_url,
        "languages": languages,
        "suite": str(suite_path),
        "judge": args.judge,
        "started_at": round(started, 3),
        "seconds": round(time.time() - started, 3),
    }
    from proxy import wire

    json_path.write_bytes(wire.dumps(to_json(report, meta)))
    print(f"\nJSON report: {json_path}")
    if write_chart(report, png_path, title=f"Censorship rate of {args.model} per topic"):
        print(f"chart: {png_path}")
    else:
        print(f"chart: skipped, matplotlib is not installed ({INSTALL_HINT})")
    failed = [r for r in results if r.error is not None]
    if failed:
        # The table counts errors per topic; this says what they were.
        judged = len(results) - len(failed)
        what = "no answer could be judged" if judged == 0 else "some prompts got no answer"
        print(
            f"candor probe: {what}: {len(failed)} of {len(results)} requests failed "
            f"(first: {failed[0].error})",
            file=sys.stderr,
        )
    return 0 if any(r.censored is not None for r in results) else 1


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"--api-key-env: environment variable {env_name} is not set")
    return value
