"""The operator's connection to the API server: where it is, how to trust it, who we are.

Read once at start, in-cluster (the Pod's service account) or from the kubeconfig, and given to both
genfab's own requests (`kube.Kube`) and kopf's watches (`handlers.login`), so the two always use
the same credentials. Read here rather than through the `kubernetes` client package: importing that
package loads every generated API model, about 42 MB of every operator process's memory (and kopf
imports it whenever it can: `hide_client`). Only kubeconfig users that authenticate through a
plug-in (`exec`, `auth-provider`) need the package's loaders, and get them (`client_connection`).
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml

POOL_SIZE = 16
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0
"""A token file is read again after this long: service-account tokens are rotated by the kubelet
(bound tokens live an hour), and the kubernetes client re-reads them as often."""


class NoConnection(Exception):
    """No usable connection: one line saying which file or field, and what was wrong."""


class NeedsClient(Exception):
    """The kubeconfig's user authenticates through a plug-in only the kubernetes client runs."""


class TokenFile:
    """A bearer token read from a file, again once it is `TOKEN_REREAD_SECONDS` old."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.clock = path, clock
        self._lock = threading.Lock()
        self._token, self._read_at = "", float("-inf")

    def __call__(self) -> str:
        with self._lock:
            if self.clock() - self._read_at >= TOKEN_REREAD_SECONDS:
                self._token, self._read_at = self.path.read_text().strip(), self.clock()
            return self._token


@dataclass(frozen=True)
class Connection:
    server: str
    """The API server's URL, e.g. https://10.0.0.1:443."""
    ca_file: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    token: Callable[[], str] | None = None
    """The bearer token (read again when it comes from a file)."""
    username: str | None = None
    password: str | None = None
    proxy: str | None = None
    authorization: Callable[[], str | None] | None = field(default=None, compare=False)
    """A complete Authorization header's value from elsewhere (the kubernetes client's plug-ins)."""

    def auth_header(self) -> str | None:
        if self.authorization is not None:
            return self.authorization()
        if self.token is not None:
            return f"Bearer {self.token()}"
        if self.username is not None:
            return "Basic " + base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return None

    def pool_manager(self) -> urllib3.PoolManager:
        """Connections kept per host: `POOL_SIZE`, at least the reconcile workers' and the event
        poster's threads (more are opened when needed, and closed after use)."""
        tls: dict[str, Any] = {"cert_reqs": "CERT_NONE" if self.insecure else "CERT_REQUIRED",
                               "ca_certs": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        if self.proxy:
            return urllib3.ProxyManager(self.proxy, maxsize=POOL_SIZE, **tls)
        return urllib3.PoolManager(maxsize=POOL_SIZE, **tls)

    def kopf_login(self) -> dict[str, Any]:
        """kopf.ConnectionInfo's fields for the same endpoint and credentials (a fresh token)."""
        header = self.auth_header()
        scheme, _, credential = (header or "").partition(" ")
        return {"server": self.server, "ca_path": self.ca_file, "insecure": self.insecure or None,
                "certificate_path": self.cert_file, "private_key_path": self.key_file,
                "scheme": scheme if scheme and scheme != "Basic" else None,
                "token": credential if scheme and scheme != "Basic" else None,
                "username": self.username, "password": self.password, "proxy_url": self.proxy}


def in_cluster(env: Mapping[str, str], folder: Path = SERVICE_ACCOUNT) -> Connection | None:
    """The Pod's service account, as Kubernetes mounts it; None outside a cluster."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (folder / "token").is_file():
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ca = folder / "ca.crt"
    return Connection(server=f"https://{host}:{port}", ca_file=str(ca) if ca.is_file() else None,
                      token=TokenFile(folder / "token"))


def kubeconfig_paths(env: Mapping[str, str]) -> list[Path]:
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    return listed or [Path("~/.kube/config").expanduser()]


def _current(paths: list[Path]) -> tuple[dict[str, Any], Path, dict[str, Any], Path]:
    """The current context's cluster and user, each with the folder of the file that named it, merged
    over `paths` as kubectl merges them (the first file to name a context, cluster or user, or to set
    current-context, wins)."""
    current: str | None = None
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"contexts": {}, "clusters": {}, "users": {}}
    read = 0
    for path in paths:
        if not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise NoConnection(f"kubeconfig {path}: not readable YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(doc, dict):
            raise NoConnection(f"kubeconfig {path}: not a mapping")
        read += 1
        current = current or doc.get("current-context") or None
        for section, entries in named.items():
            for item in doc.get(section) or []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    entries.setdefault(item["name"], (item.get(section[:-1]) or {}, path.parent))
    if not read:
        raise NoConnection(f"no kubeconfig at {os.pathsep.join(map(str, paths))}")
    if current is None:
        raise NoConnection("kubeconfig: current-context is not set")
    context, _ = _entry(named, "contexts", current)
    cluster, cluster_dir = _entry(named, "clusters", context.get("cluster"))
    user, user_dir = _entry(named, "users", context.get("user"))
    if not cluster.get("server"):
        raise NoConnection(f"kubeconfig: cluster {context.get('cluster')!r} has no server")
    return cluster, cluster_dir, user, user_dir


def _plugin(user: dict[str, Any]) -> bool:
    return bool(user.get("exec") or user.get("auth-provider"))


def from_kubeconfig(paths: list[Path], data_dir: Callable[[], Path]) -> Connection:
    """The kubeconfig's current context (`_current`). Relative file names are relative to the file
    that names them; `*-data` fields are written to files in `data_dir()`."""
    cluster, cluster_dir, user, user_dir = _current(paths)
    if _plugin(user):
        raise NeedsClient("the kubeconfig's user authenticates through a plug-in")

    def file_of(entry: dict[str, Any], base: Path, name: str) -> str | None:
        if entry.get(f"{name}-data"):
            target = data_dir() / name
            target.write_bytes(base64.b64decode(entry[f"{name}-data"]))
            target.chmod(0o600)
            return str(target)
        return str(base / Path(entry[name]).expanduser()) if entry.get(name) else None

    token: Callable[[], str] | None = None
    if user.get("token"):
        value = str(user["token"])
        token = lambda: value  # noqa: E731
    elif user.get("tokenFile"):
        token = TokenFile(user_dir / Path(user["tokenFile"]).expanduser())
    return Connection(server=str(cluster["server"]), ca_file=file_of(cluster, cluster_dir, "certificate-authority"),
                      insecure=bool(cluster.get("insecure-skip-tls-verify")),
                      cert_file=file_of(user, user_dir, "client-certificate"),
                      key_file=file_of(user, user_dir, "client-key"), token=token,
                      username=user.get("username"), password=user.get("password"),
                      proxy=cluster.get("proxy-url"))


def _entry(named: dict[str, dict[str, tuple[dict[str, Any], Path]]], section: str, name: Any
           ) -> tuple[dict[str, Any], Path]:
    if name not in named[section]:
        raise NoConnection(f"kubeconfig: no {section[:-1]} named {name!r}")
    return named[section][name]


def client_connection() -> Connection:
    """Through the kubernetes client's own loaders (kubeconfig plug-ins: `exec`, `auth-provider`),
    whose Authorization header refreshes itself."""
    from kubernetes import client, config

    try:
        config.load_kube_config()
    except config.ConfigException as exc:
        raise NoConnection(f"kubeconfig: {' '.join(str(exc).split())}") from None
    cfg = client.Configuration.get_default_copy()
    return Connection(server=cfg.host, ca_file=cfg.ssl_ca_cert, insecure=not cfg.verify_ssl,
                      cert_file=cfg.cert_file, key_file=cfg.key_file, proxy=cfg.proxy,
                      authorization=lambda: cfg.get_api_key_with_prefix("BearerToken") or None)


def load_connection(env: Mapping[str, str] | None = None) -> Connection:
    """In-cluster inside a Pod, otherwise KUBECONFIG / ~/.kube/config."""
    env = os.environ if env is None else env
    found = in_cluster(env)
    if found is not None:
        return found
    try:
        return from_kubeconfig(kubeconfig_paths(env), _private_dir)
    except NeedsClient:
        return client_connection()


_PRIVATE: list[Path] = []


def _private_dir() -> Path:
    """A folder only this user reads, removed at exit: the kubeconfig's inline certificates and keys
    as files (TLS libraries take client certificates from files)."""
    if not _PRIVATE:
        _PRIVATE.append(Path(tempfile.mkdtemp(prefix="genfab-kube-")))
        atexit.register(shutil.rmtree, _PRIVATE[0], True)
    return _PRIVATE[0]


def hide_client(env: Mapping[str, str] | None = None) -> bool:
    """Keep the kubernetes client package out of this process when the connection does not need it
    (no kubeconfig plug-in): kopf imports it whenever it is importable (to recognise its model
    objects, and to log in through it), and it costs ~42 MB (benchmarks/results/operator.md). True when hidden."""
    env = os.environ if env is None else env
    if "kubernetes" in sys.modules:
        return False
    if in_cluster(env) is None:
        try:
            if _plugin(_current(kubeconfig_paths(env))[2]):
                return False
        except NoConnection:
            pass  # said once when the connection is loaded
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # `import kubernetes` raises ImportError
    return True
