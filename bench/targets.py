"""The issue's targets, checked against a report: each with its value and met or missed."""

from __future__ import annotations

from typing import Any

CANDOR = "candor-1w"


def _target(name: str, goal: str, value: Any, met: bool | None) -> dict[str, Any]:
    return {"name": name, "target": goal, "value": value, "met": met}


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets measured on this machine (2 cores); `met` is None when not measured."""
    rows = report.get("nonstreamed", {})
    ratios = report.get("ratios", {})
    out = []
    vs_litellm = ratios.get(f"{CANDOR}/litellm", {}).get("20")
    out.append(
        _target(
            "throughput vs LiteLLM proxy, 20 concurrent",
            ">= 25x",
            vs_litellm,
            None if vs_litellm is None else vs_litellm >= 25,
        )
    )
    vs_bare = ratios.get(f"{CANDOR}/passthrough", {}).get("20")
    out.append(
        _target(
            "throughput vs bare FastAPI+aiohttp pass-through, 20 concurrent",
            ">= 0.8x",
            vs_bare,
            None if vs_bare is None else vs_bare >= 0.8,
        )
    )
    if CANDOR in rows:
        added = ratios["added_latency_at_1"][CANDOR]["p50_ms"]
        out.append(
            _target("added p50 latency, 1 concurrent, non-streamed", "<= 1 ms", added, added <= 1)
        )
    for answer in ("clean", "censored"):
        flag = report.get("streams", {}).get(f"candor-flag/{answer}")
        if flag is not None:
            added_ttft = flag["added"]["ttft_p50_ms"]
            out.append(
                _target(
                    f"added time to first token, flag mode, {answer} answers (p50, 1 stream)",
                    "<= 1 ms",
                    added_ttft,
                    added_ttft <= 1,
                )
            )
    scale = report.get("scale")
    if scale is not None:
        rss = max(scale["peak_rss_mb_per_worker"].values())
        ok = scale["error_count"] == 0 and scale["peak_open"] >= scale["streams"]
        out.append(
            _target(
                f"{scale['streams']} concurrent streams: no error",
                "0 errors, all open at once",
                {"errors": scale["error_count"], "peak_open": scale["peak_open"]},
                ok,
            )
        )
        out.append(_target("RSS per worker under the stream load", "<= 300 MB", rss, rss <= 300))
    probe = report.get("startup_probe", {}).get("openai-only")
    if probe is not None:
        out.append(
            _target(
                "litellm not imported with only OpenAI-compatible models",
                "not imported",
                "imported" if probe["litellm_imported"] else "not imported",
                not probe["litellm_imported"],
            )
        )
    return out
