"""3DGS training: genfab's trainer against gsplat's own `examples/simple_trainer.py` on the same scenes.

Two steps, on two machines (the GPU machine has no network):

    .venv/bin/python benchmarks/gaussians_simple_trainer.py prepare [--mirrors DIR]
        On a machine with network: writes .bench/simple-trainer/ with gsplat's examples at the tag of
        the gsplat this repo pins, the fused-ssim and pycolmap commits those examples' requirements.txt
        pins (fused-ssim is built from source on the GPU machine), tyro's wheels, and import stand-ins
        for the viewer packages (viser, nerfview), which simple_trainer imports at top level and never
        calls with --disable_viewer. `--mirrors DIR`: local clones, DIR/<owner>+<name>/repo.

    python3 benchmarks/gaussians_simple_trainer.py run --scene 1024x96 --scene 768x48 --steps 7000 --seeds 1 2 3
        On the GPU machine, from the repository root, carrying .gpuwheels (or `--wheels DIR`) and .bench: installs what
        the image lacks, builds gsplat's and fused-ssim's kernels, writes procedural scenes as COLMAP
        folders (images/ + sparse/0, the layout simple_trainer and genfab both read), then per scene
        runs simple_trainer and genfab's trainer, each in a fresh process on the same folder, which
        one first alternating, and prints one table (`--out FILE` writes it): one row per scene seed
        (`--seeds`), then the means over the seeds. `--json FILE` is rewritten after every row, so a
        call cut off at the machine's time limit keeps what it finished. `--side NAME` runs one
        side (a 30,000-step row at 1024² does not fit both in one 10-minute call); `merge A.json
        B.json` joins such runs' `--json` files into one table, refusing runs from different machines.
        `--builds FILE` restores an earlier machine's compiled kernels from FILE (seconds instead of
        ~3 minutes on a fresh machine), or saves them there after building; carry it back and along.

Both sides run at their defaults for a captured scene, on the same schedule: simple_trainer's `default`
config with `--data_factor 1 --steps_scaler N/30000` (gsplat's way to train for fewer steps: max steps,
SH interval and the densification schedule scaled together), genfab's `gaussians` block with only
`steps` set (its densification schedule scales the same way). At 30,000 steps both are unscaled.
simple_trainer at `--max_steps N` alone keeps the 30k densification schedule: at 7,000 steps its last
opacity reset falls at step 6,000, and its test PSNR was 8.91 dB against genfab's 15.44 (768², 48
views, H100); that comparison says nothing about either trainer, so it is not the one made here.
Wall time is the training loop as each reports it, on the same terms:
simple_trainer's `ellipse_time` at its last step (from its loop's first step; its setup before the
loop, the k-NN initial scales and the optimisers among it, is not in it), genfab's from its first step
to its last (its setup, from the training images pinned in host memory to the optimisers, is the
separate `setup_seconds`, shown in the table; runs before 2026-11-25 counted it in); peak memory is
`torch.cuda.max_memory_allocated()` at that point in each process;
PSNR/SSIM/LPIPS are each side's own evaluation of the held-out views (every 8th, sorted by name, on
both), LPIPS from one random AlexNet with torchmetrics' LPIPS heads given to both (comparable between
the sides only).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench" / "simple-trainer"
EXAMPLES, SOURCES, WHEELS, STAND_INS = BENCH / "examples", BENCH / "src", BENCH / "wheels", BENCH / "stand-ins"
GSPLAT_REPO = "nerfstudio-project/gsplat"
UPSTREAM = {"fused-ssim": "rahul-goel/fused-ssim", "pycolmap": "rmbrualla/pycolmap"}
"""What simple_trainer needs from GitHub beyond gsplat: package -> repository; the commits are the ones
gsplat's examples/requirements.txt pins (read from it, not repeated here)."""
TYRO_WHEELS = ["tyro<0.10", "docstring-parser", "shtab", "typeguard"]
"""simple_trainer's CLI (tyro 0.9, its `extras.overridable_config_cli`) and what tyro needs beyond the
GPU image (which has rich, typing-extensions, imageio, scikit-learn, matplotlib, tensorboard)."""
NUMPY2_FIXES = {"pycolmap": ("pycolmap/scene_manager.py", "np.uint64(-1)", "np.uint64(2**64 - 1)")}
"""The pycolmap fork predates NumPy 2 (gsplat's examples pin numpy<2; the GPU image has NumPy 2, which
torch and the image's other packages are built for): `np.uint64(-1)` overflows there. The same value,
written so that NumPy 2 accepts it; nothing else in the fork or the examples needed a change."""
STAND_IN_NOTE = ("Not {name}: gsplat's simple_trainer imports its viewer ({name}) at top level; the benchmark "
                 "runs it with --disable_viewer, which never uses it. Written by "
                 "benchmarks/gaussians_simple_trainer.py prepare.")
