"""The GPU tier (tests/gpu) in one go, on a machine with an NVIDIA GPU and no network.

Two steps, on two machines:

    .venv/bin/python scripts/gpu_tier.py --prepare [--have FREEZE] [--python 3.12] [--dir .gpuwheels]
        On a machine with network and this repo's virtual environment (the README's set-up): the
        wheels of what the tier imports beyond a CUDA PyTorch image (torch, torchvision, triton,
        numpy, Pillow stay the GPU machine's), at the versions .venv holds, for the GPU machine's
        Python, into DIR. `--have` takes the GPU machine's `python3 -m pip list --format=freeze` and
        leaves out what it already has. sam2 ships as a source archive: its wheel is built here (no
        CUDA op), as are the others that ship none.

    .venv/bin/python scripts/gpu_tier.py --prepare-research [--mirrors DIR] [--python 3.12] [--package P]
        The `research` and `vggt` groups' own carry, `.research/` (under 64 MiB with the repository): the
        upstream code of SEVA, MoGe, utils3d and VGGT at the commits images/seva, images/moge and
        images/vggt pin (from GitHub, or from a local clone holding the commit,
        `DIR/<owner>+<name>/repo` or a fork's `DIR/<anyone>+<name>/repo`) with the metadata pip writes
        for a git install (so producedBy names the commit), the wheels SEVA needs beyond the GPU image
        (open_clip, kornia, roma, splines, imageio-ffmpeg) and, copied from `--dir`, the few genfab
        itself needs there. Run the `research` group with `--dir .research/wheels`; the `vggt` group
        (`--package vggt`: VGGT's code alone, 1 MiB) with the other groups' `--dir .gpuwheels`; the
        `difix3d` group (`--package difix3d`: the lab trainer's code as images/difix3d holds it, patch
        and source record included) with a `--dir` that adds lpips and wandb (what train_difix.py imports).

    python3 scripts/gpu_tier.py [--group NAME ...] [--dir .gpuwheels] [--builds ARCHIVE]
        On the GPU machine, from the repository root: installs the wheels of what this Python lacks
        into a private folder (nothing of the image is replaced), builds gsplat's CUDA kernels once
        for this GPU (or restores an earlier machine's build from ARCHIVE, saving it there when
        absent), then runs the tier group by group, each under 10 minutes, and prints one summary
        line per group. Exit status: 0 when every group passed.

Every file of tests/gpu belongs to exactly one group (checked before anything runs), so a new GPU
test cannot be left out.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
GROUP_LIMIT_S = 590
"""Each group must finish within this (the tier is run where one command may take 10 minutes)."""

GROUPS: dict[str, list[str]] = {
    "gaussians": ["test_fused_ssim_gpu.py", "test_gaussians_gpu.py", "test_gaussians_stage_gpu.py",
                  "test_refinement_gpu.py", "test_difix_gpu.py"],
    "scene": ["test_vistadream_gpu.py", "test_worldexplorer_gpu.py"],
    "flux": ["test_flux_gpu.py", "test_compile_cache_gpu.py"],
    "tuning": ["test_tuning_gpu.py"],
    "reference-object": ["test_reference_object_gpu.py", "test_mask_gpu.py"],
    "research": ["test_research_gpu.py"],
    "vggt": ["test_vggt_gpu.py"],
    "zero123": ["test_zero123_gpu.py"],
    "difix3d": ["test_difix3d_trainer_gpu.py"],
}
"""The tier's files by group, in the order they run."""
RASTERIZE = {"gaussians", "scene"}
"""The groups that rasterise with gsplat: its CUDA kernels are built (once, cached) before the first."""

NEEDS = ["pydantic", "PyYAML", "click", "rich", "boto3", "prometheus-client", "diffusers", "transformers",
         "accelerate", "peft", "safetensors", "tensorboard", "gsplat", "plyfile", "torchmetrics", "jaxtyping",
         "opencv-python-headless", "scipy", "segment-anything", "sam2", "hydra-core", "fastapi", "uvicorn",
         "pytest", "torchao", "openai", "albumentations"]
"""What the tier's tests and the stages they run import (their dependencies follow from .venv). Not
rerun-sdk (a 170 MB wheel): vistadream's render stage then notes that it wrote no recording, which
the CPU tier writes and reads back. Not bitsandbytes (not in .venv; a 43 MB wheel holding every CUDA
version's library): the 4-bit edit-model test skips without it; put an installed copy on PYTHONPATH."""

