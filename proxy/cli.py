"""The `candor` command: serve, demo, and the detector's offline tools."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from proxy import __version__
from proxy.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        from proxy import logs  # here: it imports uvicorn, which most commands never need

        logs.report_error(exc.message)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C (`candor scan` waiting on a terminal, a long `eval` or `probe`): no traceback.
        print("\ncandor: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="candor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"candor {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", type=Path, help="YAML config file (env: CANDOR_CONFIG)")
    serve.add_argument("--host", help="bind address (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default from config: 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default from config: 1)")
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.add_argument(
        "--log-format", choices=["text", "json"], help="json: one object per line (default: text)"
    )
    serve.set_defaults(func=_serve)

    from proxy.commands import demo, events, keys, probe
    from proxy.offline import commands as detector_commands

    detector_commands.register(sub)  # scan, eval, train
    demo.register(sub)
    keys.register(sub)
    events.register(sub)
    probe.register(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from proxy.commands.serve import run

    env_config = os.environ.get("CANDOR_CONFIG")
    config = args.config or (Path(env_config) if env_config else None)
    overrides = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_format": args.log_format,
    }
    run(config, overrides, access_log=args.access_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
