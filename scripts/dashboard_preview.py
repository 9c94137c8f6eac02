"""A picture of genfab's Grafana dashboard (charts/genfab/dashboards/genfab.json) filled with real data,
for the Monitoring page: docs/operate/dashboard-preview.png.

What is real: the operator (`python -m genfab.operator`) reconciling a few minutes of work on the
emulated API server (tests/emulator: SceneJobs created over time, stage Pods that take a while, some
samples failing, one stage failing, one image that cannot be pulled, one stage waiting for GPUs), a real
Prometheus (Debian's `prometheus`) scraping the operator's metrics, and every query exactly as the
dashboard's panels write it (its variables set to "All"). What is not Grafana: no registry this project
may use ships Grafana's server, so the panels are drawn with matplotlib in the dashboard's grid layout.
The emulator runs no stage Pods, so the panels fed by stage Pods' metrics and the DCGM exporter say
"No data", as they would in Grafana.

    apt-get install prometheus && pip install matplotlib
    python scripts/dashboard_preview.py [--minutes 3] [--out docs/operate/dashboard-preview.png]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.emulator.harness import Emulator, OperatorProcess, free_port
from tests.emulator.kubelet import Behaviour

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "charts/genfab/dashboards/genfab.json"
SCRAPE_S = 2
STAGES = ("scaffold", "expansion", "gaussians")


SPECIAL = {"scenes-03": "crash", "scenes-05": "image-pull", "scenes-08": "unschedulable"}
"""Resources whose scaffold Pods misbehave: crash until the retries run out (a failed stage), an image
that cannot be pulled and no GPU to schedule on (both Stalled)."""


def behaviour(resource: str, stage: str, index: int, attempt: int) -> Behaviour:
    """Stage Pods that take a few seconds (longer for later stages), every fourth shard dropping a
    sample, and the misbehaving resources above; keyed by the shard, so every run tells the same story."""
    if stage == "scaffold" and resource in SPECIAL:
        return Behaviour(outcome=SPECIAL[resource], seconds=2.0)
    return Behaviour(seconds=3.0 + 2.0 * STAGES.index(stage) + index % 3, fail_samples=1 if index % 4 == 3 else 0)


def scenejob(inputs: Path, out: Path, i: int) -> dict[str, Any]:
    return {"apiVersion": "genfab.dev/v1alpha1", "kind": "SceneJob",
            "metadata": {"name": f"scenes-{i:02d}", "namespace": f"lab-{'abc'[i % 3]}"},
            "spec": {"pipeline": "worldexplorer", "worldexplorer": {"scaffold": {"method": "scaffold_gen"}},
                     "input": {"datasetUri": f"file://{inputs}",
                               "samples": [{"index": k, "photorealistic": {"path": f"img_{k:02d}.png"}}
                                           for k in range(16)]},
                     "output": f"file://{out}/scenes-{i:02d}", "shardSize": 2, "retries": 1,
                     "continueOnError": True}}


def run_scenario(minutes: float, work: Path) -> tuple[float, float, str, subprocess.Popen[bytes]]:
    """Run the operator on the emulator under Prometheus for `minutes`, SceneJobs arriving over the
    first two thirds; returns (start, end, Prometheus URL, the Prometheus process, still running)."""
    inputs = work / "in"
    inputs.mkdir()
    for k in range(16):
        (inputs / f"img_{k:02d}.png").write_bytes(b"png")
    emu = Emulator(tick=0.1).start()
    emu.kubelet.resource_script = behaviour
    op = OperatorProcess(emu, work, GENFAB_PROGRESS_SECONDS="2", GENFAB_RESYNC_SECONDS="10").start()
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        emu.wait("operator up", op.healthy, timeout=60, interval=0.2)
        port = free_port()
        config = work / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
            "scrape_configs": [{"job_name": "genfab-operator",
                                "static_configs": [{"targets": [f"127.0.0.1:{op.metrics_port}"]}]}]}))
        prometheus = subprocess.Popen(
            [shutil.which("prometheus") or "prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        emu.wait("prometheus up", lambda: query(url, "up", time.time()), timeout=60, interval=0.5)
        start = time.time()
        end = start + minutes * 60
        count = 14
        for i in range(count):
            emu.apply(scenejob(inputs, work / "out", i))
            time.sleep(max(0.0, start + (i + 1) * (end - start) * 2 / 3 / count - time.time()))
        time.sleep(max(0.0, end - time.time()))
        time.sleep(2 * SCRAPE_S)  # the last scrape
        return start, end, url, prometheus
    except BaseException:
        if prometheus is not None:
            prometheus.terminate()
        raise
    finally:
        op.stop()
        emu.stop()


def query(url: str, expr: str, at: float) -> list[dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at}),
                                    timeout=10) as r:
            return list(json.load(r)["data"]["result"])
    except OSError:
        return None


def query_range(url: str, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": SCRAPE_S})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=30) as r:
        return list(json.load(r)["data"]["result"])


def resolve(expr: str, window_s: float) -> str:
    """The dashboard's variables as Grafana fills them with "All" selected."""
    return (expr.replace('"$kind"', '".*"').replace('"$stage"', '".*"')
            .replace("$__rate_interval", f"{4 * SCRAPE_S}s").replace("$__range", f"{int(window_s)}s"))


