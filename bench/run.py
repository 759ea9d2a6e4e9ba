"""Run every benchmark in one go and write `bench/out/report.json` and `bench/out/chart.png`.

Every system runs in its own process(es) against the same local upstream; the load generators
run in their own processes too. Ratios are taken within this one run, since absolute figures
drift on a shared machine.

Run: `python -m bench.run [--quick]` (what `make bench` does).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import shutil
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import systems
from bench.chart import draw
from bench.load import chat_body, require_wrk, run_wrk
from bench.procs import Sampler, Service, machine, run_json_tool
from bench.targets import evaluate

CONCURRENCY = (1, 20, 100)
MEDIAN_KEYS = ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cpu_ms_per_request")
NOFILE = 65536


def raise_nofile() -> int:
    """Raise the open-files limit for this process and its children (1,000 streams)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def log(message: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
    sys.stderr.write(f"[bench {stamp}] {message}\n")
    sys.stderr.flush()


def post(url: str, body: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def sanity(service: Service, key: str) -> dict[str, Any]:
    """One clean and one censored request: the system answers, and Candor judges."""
    url = f"{service.url}/v1/chat/completions"
    found: dict[str, Any] = {}
    for model in systems.MODELS:
        status, body = post(url, chat_body(model), key)
        if status != 200 or not body.get("choices"):
            raise RuntimeError(f"{service.name}: bad answer for {model}: {status} {body}")
        candor = body.get("candor")
        if isinstance(candor, dict):
            found[model] = {"verdict": candor.get("verdict"), "action": candor.get("action")}
    return found


def nonstreamed(
    services: dict[str, Service], keys: dict[str, str], seconds: float, rounds: int
) -> dict[str, Any]:
    """wrk at 1, 20 and 100 connections; systems interleaved, `rounds` times, medians kept.

    Interleaving spreads the drift of a shared machine over every system alike; the server's
    CPU time per request is also kept, as it drifts less than throughput does.
    """
    results: dict[str, dict[str, Any]] = {name: {} for name in services}
    for name, service in services.items():
        run_wrk(f"{service.url}/v1/chat/completions", chat_body("bench"), 4, 1, keys[name])
    for concurrency in CONCURRENCY:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in services}
        for _ in range(rounds):
            for name, service in services.items():
                url = f"{service.url}/v1/chat/completions"
                with Sampler(service.workers()) as sampler:
                    result = run_wrk(url, chat_body("bench"), concurrency, seconds, keys[name])
                row = result.to_dict()
                cpu = sampler.usage.cpu_percent * sampler.usage.seconds / 100
                row["cpu_ms_per_request"] = round(1000 * cpu / max(result.requests, 1), 3)
                row["server_cpu_percent"] = round(sampler.usage.cpu_percent)
                row["peak_rss_mb_per_worker"] = round(max(sampler.usage.peak_rss_mb.values()), 1)
                runs[name].append(row)
        for name, rows in runs.items():
            merged = {k: statistics.median(r[k] for r in rows) for k in MEDIAN_KEYS}
            merged["errors"] = sum(r["errors"] for r in rows)
            merged["requests"] = sum(r["requests"] for r in rows)
            merged["peak_rss_mb_per_worker"] = max(r["peak_rss_mb_per_worker"] for r in rows)
            merged["rounds"] = [{k: r[k] for k in ("rps", "p50_ms", "p99_ms")} for r in rows]
            results[name][str(concurrency)] = merged
            log(
                f"non-streamed {name:>16} c={concurrency:<3} {merged['rps']:>8.1f} req/s "
                f"p50 {merged['p50_ms']:.2f} ms p99 {merged['p99_ms']:.2f} ms "
                f"cpu {merged['cpu_ms_per_request']:.3f} ms/req errors {merged['errors']}"
            )
    return results


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """(b)/(a), (b)/(c), (b)/(d) throughput, and latency added over the upstream at 1."""
    out: dict[str, Any] = {}
    for candor in [n for n in rows if n.startswith("candor")]:
        mine = rows[candor]
        for other, label in (("upstream", "a"), ("litellm", "c"), ("passthrough", "d")):
            if other not in rows:
                continue
            out[f"{candor}/{other}"] = {
                c: round(mine[c]["rps"] / max(rows[other][c]["rps"], 1e-9), 2) for c in mine
            }
            out[f"{candor}/{other}"]["label"] = f"(b)/({label})"
            out[f"{candor}/{other}"]["cpu_per_request"] = round(
                mine["20"]["cpu_ms_per_request"]
                / max(rows[other]["20"]["cpu_ms_per_request"], 1e-9),
                2,
            )
    added = {}
    bare = rows.get("passthrough")
    for name, row in rows.items():
        if name != "upstream":
            added[name] = {
                "p50_ms": round(row["1"]["p50_ms"] - rows["upstream"]["1"]["p50_ms"], 3),
                "p99_ms": round(row["1"]["p99_ms"] - rows["upstream"]["1"]["p99_ms"], 3),
            }
            if bare is not None:
                added[name]["p50_ms_over_passthrough"] = round(
                    row["1"]["p50_ms"] - bare["1"]["p50_ms"], 3
                )
    out["added_latency_at_1"] = added
    return out


def stream_client(
    base_url: str, model: str, answer: str, key: str, n: int, concurrency: int
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.streamclient", "latency", "--url", base_url]
    cmd += ["--model", model, "--answer", answer, "--key", key, "--n", str(n)]
    cmd += ["--concurrency", str(concurrency)]
    return dict(json.loads(run_json_tool(cmd, timeout=300)))


def streams(
    services: dict[str, Service], keys: dict[str, str], n1: int, n10: int
) -> dict[str, dict[str, Any]]:
    """TTFT and inter-chunk gaps for clean and censored answers through each system.

    One stream at a time (`name/answer`: what Candor itself adds) and 10 at once
    (`name/answer@10`).
    """
    results: dict[str, dict[str, Any]] = {}
    for concurrency, n, suffix in ((1, n1, ""), (10, n10, "@10")):
        for name, service in services.items():
            for model, answer in (("bench", "clean"), ("bench-censored", "censored")):
                result = stream_client(
                    f"{service.url}/v1", model, answer, keys[name], n, concurrency
                )
                result["concurrency"] = concurrency
                results[f"{name}/{answer}{suffix}"] = result
                log(
                    f"stream {name:>15} {answer + suffix:<11} TTFT p50 "
                    f"{result['ttft']['p50_ms']:.2f} ms gap p50 "
                    f"{result['inter_chunk']['p50_ms']:.2f} p99 "
                    f"{result['inter_chunk']['p99_ms']:.2f} ms errors {result['errors']} "
                    f"actions {result['actions']} by {result['answered_by']}"
                )
    for key, result in results.items():
        name, case = key.split("/")
        base = results[f"upstream/{case}"]
        result["added"] = {
            "ttft_p50_ms": round(result["ttft"]["p50_ms"] - base["ttft"]["p50_ms"], 3),
            "ttft_p99_ms": round(result["ttft"]["p99_ms"] - base["ttft"]["p99_ms"], 3),
            "inter_chunk_p50_ms": round(
                result["inter_chunk"]["p50_ms"] - base["inter_chunk"]["p50_ms"], 3
            ),
            "inter_chunk_p99_ms": round(
                result["inter_chunk"]["p99_ms"] - base["inter_chunk"]["p99_ms"], 3
            ),
        }
        bare = results.get(f"passthrough/{case}")
        if bare is not None:
            result["added"]["ttft_p50_ms_over_passthrough"] = round(
                result["ttft"]["p50_ms"] - bare["ttft"]["p50_ms"], 3
            )
    return results


def scale(
    service: Service, key: str, streams_open: int, seconds: float, ramp: float
) -> dict[str, Any]:
    """Hold many streams open through one system; errors, RSS per worker, CPU.

    Run against the upstream itself it gives the ceiling of the client and upstream.
    """
    cmd = [sys.executable, "-m", "bench.streamclient", "scale", "--url", f"{service.url}/v1"]
    cmd += ["--model", "bench", "--key", key, "--streams", str(streams_open)]
    cmd += ["--seconds", str(seconds), "--ramp", str(ramp)]
    workers = service.workers()
    with Sampler(workers, interval=0.5) as sampler:
        result = dict(json.loads(run_json_tool(cmd, timeout=seconds + 120)))
    result["server_cpu_percent"] = round(sampler.usage.cpu_percent)
    result["workers"] = len(workers)
    result["peak_rss_mb_per_worker"] = {
        str(pid): round(mb, 1) for pid, mb in sampler.usage.peak_rss_mb.items()
    }
    return result


def startup_probe(config: Path, admin_key: str, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.startup", "--config", str(config)]
    return dict(
        json.loads(run_json_tool(cmd, timeout=120, env={"CANDOR_ADMIN_KEY": admin_key, **env}))
    )


def detector_alone(data: Path, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.detector", "--data", str(data)]
    if quick:
        cmd += ["--limit", "400", "--stream-limit", "50"]
    return dict(json.loads(run_json_tool(cmd, timeout=300)))


def idle_rss(service: Service) -> dict[str, float]:
    time.sleep(0.5)
    return {str(pid): round(mb, 1) for pid, mb in service.tree_rss_mb().items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Candor against a direct call, LiteLLM")
    parser.add_argument("--quick", action="store_true", help="short runs (about 3 to 4 minutes here)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved wrk rounds")
    parser.add_argument("--stream-n1", type=int, default=12, help="streams, one at a time")
    parser.add_argument("--stream-n", type=int, default=40, help="streams, 10 at a time")
    parser.add_argument("--token-delay", type=float, default=0.02, help="stream case: 50 tok/s")
    parser.add_argument("--scale-streams", type=int, default=1000)
    parser.add_argument("--scale-seconds", type=float, default=60.0)
    parser.add_argument("--scale-token-delay", type=float, default=0.1, help="scale: 10 tok/s")
    parser.add_argument("--scale-workers", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/speechmap_dev.jsonl"))
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's proxy")
    parser.add_argument("--modes", default="flag,reroute", help="stream policy modes to measure")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.scale_seconds = 2.0, 1, 15.0
        args.stream_n1, args.stream_n = 5, 20
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    require_wrk()
    began = time.perf_counter()
    out: Path = args.out
    shutil.rmtree(out / "logs", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    nofile = raise_nofile()
    ckeys = systems.CandorKeys()
    litellm_key = "sk-bench-" + ckeys.admin
    report: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": {**machine(), "python": platform.python_version(), "nofile": nofile},
    }
    log(f"machine: {report['machine']}")

    with ExitStack() as stack:
        fast = stack.enter_context(systems.upstream(out, "upstream-fast"))
        fast_url = f"{fast.url}/v1"
        services: dict[str, Service] = {"upstream": fast}
        builders: list[tuple[str, Callable[[], Service]]] = [
            ("passthrough", lambda: systems.passthrough(out, fast_url)),
            ("candor-1w", lambda: systems.candor(out, "candor-1w", fast_url, 1, ckeys)),
            ("candor-2w", lambda: systems.candor(out, "candor-2w", fast_url, 2, ckeys)),
            (
                "candor-nodetect",
                lambda: systems.candor(out, "candor-nodetect", fast_url, 1, ckeys, detector="none"),
            ),
        ]
        if not args.no_litellm:
            builders.append(("litellm", lambda: systems.litellm(out, fast_url, litellm_key)))
        for name, build in builders:
            log(f"starting {name}")
            services[name] = stack.enter_context(build())
        keys = {n: ckeys.client if n.startswith("candor") else litellm_key for n in services}
        report["startup_seconds"] = {n: round(s.startup_seconds, 2) for n, s in services.items()}
        report["idle_rss_mb"] = {n: idle_rss(s) for n, s in services.items()}
        report["sanity"] = {n: sanity(s, keys[n]) for n, s in services.items()}
        log(f"sanity: {report['sanity']}")
        rows = nonstreamed(services, keys, args.seconds, args.rounds)
        report["nonstreamed"] = rows
        report["ratios"] = ratios(rows)
        report["after_load_rss_mb"] = {n: idle_rss(s) for n, s in services.items()}

    with ExitStack() as stack:
        slow = stack.enter_context(systems.upstream(out, "upstream-50tps", args.token_delay))
        slow_url = f"{slow.url}/v1"
        streamed: dict[str, Service] = {
            "upstream": slow,
            "passthrough": stack.enter_context(systems.passthrough(out, slow_url)),
        }
        report["stream_modes"] = {}
        for mode in args.modes.split(","):
            policy = systems.policy_for(mode, out)
            if policy is None:
                report["stream_modes"][mode] = "not measured: no policy config for this mode"
                continue
            report["stream_modes"][mode] = policy
            name = f"candor-{mode}"
            streamed[name] = stack.enter_context(
                systems.candor(out, name, slow_url, 1, ckeys, policy)
            )
        keys = {n: ckeys.client if n.startswith("candor") else litellm_key for n in streamed}
        report["streams"] = streams(streamed, keys, args.stream_n1, args.stream_n)

    log("detector alone")
    report["detector"] = detector_alone(args.data, args.quick)
    log(f"detector: {report['detector']}")

    with ExitStack() as stack:
        repeat = max(1, round(15 / (37 * args.scale_token_delay)))  # streams of about 15 s
        up = stack.enter_context(
            systems.upstream(out, "upstream-scale", args.scale_token_delay, repeat)
        )
        candor = stack.enter_context(systems.candor(out, "candor-scale", f"{up.url}/v1", 1, ckeys))
        direct_seconds = min(args.scale_seconds, 20.0)
        log(f"scale, direct to the upstream: {args.scale_streams} streams, {direct_seconds} s")
        direct = scale(up, "unused", args.scale_streams, direct_seconds, 5.0)
        log(f"scale direct: {direct}")
        log(f"scale: {args.scale_streams} streams for {args.scale_seconds} s")
        result = scale(candor, ckeys.client, args.scale_streams, args.scale_seconds, 5.0)
        result["direct_to_upstream"] = direct
        result["token_delay"] = args.scale_token_delay
        result["offered_events_per_s"] = round(args.scale_streams / args.scale_token_delay)
        result["upstream_cpu_percent_note"] = "upstream and client share the same 2 cores"
        report["scale"] = result
        log(f"scale: {result}")

    report["startup_probe"] = startup_checks(out, ckeys)
    report["targets"] = evaluate(report)
    report["elapsed_seconds"] = round(time.perf_counter() - began, 1)
    report["machine_after"] = machine()
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    draw(report, out / "chart.png")
    for target in report["targets"]:
        log(f"target {'MET   ' if target['met'] else 'MISSED'} {target['name']}: {target['value']}")
    log(f"wrote {out / 'report.json'} and {out / 'chart.png'} in {report['elapsed_seconds']} s")


def startup_checks(out: Path, ckeys: systems.CandorKeys) -> dict[str, Any]:
    """litellm stays out of a process with only OpenAI-compatible models, and comes in with one
    that is not; the idle RSS of both."""
    results: dict[str, Any] = {}
    anthropic = {
        "claude": {
            "provider": "anthropic",
            "upstream_model": "claude-bench",
            "api_key_env": "BENCH_FAKE_ANTHROPIC_KEY",
        }
    }
    env = {"BENCH_FAKE_ANTHROPIC_KEY": "not-a-real-key"}
    for name, extra in (("openai-only", None), ("with-anthropic", anthropic)):
        config = out / f"startup-{name}.yaml"
        body = systems.candor_config("http://127.0.0.1:9/v1", 0, 1, ckeys, None, extra)
        config.write_text(json.dumps(body))
        results[name] = startup_probe(config, ckeys.admin, env)
        service = systems.candor(
            out, f"candor-startup-{name}", "http://127.0.0.1:9/v1", 1, ckeys, None, extra
        )
        service.env = {**service.env, **env}
        with service:
            results[name]["serve_to_ready_s"] = round(service.startup_seconds, 2)
            results[name]["idle_rss_mb"] = round(max(idle_rss(service).values()), 1)
        log(f"startup {name}: {results[name]}")
    return results


if __name__ == "__main__":
    main()
