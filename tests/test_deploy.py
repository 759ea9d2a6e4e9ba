"""The deployment files, checked offline: Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate bundles them), docker-compose.yml against the Compose Specification's
schema, the Dockerfile, Grafana provisioning, and the configs and policies they ship."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from proxy.auth import startup_problems
from proxy.policy.model import load_policies
from proxy.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
VENDOR = REPO / "tests" / "vendor"
K8S = REPO / "deploy" / "k8s" / "base"
COMPOSE = REPO / "docker-compose.yml"
GRAFANA = REPO / "deploy" / "grafana"
K8S_VERSION = "1.32"
KUBECTL = shutil.which("kubectl")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


def manifests() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in load_all(K8S / name)]


def servicemonitor_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((VENDOR / "servicemonitor.schema.json").read_text())
    return schema


def validate_k8s(doc: dict[str, Any]) -> None:
    """Raise on an invalid manifest: built-in kinds by the bundled schemas, strict (unknown
    fields are errors), the ServiceMonitor custom resource by its own schema."""
    if doc["kind"] == "ServiceMonitor":
        jsonschema.Draft202012Validator(servicemonitor_schema()).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in manifests() if d["kind"] == kind]
    return doc


def test_every_kubernetes_manifest_passes_schema_validation() -> None:
    docs = manifests()
    kinds = {d["kind"] for d in docs}
    assert kinds == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    }
    for doc in docs:
        validate_k8s(doc)


def test_the_validation_catches_a_mistake() -> None:
    deployment = by_kind("Deployment")
    deployment["spec"]["replica"] = 2  # typo for replicas
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(deployment)
    monitor = by_kind("ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s(monitor)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
def test_the_kustomize_build_validates(tmp_path: Path) -> None:
    """What `kubectl apply -k` would send, with secrets.env filled from the example."""
    assert KUBECTL is not None
    base = tmp_path / "base"
    shutil.copytree(K8S, base)
    (base / "secrets.env").write_text((K8S / "secrets.env.example").read_text())  # placeholders
    done = subprocess.run(
        [KUBECTL, "kustomize", str(base)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    for doc in docs:
        validate_k8s(doc)
    kinds = sorted(d["kind"] for d in docs)
    assert "ConfigMap" in kinds and "Secret" in kinds
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")["metadata"]["name"]
    secret = next(d for d in docs if d["kind"] == "Secret")["metadata"]["name"]
    assert pod["volumes"][0]["configMap"]["name"] == config_map  # hashed names are wired
    assert pod["containers"][0]["envFrom"][0]["secretRef"]["name"] == secret


def test_kustomize_refuses_to_build_without_the_secrets_file(tmp_path: Path) -> None:
    assert "deploy/k8s/base/secrets.env" in (REPO / ".gitignore").read_text()
    if KUBECTL is not None:
        base = tmp_path / "base"
        shutil.copytree(K8S, base)
        (base / "secrets.env").unlink(missing_ok=True)  # a developer's own, never committed
        done = subprocess.run(
            [KUBECTL, "kustomize", str(base)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0
        assert "secrets.env" in done.stderr
    example = (K8S / "secrets.env.example").read_text()
    assert {"REDIS_URL", "CANDOR_ADMIN_KEY"} <= set(re.findall(r"^([A-Z_]+)=", example, re.M))


def test_the_deployment_is_probed_limited_and_unprivileged() -> None:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Redis is external: its URL comes from the Secret, no Redis runs in the base.
    assert container["envFrom"][0]["secretRef"]["name"] == "candor-secrets"
    assert "REDIS_URL" in (K8S / "secrets.env.example").read_text()
    assert container["args"][:3] == ["candor", "serve", "--config"]


def test_autoscaler_budget_and_monitor_target_the_deployment() -> None:
    labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == "candor"
    assert by_kind("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    assert by_kind("Service")["spec"]["selector"].items() <= labels.items()
    (endpoint,) = by_kind("ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in by_kind("Service")["spec"]["ports"]}


def policies_with(tmp_path: Path, *extra: Path) -> Path:
    """The policies folder as the image has it, plus the deployment's own policy files."""
    folder = tmp_path / "policies"
    shutil.copytree(REPO / "policies", folder)
    for path in extra:
        shutil.copy(path, folder / path.name)
    return folder


def check_config(config: Path, policies: Path) -> Settings:
    settings = load_settings(config)
    routes = {name: route.policy for name, route in settings.models.items()}
    load_policies(policies).check_models(set(settings.models), routes)
    return settings


def test_the_kubernetes_config_and_policy_load(tmp_path: Path) -> None:
    policies = policies_with(tmp_path, K8S / "config" / "qwen.yaml")
    settings = check_config(K8S / "config" / "candor.yaml", policies)
    assert settings.models["qwen-max"].policy == "qwen"
    generated = kustomization()["configMapGenerator"][0]["files"]
    mounted = {
        m["subPath"]
        for m in by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        if "subPath" in m
    }
    assert {Path(f).name for f in generated} == mounted


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((VENDOR / "compose-spec.json").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    jsonschema.Draft202012Validator(schema).validate(compose)
    assert set(compose["services"]) == {"candor", "redis", "prometheus", "grafana"}


def test_compose_has_health_checks_and_waits_on_health() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name
    assert services["candor"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_compose_has_no_default_secrets() -> None:
    text = COMPOSE.read_text()
    variables = re.findall(r"(?<!\$)\$\{([^}]*)\}", text)
    assert variables
    for variable in variables:
        assert re.fullmatch(r"[A-Z_]+:\?.+", variable), f"${{{variable}}} must be required"
    for secret in ("REDIS_PASSWORD", "CANDOR_ADMIN_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text


def test_compose_mounts_exist_and_the_config_loads(tmp_path: Path) -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
    config = REPO / "deploy" / "compose" / "candor.yaml"
    settings = check_config(config, policies_with(tmp_path))
    # Shipped without keys: Candor refuses to start until the operator adds its own.
    problems = " ".join(startup_problems(settings, environ={}))
    assert "admin key" in problems and "auth.keys is empty" in problems


def test_the_dockerfile_is_multi_stage_non_root_and_starts_like_the_readme() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 2 and all("slim" in s for s in stages)
    (user,) = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert not user.startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])", text, re.M)
    command = json.loads(cmd)
    assert command[:3] == ["candor", "serve", "--config"]
    assert "candor serve --config" in (REPO / "README.md").read_text()
    ignored = (REPO / ".dockerignore").read_text()
    for needed in ("proxy/", "policies/", "pyproject.toml", "setup.py", "README.md"):
        assert f"!{needed}" in ignored
    # The detector's C speed-up is compiled in the build stage, never copied from the host.
    assert "setup.py" in text and "gcc" in text and "**/*.so" in ignored


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "candor.yaml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert mounts["./deploy/grafana/dashboards"] == folder
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    board = json.loads((GRAFANA / "dashboards" / "candor.json").read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