def legend(fmt: str, metric: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m[1], ""), fmt or "") or ", ".join(metric.values())


def draw(url: str, start: float, end: float, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = json.loads(DASHBOARD.read_text())["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(16, rows * 0.3), dpi=110, facecolor="#111217")
    for panel in panels:
        pos = panel["gridPos"]
        box = [pos["x"] / 24 + 0.004, 1 - (pos["y"] + pos["h"]) / rows + 0.006, pos["w"] / 24 - 0.008,
               pos["h"] / rows - 0.012]
        if panel["type"] == "row":
            fig.text(box[0], box[1] + box[3] / 2, panel["title"], color="#ccccdc", fontsize=12, weight="bold",
                     va="center")
            continue
        inset = 0.09 if panel["type"] == "bargauge" else 0.028  # room for the y axis's labels
        ax = fig.add_axes((box[0] + inset, box[1] + 0.012, box[2] - inset, box[3] * 0.84 - 0.012),
                          facecolor="#181b1f")
        fig.text(box[0] + 0.004, box[1] + box[3] * 0.92, panel["title"], color="#ccccdc", fontsize=9,
                 va="center")
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        ax.tick_params(colors="#9fa7b3", labelsize=7)
        series = 0
        if panel["type"] == "timeseries":
            for target in panel.get("targets", []):
                for result in query_range(url, resolve(target["expr"], end - start), start, end):
                    xs = [(float(t) - start) / 60 for t, _ in result["values"]]
                    ys = [float(v) for _, v in result["values"]]
                    ax.plot(xs, ys, linewidth=1.2, label=legend(target.get("legendFormat", ""), result["metric"]))
                    series += 1
            ax.set_xlim(0, (end - start) / 60)
            ax.set_xlabel("minutes", color="#9fa7b3", fontsize=7)
            ax.grid(color="#2c3235", linewidth=0.5)
            if series:
                ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#ccccdc",
                          edgecolor="#2c3235", ncol=2 if series > 4 else 1)
        else:  # bargauge and table: the value at the end of the range
            values = [(legend(t.get("legendFormat", ""), r["metric"]), float(r["value"][1]))
                      for t in panel.get("targets", [])
                      for r in query(url, resolve(t["expr"], end - start), end) or []
                      if r["value"][1] not in ("NaN", "+Inf")]
            series = len(values)
            if panel["type"] == "bargauge" and values:
                ax.barh([name for name, _ in values], [v for _, v in values], color="#73bf69")
                ax.tick_params(axis="y", labelsize=6)
            elif values:
                ax.axis("off")
                for k, (name, value) in enumerate(values[:8]):
                    ax.text(0.02, 0.9 - k * 0.11, f"{name}    {value:,.0f} s", color="#ccccdc", fontsize=7,
                            transform=ax.transAxes, family="monospace")
        if not series:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, "No data", color="#9fa7b3", ha="center", va="center", transform=ax.transAxes)
    fig.text(0.995, 0.003, "genfab dashboard panels, queried from Prometheus; drawn by scripts/dashboard_preview.py "
             "(not Grafana)", color="#6e7781", fontsize=7, ha="right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=fig.get_facecolor())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=REPO / "docs/operate/dashboard-preview.png")
    args = parser.parse_args()
    if shutil.which("prometheus") is None:
        sys.exit("no prometheus binary: apt-get install prometheus")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("matplotlib is missing: pip install matplotlib")
    work = Path(tempfile.mkdtemp(prefix="genfab-dashboard-"))
    start, end, url, prometheus = run_scenario(args.minutes, work)
    try:
        draw(url, start, end, args.out)
    finally:
        prometheus.terminate()
        prometheus.wait(10)
    print(f"wrote {args.out} ({end - start:.0f} s of the operator's metrics)")


if __name__ == "__main__":
    main()