IMAGE_HAS = re.compile(r"^(torch|torchvision|torchaudio|triton|numpy|pillow|nvidia-.*|cuda-.*|setuptools|pip)$")
"""A CUDA PyTorch image's own: never carried (a CPU build from .venv would replace the CUDA one)."""

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux2010_x86_64", "any"]


def download_args(python: str, dest: Path) -> list[str]:
    """`pip download` of binary wheels, no dependencies, for the GPU machine's Python, into `dest`."""
    return ["download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation",
            "cp", *[x for p in PLATFORMS for x in ("--platform", p)], "-d", str(dest)]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> tuple[dict[str, str], list[str]]:
    """({distribution: version} of `roots` and everything they require, as installed in this Python;
    the names it does not have)."""
    found: dict[str, str] = {}
    absent: list[str] = []
    todo = list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in found or name in absent or IMAGE_HAS.match(name):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            absent.append(name)
            continue
        found[name] = dist.version
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            marker = req.partition(";")[2]
            if marker and not _marker_holds(marker):
                continue
            todo.append(re.split(r"[ ;<>=!~\[(]", req.strip(), maxsplit=1)[0])
    return found, absent


def resolved(names: list[str]) -> dict[str, str]:
    """{distribution: version} that pip resolves for `names` (at pyproject's constraints) and their
    needs: for what .venv does not hold (the `segment` extra's SAM and SAM2). Resolved against
    .venv's torch, without build isolation (sam2's build would otherwise fetch a torch)."""
    specs = {canonical(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]): r.split(";")[0]
             for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-build-isolation",
                        "--report", str(report), *(specs.get(n, n) for n in names)],
                       check=True, env={**os.environ, "SAM2_BUILD_CUDA": "0"})
        installs = json.loads(report.read_text())["install"]
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in installs
            if not IMAGE_HAS.match(canonical(i["metadata"]["name"]))}


def _marker_holds(marker: str) -> bool:
    from packaging.markers import Marker

    return Marker(marker).evaluate({"extra": ""})