VISER = '"""{note}"""\n\n\nclass ViserServer:\n    def __init__(self, *args: object, **kwargs: object) -> None:\n' \
        '        raise RuntimeError("viewer stand-in: run simple_trainer with --disable_viewer")\n'
NERFVIEW = '"""{note}"""\n\n\nclass Viewer:\n    pass\n\n\nclass RenderTabState:\n    pass\n\n\n' \
           'class CameraState:\n    pass\n\n\ndef apply_float_colormap(*args: object, **kwargs: object) -> None:\n' \
           '    raise RuntimeError("viewer stand-in")\n'


def gpu_tier() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_tier", ROOT / "scripts" / "gpu_tier.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pinned_upstream(requirements: str) -> dict[str, str]:
    """The commits gsplat's examples/requirements.txt pins for UPSTREAM's repositories."""
    pins = {}
    for package, repo in UPSTREAM.items():
        found = re.search(rf"git\+https://github.com/{re.escape(repo)}@([0-9a-f]{{40}})", requirements)
        if found is None:
            sys.exit(f"simple-trainer: gsplat's examples/requirements.txt pins no commit of {repo}")
        pins[package] = found.group(1)
    return pins


def prepare(args: argparse.Namespace) -> int:
    from importlib import metadata

    tier = gpu_tier()
    version = metadata.version("gsplat")
    shutil.rmtree(BENCH, ignore_errors=True)
    for folder in (SOURCES, WHEELS, STAND_INS):
        folder.mkdir(parents=True)
    tier.extract_upstream(GSPLAT_REPO, f"v{version}", ["examples"], BENCH, args.mirrors)
    pins = pinned_upstream((EXAMPLES / "requirements.txt").read_text())
    for package, repo in UPSTREAM.items():
        tier.extract_upstream(repo, pins[package], [""], SOURCES / package, args.mirrors)
        for heavy in (SOURCES / package).glob("images"):  # fused-ssim's README figures (4 MB)
            shutil.rmtree(heavy)
        if package in NUMPY2_FIXES:
            path, old, new = NUMPY2_FIXES[package]
            source = (SOURCES / package / path).read_text()
            if source.count(old) != 1:
                sys.exit(f"simple-trainer: {package}'s {path} changed; its NumPy 2 fix no longer applies")
            (SOURCES / package / path).write_text(source.replace(old, new))
    if tier.pip(tier.download_args(args.python, WHEELS) + TYRO_WHEELS) != 0:
        sys.exit(f"simple-trainer: could not download {' '.join(TYRO_WHEELS)}")
    for name, text in (("viser", VISER), ("nerfview", NERFVIEW)):
        (STAND_INS / name).mkdir()
        (STAND_INS / name / "__init__.py").write_text(text.format(note=STAND_IN_NOTE.format(name=name)))
    (BENCH / "pins.json").write_text(json.dumps({"gsplat": f"v{version}", **pins}, indent=1))
    size = sum(p.stat().st_size for p in BENCH.rglob("*") if p.is_file()) / 2**20
    print(f"simple-trainer: gsplat v{version} examples, " + ", ".join(f"{k}@{v[:8]}" for k, v in pins.items())
          + f"; {size:.1f} MiB in {BENCH}; carry .bench with .gpuwheels")
    return 0


def install(site: Path, tier: Any, builds: Path | None, wheels: Path) -> dict[str, str]:
    """The GPU tier's wheels, tyro's, pycolmap and fused-ssim (built here, for this GPU) into `site`;
    a later call on the same machine reuses them (reinstalling would make gsplat's kernels rebuild).
    `builds`, where it exists, is an earlier machine's compiled kernels (`--builds`); `wheels` the GPU
    tier's wheels (`--wheels`)."""
    done = site / ".installed"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(site)]
    env: dict[str, str] = tier.environment(site)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(STAND_INS)])
    if not done.exists():
        tier.install(wheels, site)
        subprocess.run([*pip, *map(str, WHEELS.glob("*.whl"))], check=True)
        if builds is not None and builds.is_file():
            tier.restore_builds(builds, site, Path(env["TORCH_EXTENSIONS_DIR"]))
    for package in UPSTREAM:
        if any(site.glob(f"{package.replace('-', '_')}*")):
            continue  # built on an earlier call to this machine
        started = time.monotonic()
        build = Path(tempfile.mkdtemp()) / package
        shutil.copytree(SOURCES / package, build)
        subprocess.run([*pip, "--no-build-isolation", str(build)], check=True, env=env)
        print(f"simple-trainer: {package} installed ({time.monotonic() - started:.0f} s)", flush=True)
    done.touch()
    return env


