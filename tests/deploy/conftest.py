"""Shared fixtures of the deployment tests: the server binary, free ports, a server process
started from the binary, and podman configured for machines without a registry (runc, our
ulimits, the Debian base image made once by base-image.sh)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BASE_IMAGE = "localhost/debian:bookworm"


def binary() -> Path:
    path = Path(os.environ.get("KUBIYA_BIN", ROOT / "target" / "debug" / "kubiya"))
    assert path.is_file(), f"{path} is missing: build it first (cargo build --bin kubiya)"
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, what: str, timeout: float = 60.0, every: float = 0.2):
    """Calls `check` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, OSError) as err:
            last = err
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what} (last error: {last})")


def chat(base: str, text: str, session: str | None = None, **headers) -> requests.Response:
    body = {"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": text}]}
    if session:
        body["session_id"] = session
    return requests.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=30)


class Server:
    """The `kubiya mcp agent` binary on a free port, its stderr in a file, stopped with SIGTERM."""

    def __init__(self, args=(), env=None):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="kubiya-", suffix=".log", delete=False)
        full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        full_env.update({"KUBIYA_PROVIDER__NAME": "offline", "LOG_FORMAT": "json"})
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [str(binary()), "mcp", "agent", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_live(self):
        def live():
            assert self.process.poll() is None, f"the server exited:\n{self.logs()}"
            return requests.get(f"{self.base}/health/live", timeout=2).ok

        wait_until(live, "the server to listen", timeout=30)

    def logs(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.log.name)


@pytest.fixture
def start_server():
    servers = []

    def start(args=(), env=None) -> Server:
        server = Server(args, env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- podman -----------------------------------------------------------------------------


def podman_env() -> dict:
    return {**os.environ, "CONTAINERS_CONF": str(HERE / "containers.conf")}


def podman(*args, check=True, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def base_image() -> str:
    subprocess.run([str(HERE / "base-image.sh"), BASE_IMAGE], env=podman_env(), check=True)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def agent_image(base_image) -> str:
    """The repository's Dockerfile, its runtime stage around the binary the tests use."""
    tag = f"localhost/kubiya-agent:test-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy2(binary(), Path(context) / "kubiya")
        podman(
            "build", "--pull=never", "--format", "docker", "--quiet",
            "--build-arg", f"RUNTIME_IMAGE={base_image}",
            "--build-arg", "BINARY_FROM=prebuilt",
            "-f", str(ROOT / "Dockerfile"), "-t", tag, context,
        )
    # Intermediate stages holding only a binary are not needed again; those of the last
    # minutes may belong to a build running beside this one.
    podman("image", "prune", "--force", "--filter", "until=10m", check=False)
    yield tag
    podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="session")
def services_image(base_image) -> str:
    """Redis and nginx from Debian, standing in for the registry images compose.yaml names."""
    tag = "localhost/kubiya-test-services:bookworm"
    if podman("image", "exists", tag, check=False).returncode != 0:
        podman(
            "build", "--pull=never", "--quiet", "--build-arg", f"BASE={base_image}",
            "-f", str(HERE / "services.Containerfile"), "-t", tag, str(HERE),
        )
    return tag