def prepare(args: argparse.Namespace) -> int:
    wanted, absent = closure(NEEDS)
    if absent:
        wanted.update(resolved(absent))
    have = set()
    if args.have:
        have = {canonical(line.split("==")[0]) for line in Path(args.have).read_text().splitlines() if "==" in line}
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    pins = sorted(f"{n}=={v}" for n, v in wanted.items() if n not in have)
    binary = download_args(args.python, out)
    if pip(binary + pins) != 0:  # some ship no wheel (sam2, iopath, antlr4 4.9): find them, build theirs here
        for pin in pins:
            if pip([*binary, pin]) != 0 and pip(["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                                                pin]) != 0:
                sys.exit(f"gpu-tier: {pin} has no wheel for Python {args.python} and does not build here")
    size = sum(p.stat().st_size for p in out.glob("*.whl")) / 2**20
    print(f"gpu-tier: {len(list(out.glob('*.whl')))} wheels, {size:.0f} MiB in {out} for Python {args.python}")
    return 0


RESEARCH = ROOT / ".research"
RESEARCH_CODE: dict[str, tuple[str, Path, str, str]] = {
    "seva": ("Stability-AI/stable-virtual-camera", ROOT / "images/seva/Dockerfile", "SEVA_COMMIT", "seva"),
    "moge": ("microsoft/MoGe", ROOT / "images/moge/Dockerfile", "MOGE_COMMIT", "moge"),
    "utils3d": ("EasternJournalist/utils3d", ROOT / "images/moge/Dockerfile", "UTILS3D_COMMIT", "utils3d"),
    "vggt": ("facebookresearch/vggt", ROOT / "images/vggt/Dockerfile", "VGGT_COMMIT", "vggt"),
}
"""Package -> (GitHub repository, the Dockerfile pinning it, its commit's build argument, the folder
that is the package): the commits are the images' (one declaration)."""
PIPELINE_CODE: dict[str, tuple[str, str, str]] = {
    "zero123plus-pipeline": ("SUDO-AI-3D/zero123plus", "7d0315c31be6eb906b34cf07d91310f8e12e9b95", "diffusers-support"),
}
"""Diffusers custom pipelines a model location holds (`pipeline.py`, loaded with `custom_pipeline=`)
-> (GitHub repository, the commit the GPU tier runs, the folder holding pipeline.py): written to
`.research/pipelines/<name>/` for the tests to put in their model location. Zero123++'s authors
publish the same file as the hub repository sudo-ai/zero123plus-pipeline."""
TRAINER_CODE: dict[str, tuple[str, Path, str, str, Path]] = {
    "difix3d": ("nv-tlabs/Difix3D", ROOT / "images/difix3d/Dockerfile", "DIFIX3D_COMMIT", "src",
                ROOT / "images/difix3d/upstream-fixes.patch"),
}  # the TRAINER_IMAGES of genfab.api.families
"""A lab trainer (research code, not a package) -> (GitHub repository, the Dockerfile pinning it, its
commit's build argument, the folder to take, the patch its image applies): written to
`.research/<name>/` with the image's source record (`genfab.stages.tuning.provenance`), and the wheels
of its `requirements.txt`'s exact pins in `.research/<name>/wheels` (its image installs them; the GPU
test puts them first on the trainer's path only)."""
TRAINER_EXTRA_WHEELS = {"difix3d": ["tokenizers>=0.14,<0.19"]}
"""What the pins need that the GPU image holds at a version they reject (transformers 4.38's tokenizers)."""
RESEARCH_WHEELS = ["roma", "kornia", "open-clip-torch", "ftfy", "wcwidth", "splines", "imageio-ffmpeg==0.5.1"]
"""What SEVA's modules import beyond the GPU image. imageio-ffmpeg 0.5.1: its ffmpeg (SEVA writes mp4s
next to its PNGs) is 27 MB; later wheels are 68 MB, over the carry limit. Not kornia-rs (kornia's
image I/O, which SEVA does not use; 5 MB, over the carry limit with the rest): `KORNIA_RS_STAND_IN`."""
GENFAB_WHEELS = ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "diffusers",
                 "importlib-metadata", "boto3", "botocore", "s3transfer", "jmespath"]
"""What the adapters' genfab imports need beyond the GPU image (copied from --dir)."""
GRADIO_STAND_IN = '''"""Not gradio: seva.sampling imports gradio (its demo UI, a 62 MB wheel, over the GPU machine's
carry limit) only to annotate a progress-bar argument genfab never passes. Written by
scripts/gpu_tier.py --prepare-research for the GPU tier alone; images/seva installs the real gradio."""


class Progress:
    pass
'''

KORNIA_RS_STAND_IN = '''"""Not kornia_rs: `import kornia` (0.7 and later) imports kornia_rs for kornia.io's image files,
which SEVA never reads or writes through kornia. Written by scripts/gpu_tier.py --prepare-research for
the GPU tier alone (the wheel does not fit its carry); images/seva installs the real kornia-rs."""

from types import SimpleNamespace

io = SimpleNamespace()
'''


def pinned_commit(dockerfile: Path, arg: str) -> str:
    found = re.search(rf"^ARG {arg}=([0-9a-f]{{40}})$", dockerfile.read_text(), re.M)
    if found is None:
        sys.exit(f"gpu-tier: {dockerfile} pins no {arg}")
    return found.group(1)


def mirror_holding(repo: str, commit: str, mirrors: str | None) -> Path | None:
    """A local clone under `mirrors` that holds `commit` of GitHub `repo`: `<owner>+<name>/repo`, else a
    fork's `<anyone>+<name>/repo` (a commit's id is the hash of its tree, so any clone holding it
    gives the same files; facebookresearch/vggt's own history is too large to mirror here)."""
    if not mirrors:
        return None
    name = repo.split("/")[1]
    own = Path(mirrors) / repo.replace("/", "+") / "repo"
    for clone in [own, *sorted(p for p in Path(mirrors).glob(f"*+{name}/repo") if p != own)]:
        if clone.is_dir() and subprocess.run(["git", "-C", str(clone), "cat-file", "-e", f"{commit}^{{commit}}"],
                                             capture_output=True).returncode == 0:
            return clone
    return None


def write_distribution(src: Path, package: str, repo: str, commit: str) -> None:
    """The metadata pip writes when it installs `package` from `repo` at `commit`, as the images do
    (`pip install git+https://github.com/<repo>@<commit>`): `<package>.dist-info` with PEP 610's
    `direct_url.json`, so that the adapters' producedBy names the commit here as it does there."""
    info = src / f"{package}-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.0\n")
    (info / "direct_url.json").write_text(json.dumps({"url": f"https://github.com/{repo}",
                                                      "vcs_info": {"vcs": "git", "commit_id": commit}}))