SCENE_BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
"""A scene spec's background (`768x96` is white, procedural's default; `768x96-black`)."""


def parse_scene(spec: str) -> tuple[int, int, str]:
    """`SIZExVIEWS[-BACKGROUND]` -> size, views, background."""
    shape, _, background = spec.partition("-")
    size, views = (int(v) for v in shape.split("x"))
    if (background or "white") not in SCENE_BACKGROUNDS:
        sys.exit(f"simple-trainer: scene {spec!r}: the background is one of {', '.join(SCENE_BACKGROUNDS)}")
    return size, views, background or "white"


def write_scene(spec: str, seed: int, folder: Path) -> None:
    import torch

    from genfab.stages.gaussians import procedural

    if (folder / "sparse" / "0" / "cameras.bin").exists():
        return
    size, views, background = parse_scene(spec)
    scene = procedural.generate(seed, n_views=views, width=size, height=size,
                                device="cuda" if torch.cuda.is_available() else "cpu",
                                background=SCENE_BACKGROUNDS[background])
    procedural.write_scene(scene, folder, fmt="colmap")


def simple_trainer_side(scene: Path, steps: int, out: Path, env: dict[str, str]) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    scaler = steps / REFERENCE_STEPS
    if int(REFERENCE_STEPS * scaler) != steps:
        sys.exit(f"simple-trainer: --steps_scaler {scaler} does not give {steps} steps")
    # Its 30k schedule scaled by its own --steps_scaler (max, eval and save steps, SH interval,
    # densification), gsplat's way to train shorter; evaluated and saved once, at the end.
    command = [sys.executable, str(EXAMPLES / "simple_trainer.py"), "default", "--data_dir", str(scene),
               "--data_factor", "1", "--result_dir", str(out), "--steps_scaler", repr(scaler),
               *[x for flag in ("--eval_steps", "--save_steps", "--ply_steps") for x in (flag, str(REFERENCE_STEPS))],
               "--disable_viewer", "--disable_video", "--lpips_net", "alex"]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        done = subprocess.run(command, cwd=EXAMPLES, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        sys.exit("simple-trainer: simple_trainer.py failed:\n" + "\n".join(tail))
    train = json.loads((out / "stats" / f"train_step{steps - 1:04d}_rank0.json").read_text())
    val = json.loads((out / "stats" / f"val_step{steps - 1:04d}.json").read_text())
    return {"seconds": train["ellipse_time"], "peak_bytes": train["mem"] * 2**30, "psnr": val["psnr"],
            "ssim": val["ssim"], "lpips": val["lpips"], "gaussians": train["num_GS"]}


def genfab_side(scene: Path, steps: int, lpips_model: Path, env: dict[str, str],
                setup_profile: Path | None = None) -> dict[str, Any]:
    profile = [] if setup_profile is None else ["--setup-profile", str(setup_profile)]
    done = subprocess.run([sys.executable, __file__, "genfab", "--scene-dir", str(scene), "--steps", str(steps),
                           "--lpips-model", str(lpips_model), *profile], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit("simple-trainer: genfab's side failed:\n" + "\n".join(done.stderr.splitlines()[-15:]))
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def genfab(args: argparse.Namespace) -> int:
    """genfab's side, in its own process: the stage's reader and trainer at the API's defaults."""
    import torch

    from genfab.stages.gaussians.core import TrainSettings
    from genfab.stages.gaussians.loaders import load_scene
    from genfab.stages.gaussians.losses import Lpips
    from genfab.stages.gaussians.stage import read_images
    from genfab.stages.gaussians.train import SceneTrainer

    device = torch.device("cuda")
    scene = load_scene(args.scene_dir)
    images = read_images(args.scene_dir, scene.cameras)
    lpips = Lpips.load(args.lpips_model, device, "no LPIPS model")  # on the GPU first, as simple_trainer's
    s = TrainSettings(steps=args.steps)
    started = time.perf_counter()
    import gsplat.strategy  # noqa: F401  (the setup's first part, reported apart: the package import)

    imported = time.perf_counter() - started
    if args.setup_profile is None:
        trainer = SceneTrainer(scene, images, s, device)
    else:  # where the setup's seconds go (cProfile's own cost is in `setup_seconds` then)
        import cProfile

        profile = cProfile.Profile()
        trainer = profile.runcall(SceneTrainer, scene, images, s, device)
        torch.cuda.synchronize(device)
        profile.disable()
        write_profile(profile, args.setup_profile)
    torch.cuda.synchronize(device)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(s.steps):
        trainer.step()
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device)
    metrics, _ = trainer.evaluate(lpips, images)
    print(json.dumps({"seconds": seconds, "setup_seconds": setup, "setup_import_seconds": imported,
                      "peak_bytes": peak, "psnr": metrics["psnr"],
                      "ssim": metrics["ssim"], "lpips": metrics["lpips"], "gaussians": metrics["num_gaussians"]}))
    return 0


def write_profile(profile: Any, path: Path) -> None:
    """The stats (`path`.prof) and their 30 largest functions by cumulative and by own time (`path`.txt)."""
    import io
    import pstats

    path.parent.mkdir(parents=True, exist_ok=True)
    profile.dump_stats(str(path.with_suffix(".prof")))
    text = io.StringIO()
    for order in ("cumulative", "tottime"):
        pstats.Stats(profile, stream=text).sort_stats(order).print_stats(30)
    path.with_suffix(".txt").write_text(text.getvalue())


def ssim_against_fused_ssim(size: int = 1024) -> str:
    """genfab's Triton SSIM against the fused-ssim simple_trainer uses ('valid' padding, as its loss),
    on one [1, 3, size, size] pair: the values, the gradients and the GPU time of forward+backward."""
    import torch
    from fused_ssim import fused_ssim as theirs

    from genfab.stages.gaussians.fused_ssim import fused_ssim as ours

    target = torch.rand(1, 3, size, size, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    results = {}
    for name, fn in (("genfab", ours), ("fused-ssim", lambda a, b: theirs(a, b, padding="valid"))):
        x = pred.clone().requires_grad_()
        value = fn(x, target)
        value.backward()
        for _ in range(5):
            fn(x, target).backward()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(30):
            fn(x, target).backward()
        end.record()
        torch.cuda.synchronize()
        x.grad = None
        fn(x, target).backward()
        results[name] = (float(value.detach()), x.grad, start.elapsed_time(end) / 30)
    (v1, g1, t1), (v2, g2, t2) = results["genfab"], results["fused-ssim"]
    assert g1 is not None and g2 is not None
    rel = float((g1 - g2).abs().max() / g2.abs().max())
    return (f"SSIM at {size}x{size}, genfab's Triton kernels / fused-ssim: value {v1:.6f} / {v2:.6f}, "
            f"largest gradient difference {rel:.1e} of the largest gradient, forward+backward "
            f"{t1:.3f} / {t2:.3f} ms.")


SIDES = ("simple_trainer", "genfab")
REFERENCE_STEPS = 30_000
"""simple_trainer's default max_steps, which --steps_scaler scales."""


def run(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        sys.exit("simple-trainer: needs a CUDA GPU")
    if not EXAMPLES.is_dir():
        sys.exit(f"simple-trainer: {BENCH} is missing; run `benchmarks/gaussians_simple_trainer.py prepare` "
                 "on a machine with network and carry .bench")
    tier = gpu_tier()
    work = Path(args.work)
    builds = Path(args.builds) if args.builds else None
    env = install(work / "site", tier, builds, Path(args.wheels))
    sys.path[:0] = env["PYTHONPATH"].split(os.pathsep)  # genfab and its wheels, for this process too
    if not tier.build(env):
        return 1
    if builds is not None and not builds.is_file():
        tier.save_builds(work / "site", Path(env["TORCH_EXTENSIONS_DIR"]),
                         [p.replace("-", "_") for p in UPSTREAM], builds)
    from genfab.stages.models.lpips import save_torchmetrics_twin

    ssim_note = ssim_against_fused_ssim()
    print(f"simple-trainer: {ssim_note}", flush=True)
    lpips_model = save_torchmetrics_twin(work / "alexnet-lpips", work / "torch")
    env["TORCH_HOME"] = str(work / "torch")
    rows = []
    for spec in args.scene:
        for seed in args.seeds:
            folder = work / "scenes" / f"{spec}-{seed}"
            write_scene(spec, seed, folder)
            for steps in args.steps:
                # which side runs first alternates from row to row (a machine warms up and cools down)
                order = [side for side in (SIDES if len(rows) % 2 == 0 else SIDES[::-1])
                         if args.side in ("both", side)]
                runs: dict[str, dict[str, Any]] = {}
                for side in order:
                    if side == "genfab":
                        profile = (None if args.setup_profile is None
                                   else Path(args.setup_profile) / f"setup-{spec}-{seed}-{steps}")
                        runs[side] = genfab_side(folder, steps, lpips_model, env, profile)
                    else:
                        runs[side] = simple_trainer_side(folder, steps, work / "runs" / f"{spec}-{seed}-{steps}", env)
                    print(f"simple-trainer: {spec} seed {seed} {steps} steps {side}: {json.dumps(runs[side])}",
                          flush=True)
                rows.append({"scene": spec, "seed": seed, "steps": steps, **runs})
                if args.json:  # after every row: a call cut off at its time limit keeps the rows it finished
                    Path(args.json).write_text(json.dumps({"machine": machine_line(), "command": command_line(),
                                                           "rows": rows}, indent=1))
    text = table(rows, machine_line(), [command_line()]) + "\n" + ssim_note + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def machine_line() -> str:
    import gsplat
    import torch

    pins = json.loads((BENCH / "pins.json").read_text())
    return (f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; gsplat {gsplat.__version__}; "
            f"Python {platform.python_version()}; simple_trainer from gsplat {pins['gsplat']}, fused-ssim "
            f"{pins['fused-ssim'][:8]} (built from source), pycolmap {pins['pycolmap'][:8]}.")


def command_line() -> str:
    return "python3 benchmarks/gaussians_simple_trainer.py run " + " ".join(sys.argv[2:])


def merge(args: argparse.Namespace) -> int:
    """One table from the JSON of several `run --side ...` calls (a 30,000-step row takes one call per
    side within the GPU machine's 10 minutes): rows of one scene and step count are joined."""
    runs = [json.loads(Path(f).read_text()) for f in args.json]
    if len({r["machine"] for r in runs}) != 1:
        sys.exit("simple-trainer: the runs come from different machines or versions; their times do not compare")
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in runs:
        for row in r["rows"]:
            rows.setdefault((row["scene"], row.get("seed", 7), row["steps"]), {}).update(row)
    ordered = [rows[key] for key in sorted(rows, key=lambda k: (-int(k[0].split("x")[0]), k[2], k[1]))]
    print(table(ordered, runs[0]["machine"], [r["command"] for r in runs]))
    return 0


def table(rows: list[dict[str, Any]], machine: str, commands: list[str]) -> str:
    """One line per side and seed with its ratio line, then, per scene size and step count, the
    means over its seeds: mean train time of each side and the mean of the per-seed time ratios,
    the largest memory ratio, and the difference of the two sides' mean held-out PSNR (the target's
    terms: PSNR moves by tenths of a dB between runs of one trainer, so one seed decides nothing)."""
    lines = [
        machine,
        "Command: " + "; ".join(f"`{c}`" for c in commands),
        "",
        "| scene | seed | steps | | train s | setup s | peak GPU memory | test PSNR | test SSIM | test LPIPS "
        "| Gaussians |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        where, seed = scene_name(row["scene"]), row.get("seed", 7)
        for side in (x for x in SIDES if x in row):
            r = row[side]
            setup = f"{r['setup_seconds']:.1f}" if "setup_seconds" in r else "n/a"
            lines.append(f"| {where} | {seed} | {row['steps']:,} | {side} | {r['seconds']:.1f} | {setup} | "
                         f"{r['peak_bytes'] / 2**20:,.0f} MiB | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                         f"{r['lpips']:.4f} | {r['gaussians']:,} |")
        if not all(side in row for side in SIDES):
            continue
        st, ours = row["simple_trainer"], row["genfab"]
        lines.append(f"| {where} | {seed} | {row['steps']:,} | **genfab / simple_trainer** | "
                     f"**{ours['seconds'] / st['seconds']:.2f}x** | | "
                     f"**{ours['peak_bytes'] / st['peak_bytes']:.2f}x** | "
                     f"**{ours['psnr'] - st['psnr']:+.2f} dB** | {ours['ssim'] - st['ssim']:+.4f} | "
                     f"{ours['lpips'] - st['lpips']:+.4f} | {ours['gaussians'] / st['gaussians']:.2f}x |")
    lines += ["", *summary(rows), "",
              "Targets (over the seeds): train time <= 0.45x, peak memory <= 1.0x on every seed, mean PSNR >= "
              "simple_trainer's mean - 0.1 dB."]
    return "\n".join(lines) + "\n"


def scene_name(spec: str) -> str:
    size, views, background = parse_scene(spec)
    return f"{size}², {views} views" + ("" if background == "white" else f", {background} background")


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """The means over seeds of every (scene, steps) with both sides."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        if all(side in row for side in SIDES):
            groups.setdefault((row["scene"], row["steps"]), []).append(row)
    if not groups:
        return []
    lines = ["Over the seeds (mean; per-seed range in brackets):", "",
             "| scene | steps | seeds | simple_trainer s | genfab s | time ratio | memory ratio (largest) | "
             "simple_trainer PSNR | genfab PSNR | PSNR difference | SSIM difference |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (spec, steps), group in groups.items():
        def mean(values: list[float]) -> float:
            return sum(values) / len(values)

        ratio = [r["genfab"]["seconds"] / r["simple_trainer"]["seconds"] for r in group]
        memory = max(r["genfab"]["peak_bytes"] / r["simple_trainer"]["peak_bytes"] for r in group)
        psnr = {side: mean([r[side]["psnr"] for r in group]) for side in SIDES}
        diff = [r["genfab"]["psnr"] - r["simple_trainer"]["psnr"] for r in group]
        ssim = mean([r["genfab"]["ssim"] - r["simple_trainer"]["ssim"] for r in group])
        lines.append(
            f"| {scene_name(spec)} | {steps:,} | {', '.join(str(r.get('seed', 7)) for r in group)} | "
            f"{mean([r['simple_trainer']['seconds'] for r in group]):.1f} | "
            f"{mean([r['genfab']['seconds'] for r in group]):.1f} | "
            f"**{mean(ratio):.2f}x** [{min(ratio):.2f}–{max(ratio):.2f}] | **{memory:.2f}x** | "
            f"{psnr['simple_trainer']:.2f} | {psnr['genfab']:.2f} | "
            f"**{psnr['genfab'] - psnr['simple_trainer']:+.2f} dB** [{min(diff):+.2f}–{max(diff):+.2f}] | "
            f"{ssim:+.4f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write .bench/simple-trainer (a machine with network)")
    p.add_argument("--mirrors", help="local clones, DIR/<owner>+<name>/repo")
    p.add_argument("--python", default="3.12", help="the GPU machine's Python version")
    r = sub.add_parser("run", help="the comparison (the GPU machine)")
    r.add_argument("--scene", action="append", required=True,
                   help="SIZExVIEWS[-black], e.g. 1024x96 (repeatable; -black: the scene's background is black, "
                   "which neither trainer has to paint)")
    r.add_argument("--steps", type=int, nargs="+", default=[7000])
    r.add_argument("--seeds", type=int, nargs="+", default=[7],
                   help="procedural scene seeds: one row per seed and size, both sides on the same scene")
    r.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "genfab-simple-trainer"),
                   help="scenes, runs and the installed packages (reused by a later call on the same machine)")
    r.add_argument("--side", choices=["both", *SIDES], default="both",
                   help="run one side only (its JSON joins the other's with `merge`)")
    r.add_argument("--builds", help="compiled kernels: restored from this archive where it exists (an earlier "
                   "machine's), else saved to it after building (carry it back to skip minutes of builds)")
    r.add_argument("--setup-profile", help="cProfile genfab's setup (building the trainer) into this folder, "
                   "one stats file per row (the profile's own cost then counts in setup_seconds)")
    r.add_argument("--wheels", default=str(ROOT / ".gpuwheels"),
                   help="the GPU tier's wheels (scripts/gpu_tier.py --prepare): a trimmed folder keeps the carry "
                   "under the device's 64 MiB (only what the image lacks is installed)")
    r.add_argument("--out", help="write the markdown table here")
    r.add_argument("--json", help="write the rows as JSON here")
    m = sub.add_parser("merge", help="one table from several runs' --json files")
    m.add_argument("json", nargs="+")
    g = sub.add_parser("genfab", help="genfab's side, one process (run starts it)")
    g.add_argument("--scene-dir", type=Path, required=True)
    g.add_argument("--steps", type=int, required=True)
    g.add_argument("--lpips-model", type=Path, required=True)
    g.add_argument("--setup-profile", type=Path, default=None)
    args = parser.parse_args()
    return {"prepare": prepare, "run": run, "merge": merge, "genfab": genfab}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
