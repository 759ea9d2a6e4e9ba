"""The systems under test, each started in its own process(es) with a generated config.

(a) the upstream directly, (b) Candor (`candor serve --config`), (c) LiteLLM's proxy from its
own virtualenv, (d) a bare FastAPI + aiohttp pass-through.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Service, free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO_POLICIES = BENCH_DIR.parent / "policies"
LITELLM_VENV = BENCH_DIR / ".venv-litellm"
LITELLM_SPEC = "litellm[proxy]>=1.100,<1.109.1"
MODELS = ("bench", "bench-censored")


def upstream(out: Path, name: str, token_delay: float = 0.0, repeat: int = 1) -> Service:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    cmd += ["--token-delay", str(token_delay), "--stream-repeat", str(repeat)]
    return Service(name, cmd, port, health_path="/health", log_dir=out / "logs")


def passthrough(out: Path, upstream_url: str) -> Service:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.passthrough", "--port", str(port)]
    cmd += ["--upstream", upstream_url]
    return Service("passthrough", cmd, port, log_dir=out / "logs")


class CandorKeys:
    """A client key and an admin key for one run (Candor refuses to start without them)."""

    def __init__(self) -> None:
        self.client = "ck-bench-" + secrets.token_urlsafe(24)
        self.admin = secrets.token_urlsafe(24)

    def client_hash(self) -> str:
        from proxy.auth import hash_key  # the service's own hashing, so the config matches

        return hash_key(self.client, None)


def policy_for(mode: str, out: Path) -> dict[str, Any] | None:
    """A policies folder whose `bench-<mode>` policy does `mode`; None for an unknown mode.

    The folder holds the repo's detector data (linked) and its default policy, plus one policy
    per mode: `flag` passes answers and flags them, `reroute` holds streams and re-routes
    censored answers to the clean bench model.
    """
    bodies = {
        "flag": {"action": "flag"},
        "reroute": {"action": "reroute", "fallbacks": ["bench"]},
    }
    if mode not in bodies:
        return None
    folder = (out / "policies").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "detector"
    if not link.exists():
        link.symlink_to(REPO_POLICIES / "detector", target_is_directory=True)
    default = REPO_POLICIES / "default.yaml"
    if default.exists():
        (folder / "default.yaml").write_text(default.read_text())
    (folder / f"bench-{mode}.yaml").write_text(yaml.safe_dump(bodies[mode]))
    return {"policies_dir": str(folder), "policy": f"bench-{mode}", **bodies[mode]}


def candor_config(
    upstream_url: str,
    port: int,
    workers: int,
    keys: CandorKeys,
    policy: dict[str, Any] | None = None,
    extra_models: dict[str, Any] | None = None,
    detector: str = "default",
) -> dict[str, Any]:
    """A Candor config routing the bench models to `upstream_url`, detection on.

    Without `policy` the models use the repo's `policies/default.yaml`.
    """
    route: dict[str, Any] = {"base_url": upstream_url}
    if policy is not None:
        route["policy"] = policy["policy"]
    models: dict[str, Any] = {name: dict(route) for name in MODELS}
    models.update(extra_models or {})
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "workers": workers, "log_level": "warning"},
        "auth": {"mode": "keys", "keys": [{"id": "bench", "hash": keys.client_hash()}]},
        "models": models,
        "detector": detector,
    }
    if policy is not None:
        config["policies_dir"] = policy["policies_dir"]
    return config


def candor(
    out: Path,
    name: str,
    upstream_url: str,
    workers: int,
    keys: CandorKeys,
    policy: dict[str, Any] | None = None,
    extra_models: dict[str, Any] | None = None,
    detector: str = "default",
) -> Service:
    port = free_port()
    path = out / f"{name}.yaml"
    config = candor_config(upstream_url, port, workers, keys, policy, extra_models, detector)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path)]
    env = {"CANDOR_ADMIN_KEY": keys.admin}
    return Service(name, cmd, port, health_path="/readyz", env=env, log_dir=out / "logs")


def ensure_litellm(log: Path) -> Path:
    """LiteLLM's proxy in its own virtualenv (created once, reused after)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        subprocess.run(
            [sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, stdout=sink, stderr=sink
        )
        pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q", LITELLM_SPEC]
        subprocess.run(pip, check=True, stdout=sink, stderr=sink, timeout=900)
    return binary


def litellm(out: Path, upstream_url: str, master_key: str) -> Service:
    binary = ensure_litellm(out / "logs" / "litellm-install.log")
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": f"openai/{name}",
                    "api_base": upstream_url,
                    "api_key": "sk-bench",
                },
            }
            for name in MODELS
        ],
        "litellm_settings": {"telemetry": False},
    }
    path = out / "litellm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [str(binary), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    env = {
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    return Service(
        "litellm", cmd, port, health_path="/health/liveliness", env=env, log_dir=out / "logs"
    )
