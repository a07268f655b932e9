"""The container image: the Dockerfile passes hadolint, and the image built from it (its
runtime stage around the binary under test) runs the server as a non-root user, answers its
health check, completes a chat with the offline provider, runs a workflow step in its
bubblewrap sandbox given the documented settings, and drains on SIGTERM."""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import ROOT, chat, free_port, podman, wait_until

BIN = Path(sys.executable).parent


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([BIN / "hadolint", "--failure-threshold", "style", ROOT / "Dockerfile"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


class Container:
    def __init__(self, image: str, *options: str):
        self.name = f"kubiya-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        podman("run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:8000",
               "-e", "KUBIYA_PROVIDER__NAME=offline", *options, image)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: requests.get(f"{self.base}/health", timeout=2).ok,
                   "the container's /health", timeout=60)

    def inspect(self, template: str) -> str:
        return podman("inspect", self.name, "--format", template).stdout.strip()

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self):
        podman("rm", "--force", "--time", "0", self.name, check=False)


@pytest.fixture
def run_container(agent_image):
    containers = []

    def run(*options):
        container = Container(agent_image, *options)
        containers.append(container)
        return container

    yield run
    for container in containers:
        container.remove()


def test_the_image_serves_health_the_console_and_a_chat_as_a_non_root_user(run_container, agent_image):
    container = run_container()
    health = requests.get(f"{container.base}/health", timeout=5).json()
    assert health == {"status": "healthy", "service": "kubiya-mcp-agent", "initialized": True}

    # The web console comes with the binary: nothing to fetch at run time.
    page = requests.get(f"{container.base}/", timeout=5)
    assert page.status_code == 200 and "<title>Kubiya agent console</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert requests.get(f"{container.base}/console/app.js", timeout=5).status_code == 200

    answer = chat(container.base, "Create a workflow that checks disk usage")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "kubiya-workflow-agent"
    assert "workflow" in body["choices"][0]["message"]["content"].lower()

    assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001"
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0
    image = json.loads(podman("image", "inspect", agent_image).stdout)[0]
    assert image["Config"]["User"] == "10001:10001"
    assert image["Config"]["Entrypoint"][:2] == ["/usr/bin/tini", "--"]
    assert "/health/live" in " ".join(image["Healthcheck"]["Test"])


def test_the_health_check_fails_when_the_server_does_not_answer(run_container):
    container = run_container()
    # Freeze the server (not tini, its PID 1): the check must notice.
    signal_server = (
        "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = kubiya ] "
        "&& kill -{} ${{d#/proc/}} && echo signalled; done"
    )
    frozen = podman("exec", container.name, "sh", "-c", signal_server.format("STOP"))
    assert frozen.stdout.split() == ["signalled"], frozen.stdout
    try:
        assert podman("healthcheck", "run", container.name, check=False).returncode != 0
    finally:
        podman("exec", container.name, "sh", "-c", signal_server.format("CONT"), check=False)


def test_sigterm_drains_and_exits_zero(run_container):
    container = run_container()
    started = time.monotonic()
    podman("stop", "--time", "30", container.name)
    assert time.monotonic() - started < 15, "the server did not stop on SIGTERM"
    assert container.inspect("{{.State.ExitCode}}") == "0"
    logs = container.logs()
    assert "shutdown requested: draining" in logs and '"signal":"SIGTERM"' in logs, logs


def run_workflow(base: str) -> dict:
    started = requests.post(f"{base}/v1/executions", timeout=10, json={
        "workflow": {"name": "in-container", "steps": [
            {"name": "who", "command": "echo sandboxed as $(id -u) in $(pwd)"}]},
    })
    assert started.status_code == 202, started.text
    url = f"{base}{started.json()['url']}"

    def finished():
        state = requests.get(url, timeout=5).json()
        return state if state["status"] not in ("queued", "running") else None

    return wait_until(finished, "the execution to finish", timeout=30)


def test_workflow_steps_run_in_the_sandbox_with_the_documented_settings(run_container):
    container = run_container("--security-opt", "seccomp=unconfined",
                              "--security-opt", "systempaths=unconfined",
                              "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
    result = run_workflow(container.base)
    assert result["status"] == "success", result
    output = result["steps"][0]["output"]
    assert output.startswith("sandboxed as ") and not output.startswith("sandboxed as 0 "), output
    # A fresh work directory of the sandbox, not the server's.
    assert "/var/lib/kubiya" not in output, output


@pytest.mark.parametrize("options", [
    (),
    ("--security-opt", "systempaths=unconfined"),
    ("--security-opt", "seccomp=unconfined"),
])
def test_without_both_settings_nothing_runs_unsandboxed(run_container, options):
    container = run_container(*options)
    result = run_workflow(container.base)
    assert result["status"] == "failed", result
    assert "cannot create a sandbox" in result["error"], result
    assert result["steps"][0]["status"] == "pending", "the step must not have run"


def test_the_image_runs_under_the_kubernetes_security_context(run_container):
    """What deploy/kubernetes asks for: read-only root, no capabilities, no privilege
    escalation, writable /tmp and home only."""
    container = run_container("--read-only", "--tmpfs", "/tmp", "--tmpfs", "/var/lib/kubiya",
                              "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
    answer = chat(container.base, "Create a hello world workflow")
    assert answer.status_code == 200, answer.text
    assert podman("exec", container.name, "touch", "/usr/local/bin/x", check=False).returncode != 0
    assert requests.get(f"{container.base}/health/ready", timeout=5).status_code == 200
