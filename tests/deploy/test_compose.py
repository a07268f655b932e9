"""compose.yaml brought up with podman-compose: Redis, two replicas of the image and nginx in
front. Through the proxy's one URL a conversation continues whichever replica answers each
turn, streams pass through unbuffered, and when a replica stops the other carries on."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from conftest import ROOT, chat, free_port, podman, podman_env, wait_until

COMPOSE = [str(Path(sys.executable).parent / "podman-compose")]


class Stack:
    def __init__(self, agent_image: str, services_image: str):
        self.project = f"kubiya-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.env = {
            **podman_env(),
            "KUBIYA_IMAGE": agent_image,
            "REDIS_IMAGE": services_image,
            "NGINX_IMAGE": services_image,
            "KUBIYA_PORT": str(self.port),
            "KUBIYA_PROVIDER": "offline",
        }
        self.env = {k: v for k, v in self.env.items() if not k.endswith("_API_KEY")}
        self.base = f"http://127.0.0.1:{self.port}"

    def compose(self, *args):
        result = subprocess.run(
            [*COMPOSE, "-p", self.project, "-f", str(ROOT / "compose.yaml"), *args],
            env=self.env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def served_by(self, request_id: str) -> list[str]:
        """The replicas whose request log names `request_id`."""
        return [service for service in ("agent-1", "agent-2")
                if f'"request_id":"{request_id}"' in podman("logs", self.container(service)).stderr
                + podman("logs", self.container(service)).stdout]


@pytest.fixture(scope="module")
def stack(agent_image, services_image):
    stack = Stack(agent_image, services_image)
    try:
        stack.compose("up", "-d", "--no-build")
        wait_until(lambda: requests.get(f"{stack.base}/health/ready", timeout=2).ok,
                   "the stack to be ready through the proxy", timeout=90)
        yield stack
    finally:
        subprocess.run([*COMPOSE, "-p", stack.project, "-f", str(ROOT / "compose.yaml"),
                        "down", "-v", "-t", "5"], env=stack.env, capture_output=True, check=False)


def test_the_stack_runs_redis_two_replicas_and_the_proxy(stack):
    running = podman("ps", "--filter", f"label=io.podman.compose.project={stack.project}",
                     "--format", "{{.Names}}").stdout.split()
    assert sorted(running) == sorted(stack.container(s) for s in ("redis", "agent-1", "agent-2", "proxy"))
    # Each replica was told where Redis is and reports ready (it pings it).
    for service in ("agent-1", "agent-2"):
        probe = podman("exec", stack.container(service), "curl", "-fsS",
                       "http://127.0.0.1:8000/health/ready", check=False)
        assert probe.returncode == 0, probe.stdout + probe.stderr


def test_a_conversation_continues_across_replicas_through_one_url(stack):
    turns = ["Create a hello world workflow", "Now check disk usage",
             "Back up my project directory", "Check the health of this system"]
    session = None
    replicas = []
    for number, text in enumerate(turns):
        request_id = f"turn-{uuid.uuid4().hex[:8]}-{number}"
        answer = chat(stack.base, text, session=session, **{"X-Request-Id": request_id})
        assert answer.status_code == 200, answer.text
        session = session or answer.headers["X-Session-Id"]
        assert answer.headers["X-Session-Id"] == session
        replicas += stack.served_by(request_id)
    assert set(replicas) == {"agent-1", "agent-2"}, f"turns were served by {replicas}"

    transcript = requests.get(f"{stack.base}/v1/sessions/{session}", timeout=5).json()["transcript"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == turns


def test_a_stream_passes_through_the_proxy(stack):
    body = {"model": "kubiya-workflow-agent", "stream": True,
            "messages": [{"role": "user", "content": "Create a hello world workflow"}]}
    with requests.post(f"{stack.base}/v1/chat/completions", json=body, stream=True, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in answer.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1] if json.loads(e)["choices"]]
    assert deltas[0].get("role") == "assistant"
    assert "".join(d.get("content") or "" for d in deltas)


def test_when_a_replica_stops_the_other_carries_the_conversation(stack):
    first = chat(stack.base, "Create a hello world workflow")
    assert first.status_code == 200, first.text
    session = first.headers["X-Session-Id"]
    podman("stop", "--time", "10", stack.container("agent-1"))
    try:
        for text in ("Now check disk usage", "Check the health of this system"):
            answer = chat(stack.base, text, session=session)
            assert answer.status_code == 200, answer.text
        transcript = requests.get(f"{stack.base}/v1/sessions/{session}", timeout=5).json()["transcript"]
        assert len([m for m in transcript if m["role"] == "user"]) == 3
    finally:
        podman("start", stack.container("agent-1"))


def test_a_workflow_runs_sandboxed_on_a_replica_and_is_read_through_the_proxy(stack):
    started = requests.post(f"{stack.base}/v1/executions", timeout=10, json={
        "workflow": {"name": "in-compose", "steps": [
            {"name": "who", "command": "echo sandboxed as $(id -u)"}]}})
    assert started.status_code == 202, started.text
    url = f"{stack.base}{started.json()['url']}"

    def finished():
        state = requests.get(url, timeout=5).json()
        return state if state["status"] not in ("queued", "running") else None

    result = wait_until(finished, "the execution to finish", timeout=30)
    assert result["status"] == "success", result
    assert result["steps"][0]["output"].startswith("sandboxed as "), result
