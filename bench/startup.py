"""Start-up of one Candor app in this process: import, build, lifespan; is litellm imported?

Candor imports litellm only when a model's provider is not OpenAI-compatible; this checks it
from inside the process that would serve (`sys.modules` after the lifespan has started).

Run: `CANDOR_ADMIN_KEY=... python -m bench.startup --config candor.yaml`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


async def probe(config: Path) -> dict[str, Any]:
    began = time.perf_counter()
    from proxy.app import create_app
    from proxy.settings import load_settings

    imported = time.perf_counter()
    app = create_app(load_settings(config))
    built = time.perf_counter()
    async with app.router.lifespan_context(app):
        ready = time.perf_counter()
        litellm_loaded = "litellm" in sys.modules
    return {
        "import_s": round(imported - began, 3),
        "create_app_s": round(built - imported, 3),
        "lifespan_s": round(ready - built, 3),
        "total_s": round(ready - began, 3),
        "litellm_imported": litellm_loaded,
        "modules_loaded": len(sys.modules),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time Candor's start-up in one process")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(asyncio.run(probe(args.config))) + "\n")


if __name__ == "__main__":
    main()
