"""TLS to Redis: a real redis-server listening only on its TLS port, with certificates made by
a test CA, and the server binary pointed at it with `rediss://` and the CA option."""

import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import chat, free_port, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)


def make_cert(directory: Path, name: str, ca: str):
    """A certificate for 127.0.0.1 and localhost, signed by `ca`."""
    (directory / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
            cwd=directory)


class TlsRedis:
    """redis-server with TLS only (its plain port is off); clients must present a certificate
    when `auth_clients` is set."""

    def __init__(self, pki: Path, auth_clients: bool):
        self.pki = pki
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(pki),
             "--tls-cert-file", str(pki / "redis.pem"), "--tls-key-file", str(pki / "redis.key"),
             "--tls-ca-cert-file", str(pki / "ca.pem"),
             "--tls-auth-clients", "yes" if auth_clients else "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.cli("PING") == "PONG", "redis-server with TLS", timeout=15)

    def cli(self, *command) -> str:
        out = subprocess.run(
            ["redis-cli", "--tls", "-h", "127.0.0.1", "-p", str(self.port),
             "--cacert", str(self.pki / "ca.pem"),
             "--cert", str(self.pki / "client.pem"), "--key", str(self.pki / "client.key"),
             *command],
            capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip()

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        make_ca(path, "ca")
        make_ca(path, "other-ca")
        make_cert(path, "redis", "ca")
        make_cert(path, "client", "ca")
        yield path


@pytest.fixture
def tls_redis(pki, request):
    server = TlsRedis(pki, auth_clients=getattr(request, "param", False))
    yield server
    server.stop()


def ready(server) -> bool:
    return requests.get(f"{server.base}/health/ready", timeout=2).status_code == 200


def test_a_conversation_is_kept_in_redis_over_tls_with_the_ca_option(start_server, tls_redis, pki):
    server = start_server(["--store", tls_redis.url],
                          {"KUBIYA_STORE__TLS_CA_FILE": str(pki / "ca.pem")})
    server.wait_live()
    wait_until(lambda: ready(server), "readiness over rediss://", timeout=20)

    first = chat(server.base, "Create a hello world workflow")
    assert first.status_code == 200, first.text
    session = first.headers["X-Session-Id"]
    second = chat(server.base, "Now check disk usage", session=session)
    assert second.status_code == 200, second.text

    stored = tls_redis.cli("KEYS", f"kubiya:session:*{session}*")
    assert session in stored, f"no session key in Redis: {stored!r}"
    transcript = requests.get(f"{server.base}/v1/sessions/{session}", timeout=5).json()["transcript"]
    users = [m["content"] for m in transcript if m["role"] == "user"]
    assert users == ["Create a hello world workflow", "Now check disk usage"]


def test_a_redis_certificate_from_another_ca_is_refused(start_server, tls_redis, pki):
    url = tls_redis.url.replace("rediss://", "rediss://:s3cret-pass@")
    server = start_server(["--store", url],
                          {"KUBIYA_STORE__TLS_CA_FILE": str(pki / "other-ca.pem")})
    server.wait_live()
    # The health check pings every second: several rounds, never ready.
    time.sleep(3)
    assert requests.get(f"{server.base}/health/ready", timeout=2).status_code == 503
    answer = chat(server.base, "hello")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["type"]
    assert tls_redis.cli("DBSIZE") == "0", "nothing may reach an untrusted Redis"
    assert "certificate" in server.logs().lower(), server.logs()
    assert "s3cret-pass" not in server.logs() + answer.text, "the password reached a log or a client"


def test_without_the_ca_option_the_system_roots_do_not_trust_a_private_ca(start_server, tls_redis):
    server = start_server(["--store", tls_redis.url])
    server.wait_live()
    time.sleep(3)
    assert requests.get(f"{server.base}/health/ready", timeout=2).status_code == 503


@pytest.mark.parametrize("tls_redis", [True], indirect=True)
def test_mutual_tls_presents_the_client_certificate(start_server, tls_redis, pki):
    anonymous = start_server(["--store", tls_redis.url],
                             {"KUBIYA_STORE__TLS_CA_FILE": str(pki / "ca.pem")})
    identified = start_server(["--store", tls_redis.url], {
        "KUBIYA_STORE__TLS_CA_FILE": str(pki / "ca.pem"),
        "KUBIYA_STORE__TLS_CERT_FILE": str(pki / "client.pem"),
        "KUBIYA_STORE__TLS_KEY_FILE": str(pki / "client.key"),
    })
    identified.wait_live()
    anonymous.wait_live()
    wait_until(lambda: ready(identified), "readiness with a client certificate", timeout=20)
    assert chat(identified.base, "hello").status_code == 200
    assert requests.get(f"{anonymous.base}/health/ready", timeout=2).status_code == 503


def test_a_missing_ca_file_stops_start_up_naming_the_setting(tmp_path, pki):
    from conftest import binary

    result = subprocess.run(
        [str(binary()), "mcp", "agent", "--port", "0", "--store", "rediss://127.0.0.1:1/0"],
        env={"KUBIYA_STORE__TLS_CA_FILE": str(tmp_path / "absent.pem"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 2, result.stderr
    assert "store" in result.stderr and "absent.pem" in result.stderr, result.stderr
