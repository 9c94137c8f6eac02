"""Chart tier: the real helm binary (fetched by scripts/fetch_tools.py into .tools/bin)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, helm_binary

CHART = ROOT / "charts" / "genfab"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"operator": {"watchNamespaces": ["lab-a", "lab-b"]}, "rbac": {"secretNames": ["lab-s3"]}},
    "ha": {"operator": {"replicas": 3, "ha": {"enabled": True, "peeringName": "genfab-ha"}}},
    "everything": {
        "operator": {"replicas": 2, "ha": {"enabled": True}, "watchNamespaces": ["lab-a", "lab-b"]},
        "imagePullSecrets": ["regcred"],
        "storage": {"endpoint": "http://minio.storage:9000", "addressingStyle": "path",
                    "secret": {"name": "lab-s3", "create": True, "accessKeyId": "AKIAEXAMPLE",
                               "secretAccessKey": "example-secret"}},
        "kueue": {"defaultQueue": "lab-gpus"},
        "rbac": {"secretNames": ["lab-s3"]},
        "stages": {"images": {"registry": "registry.lab.example/ml", "tag": "2026.11",
                              "overrides": {"scene": "registry.lab.example/ml/genfab-scene@sha256:" + "a" * 64}},
                   "gpu": {"resourceName": "nvidia.com/mig-3g.40gb",
                           "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                           "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
                   "hostPathPrefixes": ["/var/cache/huggingface"],
                   "placement": {"allowedTolerations": [{"key": "lab/spot", "operator": "Equal", "value": "yes"}],
                                 "allowedNodeSelectorKeys": ["nvidia.com/gpu.product"],
                                 "allowedPriorityClasses": ["lab-batch"]}},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                    "podMonitor": {"enabled": True}},
        "alerts": {"enabled": True, "alertLabels": {"team": "vision"}},
        "dashboard": {"namespace": "monitoring", "annotations": {"grafana_folder": "genfab"}},
        "networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.1/32"],
                          "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "monitoring"}}}],
                          "storageTo": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
    },
}


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def run_helm(helm: Path, *args: str, values: dict[str, Any] | None = None, tmp: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), *args]
    if values:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def render(helm: Path, values: dict[str, Any], tmp: Path, *extra: str) -> list[dict[str, Any]]:
    out = run_helm(helm, "template", "genfab", str(CHART), "--namespace", "genfab-system", *extra,
                   values=values, tmp=tmp)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def rendered(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every value set rendered once (with CRDs) for the whole tier."""
    return {name: render(helm, values, tmp_path_factory.mktemp(name), "--include-crds")
            for name, values in VALUE_SETS.items()}
