"""Kubernetes' own CRD API server (apiextensions-apiserver) and etcd, started for the tests.

The binaries come from `scripts/real_apiserver.sh` (built from Debian's packaged sources into
`.tools/apiserver/`). `RealApiServer` makes a throwaway CA, a serving certificate for 127.0.0.1 and
a client certificate in `O=system:masters`, starts etcd and the server on free loopback ports, and
stops both by their own PIDs. The server serves `/apis` only: CustomResourceDefinitions and the
custom resources they define, with Kubernetes' real schema validation, CEL, pruning, defaulting,
the status subresource and the Table form behind `kubectl get`. Test-only code.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".tools" / "apiserver"
APISERVER, ETCD = BIN / "apiextensions-apiserver", BIN / "etcd"
# Admission plugins that need core objects (Namespaces) or webhooks this server cannot serve.
DISABLED_ADMISSION = ("NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,"
                      "ValidatingAdmissionPolicy,MutatingAdmissionPolicy")
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"


def available() -> bool:
    return os.access(APISERVER, os.X_OK) and os.access(ETCD, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ADMIN = {"admin": ("genfab-tests", "system:masters")}
"""Client certificates `_certificates` makes by default: file stem -> (user, group)."""


def _certificates(folder: Path, clients: dict[str, tuple[str, str | None]] | None = None) -> dict[str, Path]:
    """A CA, the server's certificate (127.0.0.1, localhost) and a client certificate per `clients` entry
    (file stem -> user and group; a system:masters admin by default): `stem` and `stem-key` name their files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def write(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        (folder / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("genfab-test-ca")).issuer_name(name("genfab-test-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca_key, ca)

    def leaf(stem: str, subject: x509.Name, usage: x509.ObjectIdentifier, san: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            import ipaddress
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        write(stem, key, builder.sign(ca_key, hashes.SHA256()))

    users = clients or ADMIN
    leaf("server", name("127.0.0.1"), ExtendedKeyUsageOID.SERVER_AUTH, san=True)
    for stem, (user, group) in users.items():
        leaf(stem, name(user, group), ExtendedKeyUsageOID.CLIENT_AUTH, san=False)
    return {stem: folder / f"{stem}.crt" for stem in ("ca", "server", *users)} | {
        f"{stem}-key": folder / f"{stem}.key" for stem in ("server", *users)}


class RealApiServer:
    """etcd + apiextensions-apiserver on loopback; `url`, `session` (an authenticated requests.Session)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="genfab-apiserver-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.session = requests.Session()
        # Not the environment's CA bundle (REQUESTS_CA_BUNDLE would override `verify`) nor its proxies.
        self.session.trust_env = False

    # -- lifecycle
    def start(self, timeout: float = 90.0) -> RealApiServer:
        certs = _certificates(self.folder)
        self.certs = certs
        etcd_url = self._start_etcd()
        kubeconfig = self.kubeconfig(self.folder / "self.kubeconfig")
        self._spawn("apiserver", [
            str(APISERVER), "--etcd-servers", etcd_url, "--bind-address", "127.0.0.1",
            "--secure-port", str(self.port), "--tls-cert-file", str(certs["server"]),
            "--tls-private-key-file", str(certs["server-key"]), "--client-ca-file", str(certs["ca"]),
            "--authentication-kubeconfig", str(kubeconfig), "--authorization-kubeconfig", str(kubeconfig),
            "--kubeconfig", str(kubeconfig), "--authentication-tolerate-lookup-failure",
            # Priority and fairness reads its configuration from flowcontrol objects this server
            # does not serve: without it, plain max-in-flight limits (and /readyz turns ready).
            "--enable-priority-and-fairness=false",
            # Kubernetes 1.36's sharded list and watch (alpha): what `genfab operator --shard` asks for.
            "--feature-gates", "ShardedListAndWatch=true",
            "--disable-admission-plugins", DISABLED_ADMISSION, "--cert-dir", str(self.folder / "certs")])
        self.session.verify = str(certs["ca"])
        self.session.cert = (str(certs["admin"]), str(certs["admin-key"]))
        deadline = time.monotonic() + timeout
        while True:
            dead = [p for p in self.processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"the real API server's {self._names[dead[0].pid]} exited "
                                   f"({dead[0].returncode}):\n{self.logs()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                # informer-sync never passes: it waits for a Service informer (webhook resolution)
                # of the core API this server does not serve.
                if self.session.get(f"{self.url}/readyz?exclude=informer-sync", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the real API server was not ready in {timeout:.0f} s:\n{self.logs()[-3000:]}")
            time.sleep(0.3)

    def _start_etcd(self) -> str:
        """etcd on two free loopback ports, no fsync (a test's data): its client URL."""
        client_port, peer_port = _free_port(), _free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        self._spawn("etcd", [str(ETCD), "--data-dir", str(self.folder / "etcd"), "--name", "genfab-test",
                             "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                             "--initial-cluster", f"genfab-test=http://127.0.0.1:{peer_port}",
                             "--unsafe-no-fsync", "--log-level", "warn"])
        return etcd_url

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self._names = {**getattr(self, "_names", {}), proc.pid: name}
        self.processes.append(proc)

    def stop(self) -> None:
        """SIGTERM each by its own PID (the server first), SIGKILL after 10 s."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.processes.clear()
        self.session.close()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:]
                         for p in sorted(self.folder.glob("*.log")))

    def kubeconfig(self, path: Path, user: str = "admin", token: str | None = None) -> Path:
        """A kubeconfig for this server as `user` (a client certificate `_certificates` made), or with a
        bearer `token` (a ServiceAccount's)."""
        creds = {"token": token} if token is not None else {
            "client-certificate": str(self.certs[user]), "client-key": str(self.certs[f"{user}-key"])}
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "real",
            "clusters": [{"name": "real", "cluster": {"server": self.url,
                                                      "certificate-authority": str(self.certs["ca"])}}],
            "users": [{"name": "real", "user": creds}],
            "contexts": [{"name": "real", "context": {"cluster": "real", "user": "real"}}],
        }))
        return path

    # -- requests
    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                accept: str = "application/json") -> requests.Response:
        data = None if body is None else json.dumps(body)
        return self.session.request(method, self.url + path, data=data, timeout=30,
                                    headers={"Content-Type": content_type, "Accept": accept})

    def wait(self, what: str, predicate: Any, timeout: float = 30.0) -> Any:
        from tests.emulator.harness import wait_until
        return wait_until(what, predicate, timeout, 0.1)


@contextlib.contextmanager
def running(folder: Path | None = None) -> Iterator[RealApiServer]:
    server = RealApiServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


def established(server: RealApiServer, crd_name: str) -> bool:
    obj = server.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}").json()
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


# Causes the server adds beside the real ones, at no field: CEL rules skipped because of other
# errors, and a repeat of a type error.
_NOTES = ("some validation rules were not checked", "Checked value must be of type")


def causes(response: requests.Response) -> list[tuple[str, str]]:
    """A refusal's (field, message) pairs, as `kubectl apply` prints them ("" for the object itself)."""
    details = response.json().get("details") or {}
    out = []
    for cause in details.get("causes") or []:
        field, message = cause.get("field", ""), cause.get("message", "")
        if field == "<nil>" and any(note in message for note in _NOTES):
            continue
        out.append(("" if field == "<nil>" else field, message))
    return out


def install_crds(server: RealApiServer) -> dict[str, Any]:
    """Create genfab's CRDs (`genfab crds`' output) and wait until each is Established and served:
    file name -> {"code", "body", "name"} of the server's answer."""
    from genfab.api.crd import render_crds
    from genfab.api.resources import VERSION

    answers: dict[str, Any] = {}
    for file_name, text in render_crds().items():
        crd = yaml.safe_load(text)
        resp = server.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        answers[file_name] = {"code": resp.status_code, "body": resp.json(), "name": crd["metadata"]["name"]}
    for answer in answers.values():
        if answer["code"] != 201:
            continue
        name = answer["name"]
        server.wait(f"{name} Established", lambda n=name: established(server, n))
        # Established comes a moment before the server routes the new resource's requests.
        plural, group = name.split(".", 1)
        server.wait(f"{plural} served", lambda p=plural, g=group: server.request(
            "GET", f"/apis/{g}/{VERSION}/{p}").status_code == 200)
    return answers
