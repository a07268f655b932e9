"""The Kubernetes manifests: the kustomization renders offline and every resource validates
against the Kubernetes 1.30 schemas (strict: unknown fields are errors); the rendered
Deployment has what running the server in production needs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

KUSTOMIZATION = ROOT / "deploy" / "kubernetes"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    result = subprocess.run([BIN / "kubectl", "kustomize", KUSTOMIZATION],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    out.write_text(result.stdout)
    return out


def resources(rendered: Path) -> dict:
    """Rendered resources by kind and name (generated names without their hash suffix)."""
    def name(doc):
        generated = doc["kind"] in ("ConfigMap", "Secret")
        return doc["metadata"]["name"].rsplit("-", 1)[0] if generated else doc["metadata"]["name"]

    return {(doc["kind"], name(doc)): doc
            for doc in yaml.safe_load_all(rendered.read_text()) if doc}


def test_every_resource_validates_strictly(rendered):
    result = subprocess.run([BIN / "kubernetes-validate", "--strict", "-k", "1.30.0", rendered],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(resources(rendered)), result.stdout


def test_the_deployment_runs_three_probed_non_root_replicas(rendered):
    docs = resources(rendered)
    deployment = docs[("Deployment", "kubiya-agent")]
    spec = deployment["spec"]["template"]["spec"]
    agent = spec["containers"][0]
    assert deployment["spec"]["replicas"] == 3
    assert agent["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert agent["resources"]["requests"] and agent["resources"]["limits"]
    assert "--host" in agent["args"] and "0.0.0.0" in agent["args"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert agent["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # The grace period outlasts the drain delay plus the shutdown timeout.
    env = docs[("ConfigMap", "kubiya-agent-env")]["data"]
    drain = int(env["KUBIYA_SERVER__DRAIN_DELAY_SECS"]) + int(env["KUBIYA_SERVER__SHUTDOWN_TIMEOUT_SECS"])
    assert spec["terminationGracePeriodSeconds"] > drain


def test_keys_and_the_config_file_come_from_secrets(rendered):
    docs = resources(rendered)
    spec = docs[("Deployment", "kubiya-agent")]["spec"]["template"]["spec"]
    agent = spec["containers"][0]
    secret_refs = [source["secretRef"]["name"] for source in agent["envFrom"] if "secretRef" in source]
    assert secret_refs == ["kubiya-agent-keys"]
    config_volume = next(v for v in spec["volumes"] if v["name"] == "config")
    generated = docs[("Secret", "kubiya-agent-config")]
    assert config_volume["secret"]["secretName"] == generated["metadata"]["name"]
    assert "config.toml" in generated["data"]
    assert "/etc/kubiya/config.toml" in agent["args"]


def test_redis_a_budget_and_an_autoscaler_come_with_it(rendered):
    docs = resources(rendered)
    assert docs[("StatefulSet", "kubiya-redis")]["spec"]["replicas"] == 1
    assert docs[("ConfigMap", "kubiya-agent-env")]["data"]["REDIS_URL"].startswith("redis://kubiya-redis:")
    assert docs[("PodDisruptionBudget", "kubiya-agent")]["spec"]["maxUnavailable"] == 1
    hpa = docs[("HorizontalPodAutoscaler", "kubiya-agent")]["spec"]
    assert hpa["minReplicas"] == 3 and hpa["scaleTargetRef"]["name"] == "kubiya-agent"
    service = docs[("Service", "kubiya-agent")]["spec"]
    assert service["selector"] == {"app.kubernetes.io/name": "kubiya-agent"}
    assert all(doc["metadata"].get("namespace") == "kubiya"
               for (kind, _), doc in docs.items() if kind != "Namespace")


def test_the_config_file_shipped_in_the_secret_is_accepted_by_the_server(start_server):
    """The server starts with deploy/kubernetes/config.toml, as the pods do."""
    server = start_server(["--config", str(KUSTOMIZATION / "config.toml")])
    server.wait_live()