def extract_upstream(repo: str, commit: str, folders: list[str], dest: Path, mirrors: str | None) -> None:
    """`folders` of GitHub `repo` at `commit` (a folder "" is the whole tree) into `dest`: from a local
    clone that holds the commit (`mirror_holding`) when there is one, else from GitHub's archive."""
    import io
    import tarfile
    import urllib.request

    clone = mirror_holding(repo, commit, mirrors)
    if clone is not None:
        data = subprocess.run(["git", "-C", str(clone), "archive", "--format=tar", commit, *[f for f in folders if f]],
                              check=True, capture_output=True).stdout
        prefix = ""
    else:
        with urllib.request.urlopen(f"https://codeload.github.com/{repo}/tar.gz/{commit}") as response:
            data = response.read()
        prefix = f"{repo.split('/')[1]}-{commit}/"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            inside = member.name[len(prefix):] if member.name.startswith(prefix) else None
            if inside and any(inside == f or inside.startswith(f + "/") if f else True for f in folders) \
                    and (member.isfile() or member.isdir()):
                member.name = inside
                tar.extract(member, dest, filter="data")


def prepare_research(args: argparse.Namespace) -> int:
    src, wheels = RESEARCH / "src", RESEARCH / "wheels"
    shutil.rmtree(RESEARCH, ignore_errors=True)
    src.mkdir(parents=True)
    wheels.mkdir()
    packages = args.package or [*RESEARCH_CODE, "zero123plus", *TRAINER_CODE]
    for package in [p for p in packages if p in RESEARCH_CODE]:
        repo, dockerfile, arg, folder = RESEARCH_CODE[package]
        commit = pinned_commit(dockerfile, arg)
        extract_upstream(repo, commit, [folder], src, args.mirrors)
        write_distribution(src, package, repo, commit)
        print(f"gpu-tier research: {package} {repo}@{commit[:8]}", flush=True)
    for name, (repo, dockerfile, arg, folder, patch) in TRAINER_CODE.items():
        if name in packages:
            write_trainer(name, repo, pinned_commit(dockerfile, arg), folder, patch, args.mirrors)
    for name, (repo, commit, folder) in PIPELINE_CODE.items() if "zero123plus" in packages else ():
        extract_upstream(repo, commit, [folder], RESEARCH / "pipelines" / name, args.mirrors)
        print(f"gpu-tier research: pipeline {name} {repo}@{commit[:8]}", flush=True)
    if "seva" in packages:
        (src / "gradio").mkdir()
        (src / "gradio" / "__init__.py").write_text(GRADIO_STAND_IN)
        (src / "kornia_rs").mkdir()
        (src / "kornia_rs" / "__init__.py").write_text(KORNIA_RS_STAND_IN)
        if pip(download_args(args.python, wheels) + RESEARCH_WHEELS) != 0:
            sys.exit(f"gpu-tier: could not download {' '.join(RESEARCH_WHEELS)}")
    for whl in Path(args.dir).glob("*.whl"):
        if canonical(whl.name.split("-")[0]) in GENFAB_WHEELS:
            shutil.copy2(whl, wheels / whl.name)
    size = sum(p.stat().st_size for p in RESEARCH.rglob("*") if p.is_file()) / 2**20
    print(f"gpu-tier research: {size:.0f} MiB in {RESEARCH}; run with --dir {wheels} and carry .research")
    return 0


def write_trainer(name: str, repo: str, commit: str, folder: str, patch: Path, mirrors: str | None) -> None:
    """A lab trainer's code as its image holds it: `folder` at `commit`, the image's patch applied, and
    the source record (the same writer as the image's)."""
    from genfab.stages.tuning.provenance import write_source

    checkout = RESEARCH / name
    extract_upstream(repo, commit, [folder, "requirements.txt"], checkout, mirrors)
    subprocess.run(["patch", "-p1", "-s", "-d", str(checkout), "-i", str(patch)], check=True)
    write_source(checkout, name, f"https://github.com/{repo}", commit, [patch.name])
    pins = [x.strip() for x in (checkout / "requirements.txt").read_text().splitlines() if "==" in x]
    if pip(download_args("3.12", checkout / "wheels") + pins + TRAINER_EXTRA_WHEELS.get(name, [])) != 0:
        sys.exit(f"gpu-tier: could not download {name}'s pins {' '.join(pins)}")
    print(f"gpu-tier research: trainer {name} {repo}@{commit[:8]} + {patch.name}", flush=True)


