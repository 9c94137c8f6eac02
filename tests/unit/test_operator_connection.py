"""The operator's connection (genfab.operator.connection): kubeconfig and in-cluster credentials read
without the kubernetes client, the client kept out of the process when nothing needs it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from genfab.operator.connection import (
    TOKEN_REREAD_SECONDS,
    Connection,
    NeedsClient,
    NoConnection,
    TokenFile,
    from_kubeconfig,
    in_cluster,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.unit


def kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None,
               current: str | None = "ctx") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", **({"current-context": current} if current else {}),
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://api.example:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def no_data_dir() -> Path:
    raise AssertionError("nothing inline to write")


def test_token_and_relative_files_are_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = kubeconfig(tmp_path / "conf" / "config", {"token": "abc", "client-certificate": "certs/me.crt",
                                                     "client-key": "/abs/me.key"},
                      {"server": "https://api.example:6443", "certificate-authority": "ca.crt",
                       "proxy-url": "http://proxy:3128"})
    conn = from_kubeconfig([path], no_data_dir)
    assert conn.server == "https://api.example:6443" and not conn.insecure
    assert conn.ca_file == str(tmp_path / "conf" / "ca.crt")  # relative to the kubeconfig's folder
    assert conn.cert_file == str(tmp_path / "conf" / "certs" / "me.crt") and conn.key_file == "/abs/me.key"
    assert conn.proxy == "http://proxy:3128"
    assert conn.auth_header() == "Bearer abc"
    assert conn.kopf_login() == {
        "server": "https://api.example:6443", "ca_path": str(tmp_path / "conf" / "ca.crt"), "insecure": None,
        "certificate_path": str(tmp_path / "conf" / "certs" / "me.crt"), "private_key_path": "/abs/me.key",
        "scheme": "Bearer", "token": "abc", "username": None, "password": None, "proxy_url": "http://proxy:3128"}


def test_inline_certificates_become_private_files(tmp_path: Path) -> None:
    pem = {name: f"-----BEGIN {name}-----\n".encode() for name in ("CA", "CERT", "KEY")}
    data = tmp_path / "data"
    data.mkdir()
    path = kubeconfig(tmp_path / "config",
                      {"client-certificate-data": base64.b64encode(pem["CERT"]).decode(),
                       "client-key-data": base64.b64encode(pem["KEY"]).decode()},
                      {"server": "https://api:443", "certificate-authority-data": base64.b64encode(pem["CA"]).decode()})
    conn = from_kubeconfig([path], lambda: data)
    for file, content in ((conn.ca_file, pem["CA"]), (conn.cert_file, pem["CERT"]), (conn.key_file, pem["KEY"])):
        assert file is not None and Path(file).parent == data and Path(file).read_bytes() == content
        assert Path(file).stat().st_mode & 0o777 == 0o600
    assert conn.auth_header() is None  # client certificates only


def test_basic_auth_and_insecure(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"username": "ann", "password": "s3cret"},
                      {"server": "https://api:443", "insecure-skip-tls-verify": True})
    conn = from_kubeconfig([path], no_data_dir)
    assert conn.insecure and conn.auth_header() == "Basic " + base64.b64encode(b"ann:s3cret").decode()
    login = conn.kopf_login()
    assert (login["insecure"], login["username"], login["password"], login["scheme"], login["token"]) == (
        True, "ann", "s3cret", None, None)


def test_a_token_file_is_read_again_once_it_is_old(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    now = [0.0]
    read = TokenFile(token, clock=lambda: now[0])
    assert read() == "one"
    token.write_text("two")
    now[0] = TOKEN_REREAD_SECONDS - 1
    assert read() == "one"
    now[0] = TOKEN_REREAD_SECONDS
    assert read() == "two"
    conn = from_kubeconfig([kubeconfig(tmp_path / "config", {"tokenFile": "token"})], no_data_dir)
    assert conn.auth_header() == "Bearer two"


def test_kubeconfig_files_merge_first_one_wins(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.write_text(yaml.safe_dump({"current-context": "ctx", "users": [{"name": "u", "user": {"token": "mine"}}]}))
    second = kubeconfig(tmp_path / "second", {"token": "theirs"}, current="elsewhere")
    conn = from_kubeconfig([tmp_path / "absent", first, second], no_data_dir)
    assert conn.server == "https://api.example:6443" and conn.auth_header() == "Bearer mine"


@pytest.mark.parametrize("write, says", [
    (lambda p: kubeconfig(p, {"token": "t"}, current=None), "kubeconfig: current-context is not set"),
    (lambda p: kubeconfig(p, {"token": "t"}, current="other"), "kubeconfig: no context named 'other'"),
    (lambda p: kubeconfig(p, {"token": "t"}, {"insecure-skip-tls-verify": True}),
     "kubeconfig: cluster 'c' has no server"),
    (lambda p: p.write_text("clusters: [unclosed"), "not readable YAML"),
    (lambda p: p.write_text("- a list"), "not a mapping"),
    (lambda p: None, "no kubeconfig at"),
])
def test_an_unusable_kubeconfig_is_one_line(tmp_path: Path, write: Any, says: str) -> None:
    write(tmp_path / "config")
    with pytest.raises(NoConnection) as raised:
        from_kubeconfig([tmp_path / "config"], no_data_dir)
    assert says in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("user", [{"exec": {"command": "aws"}}, {"auth-provider": {"name": "oidc"}}])
def test_plugin_users_need_the_client(tmp_path: Path, user: dict[str, Any]) -> None:
    with pytest.raises(NeedsClient):
        from_kubeconfig([kubeconfig(tmp_path / "config", user)], no_data_dir)


@pytest.mark.parametrize("host, server", [("10.0.0.1", "https://10.0.0.1:443"), ("fd00::1", "https://[fd00::1]:443")])
def test_in_cluster_is_the_pods_service_account(tmp_path: Path, host: str, server: str) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("pem")
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}
    conn = in_cluster(env, tmp_path)
    assert conn is not None and conn.server == server and conn.ca_file == str(tmp_path / "ca.crt")
    assert conn.auth_header() == "Bearer sa-token"
    assert in_cluster({}, tmp_path) is None
    assert in_cluster(env, tmp_path / "elsewhere") is None


def test_connection_headers_come_from_the_client_when_it_authenticates() -> None:
    conn = Connection(server="https://api:443", token=lambda: "ignored", authorization=lambda: "Bearer refreshed")
    assert conn.auth_header() == "Bearer refreshed"


@pytest.mark.parametrize("user, hidden", [({"token": "t"}, True), ({"exec": {"command": "aws"}}, False)])
def test_the_operator_process_keeps_the_client_out_unless_a_plugin_needs_it(
        tmp_path: Path, user: dict[str, Any], hidden: bool) -> None:
    """What `genfab operator` does before importing kopf (its own process: the hiding lasts)."""
    code = ("import sys\nfrom genfab.operator.connection import hide_client\nprint(hide_client())\nimport kopf\n"
            "print(sys.modules.get('kubernetes') is not None)")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig(tmp_path / "config", user)),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT)])}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(hidden), str(not hidden)]