def pip(args: list[str]) -> int:
    """pip in this Python, quiet; sam2's build without its optional CUDA op."""
    return subprocess.run([sys.executable, "-m", "pip", *args], env={**os.environ, "SAM2_BUILD_CUDA": "0"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def install(wheels: Path, site: Path) -> None:
    """The carried wheels of what this Python lacks, into `site` (first on PYTHONPATH)."""
    lacking = []
    # Already in `site` from an earlier call on this machine: reinstalling would make gsplat's kernels
    # rebuild (its build is keyed on its files' times).
    installed = {canonical(d.metadata["Name"]) for d in metadata.distributions(path=[str(site)])}
    for whl in sorted(wheels.glob("*.whl")):
        name = canonical(whl.name.split("-")[0])
        if name in installed:
            continue
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            lacking.append(str(whl))
    if lacking:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(site), *lacking], check=True)
    print(f"gpu-tier install: {len(lacking)} of {len(list(wheels.glob('*.whl')))} wheels (the rest are this "
          f"Python's own or already there) into {site}", flush=True)


def environment(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(site), str(ROOT / "operator"), str(ROOT / "stages"), str(ROOT)]
    if (RESEARCH / "src").is_dir():  # the research group's upstream code (--prepare-research)
        paths.append(str(RESEARCH / "src"))
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Beside `site`, so that `--builds` archives (and the 3DGS benchmark's) name the same paths.
    env.setdefault("TORCH_EXTENSIONS_DIR", str(site.parent / "torch-extensions"))
    if "TORCH_CUDA_ARCH_LIST" not in env:  # build for this GPU only (minutes less than every arch)
        probe = subprocess.run([sys.executable, "-c", "import torch; print('%d.%d' % "
                                "torch.cuda.get_device_capability())"], capture_output=True, text=True, env=env)
        if probe.returncode == 0:
            env["TORCH_CUDA_ARCH_LIST"] = probe.stdout.strip()
    return env


BUILT_LONG_AGO = 946684800
"""2000-01-01: the time a restored build's sources are given, so that ninja finds the restored objects newer."""


def save_builds(site: Path, extensions: Path, packages: list[str], archive: Path) -> None:
    """What this machine compiled (gsplat's JIT kernels in `extensions`, the `packages` built into
    `site`) as one archive, so that a fresh machine restores it in seconds instead of minutes."""
    import tarfile

    with tarfile.open(archive, "w:gz") as tar:
        if extensions.is_dir():
            tar.add(extensions, "extensions")
        for package in packages:
            for path in sorted(site.glob(f"{package}*")):
                tar.add(path, f"site/{path.name}")
    print(f"gpu-tier builds: saved {archive} ({archive.stat().st_size / 2**20:.1f} MiB)", flush=True)


def restore_builds(archive: Path, site: Path, extensions: Path) -> None:
    """`save_builds`' archive into a fresh machine's `site` (after `install`) and `extensions`. The
    JIT build reruns ninja, which rebuilds whatever is older than its sources: gsplat's freshly
    installed sources are dated BUILT_LONG_AGO, older than the restored objects."""
    import tarfile

    for path in (site / "gsplat").rglob("*"):
        os.utime(path, (BUILT_LONG_AGO, BUILT_LONG_AGO))
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            top, _, rest = member.name.partition("/")
            target = {"extensions": extensions, "site": site}.get(top)
            if target is None or not rest:
                continue
            member.name = rest
            tar.extract(member, target, filter="data")
            # Whole seconds: ninja drops an object's recorded header list when the object is newer
            # than the list (to the nanosecond), and the archive's float times round either way.
            stamp = math.floor(member.mtime)
            os.utime(target / rest, (stamp, stamp), follow_symlinks=False)
    print(f"gpu-tier builds: restored {archive}", flush=True)


def build(env: dict[str, str]) -> bool:
    """gsplat's CUDA kernels, compiled on their first import (cached in TORCH_EXTENSIONS_DIR)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "import gsplat; from gsplat.cuda._backend import _C; "
                           "assert _C is not None, 'no kernels'; print(gsplat.__version__)"],
                          capture_output=True, text=True, env=env, timeout=GROUP_LIMIT_S)
    ok = done.returncode == 0
    failure = (done.stderr.strip().splitlines() or ["no output"])[-1]
    detail = f"gsplat {done.stdout.split()[-1]} kernels ready" if ok else failure
    print(f"gpu-tier build: {detail} ({time.monotonic() - started:.0f} s)", flush=True)
    return ok


def run_group(name: str, env: dict[str, str], log_dir: Path) -> bool:
    files = [str(ROOT / "tests" / "gpu" / f) for f in GROUPS[name]]
    log = log_dir / f"gpu-tier-{name}.log"
    started = time.monotonic()
    with log.open("w") as out:
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsP", "-o", "addopts=",
                                   "-p", "no:cacheprovider", *files], stdout=out, stderr=subprocess.STDOUT,
                                  env=env, cwd=ROOT, timeout=GROUP_LIMIT_S)
            rc: int | str = done.returncode
        except subprocess.TimeoutExpired:
            rc = f"timed out after {GROUP_LIMIT_S} s"
    lines = log.read_text(errors="replace").splitlines()
    summary = next((x.strip("= ") for x in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped)", x)),
                   "no pytest summary")
    print(f"gpu-tier {name}: {summary} (exit {rc}, {time.monotonic() - started:.0f} s, log {log})", flush=True)
    # A skipped test proves nothing on this machine: say why, from pytest's -rs lines (-rP: what a
    # passed test printed, its measurements, stays in the log).
    for reason in sorted({x.split(": ", 1)[-1] for x in lines if x.startswith("SKIPPED")}):
        print(f"gpu-tier {name}: skipped: {reason}", flush=True)
    return rc == 0


def check_groups() -> None:
    grouped = [f for files in GROUPS.values() for f in files]
    present = sorted(p.name for p in (ROOT / "tests" / "gpu").glob("test_*.py"))
    missing, unknown = set(present) - set(grouped), set(grouped) - set(present)
    if missing or unknown or len(grouped) != len(set(grouped)):
        sys.exit(f"gpu-tier: GROUPS must hold every tests/gpu file once (not grouped: {sorted(missing)}; "
                 f"not found: {sorted(unknown)})")


def run(args: argparse.Namespace) -> int:
    check_groups()
    if shutil.which("nvidia-smi") is None:
        sys.exit("gpu-tier: no NVIDIA GPU here (nvidia-smi not found); the tier would only skip")
    site = Path(args.site)
    install(Path(args.dir), site)
    env = environment(site)
    groups = args.group or list(GROUPS)
    if RASTERIZE & set(groups):
        archive = Path(args.builds) if args.builds else None
        extensions = Path(env["TORCH_EXTENSIONS_DIR"])
        if archive is not None and archive.is_file():
            restore_builds(archive, site, extensions)
        if not build(env):
            return 1
        if archive is not None and not archive.is_file():
            save_builds(site, extensions, [], archive)
    log_dir = Path(args.logs or tempfile.mkdtemp(prefix="gpu-tier-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    results = [run_group(name, env, log_dir) for name in groups]
    return 0 if all(results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="download the wheels (a machine with network)")
    parser.add_argument("--prepare-research", action="store_true",
                        help="write .research/ (the research group's code and wheels; a machine with network)")
    parser.add_argument("--mirrors", help="--prepare-research: local clones, DIR/<owner>+<name>/repo")
    parser.add_argument("--package", action="append", choices=[*RESEARCH_CODE, "zero123plus", *TRAINER_CODE],
                        help="--prepare-research: only this package's code (repeatable; default: all)")
    parser.add_argument("--dir", default=str(ROOT / ".gpuwheels"), help="the wheels' folder")
    parser.add_argument("--python", default="3.12", help="--prepare: the GPU machine's Python version")
    parser.add_argument("--have", help="--prepare: the GPU machine's `python3 -m pip list --format=freeze` (left out)")
    parser.add_argument("--group", action="append", choices=list(GROUPS), help="run only this group (repeatable)")
    parser.add_argument("--site", default=str(Path(tempfile.gettempdir()) / "genfab-gpu-site"),
                        help="where the wheels are installed")
    parser.add_argument("--builds", help="gsplat's compiled kernels: restored from this archive where it exists "
                        "(seconds instead of minutes; same --site), else saved to it after the build")
    parser.add_argument("--logs", help="where each group's pytest log goes (default: a new temporary folder)")
    args = parser.parse_args()
    if args.prepare_research:
        return prepare_research(args)
    return prepare(args) if args.prepare else run(args)


if __name__ == "__main__":
    sys.exit(main())
