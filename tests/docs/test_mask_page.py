"""`genfab mask IMAGE --review` in a real browser (headless Chromium): a click on the object shows the
mask over the image, Save writes the mask and its record (what `genfab mask` with the same point
writes) and the command ends; requests without the page's token, or with prompts that are not the
page's, change nothing. GrabCut (no weights) makes the masks here; SAM2's path is the CLI's
(tests/unit/test_mask_labeler.py, tests/gpu/test_mask_gpu.py).

`GENFAB_UPDATE_SCREENSHOTS=1` writes the screenshot the docs show (docs/images/mask-page.jpg)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import cv2

from tests.docs.browser import interact
from tests.docs.test_report_in_a_browser import keep, not_blank
from tests.helpers import ROOT, disk_image

BLUE = ("(() => { const c = document.getElementById('overlay'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) "
        "if (d[i] > 0) n++; return n / (c.width * c.height); })()")
"""The share of the overlay the mask tints."""


def post(url: str, body: object) -> tuple[int, dict[str, object] | str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, json.loads(text) if text.startswith("{") else text


def test_a_click_shows_the_mask_and_save_writes_it(tmp_path: Path, devtools: str) -> None:
    image, truth = disk_image(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("operator", "stages", ""))}
    server = subprocess.Popen([sys.executable, "-m", "genfab.cli.main", "mask", str(image), "--method", "grabcut",
                               "--review"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and "token=" in url, url
        base, token = url.split("/?token=")
        # what the page's server refuses, before any click: no token, prompts that are not the page's
        assert post(f"{base}/preview", {"points": [[100, 80]]})[0] == 403
        assert post(f"{base}/preview?token={token}", {"points": []}) == (400, {"ok": False,
                                                                               "error": "click the object first"})
        assert post(f"{base}/save?token={token}", {"points": [["x", 1]]})[0] == 400
        code, said = post(f"{base}/preview?token={token}", {"points": [[500, 80]]})
        assert code == 400 and "--point 500,80 is outside the 200x160 image" in str(said)
        assert not (tmp_path / "mug_mask.png").exists()

        visit, results = interact(devtools, url, [
            ("wait", "document.getElementById('photo').complete"),
            ("click", "#photo"),  # its centre: (100, 80), inside the disk
            ("wait", "document.getElementById('status').textContent.includes('foreground')"),
            ("eval", BLUE),
            ("eval", "document.getElementById('status').textContent"),
            ("shot", ""),
            ("click", "#save"),
            ("wait", "document.getElementById('status').textContent.startsWith('Saved')"),
            ("eval", "document.getElementById('status').textContent"),
        ])
        assert visit.problems == [], visit.problems
        tinted, shown, shot, saved = results[3], results[4], results[5], results[8]
        assert abs(tinted - truth.mean()) < 0.02, (tinted, truth.mean())  # the mask over the image is the disk
        assert shown.startswith("grabcut: foreground") and saved.startswith(f"Saved: {tmp_path / 'mug_mask.png'}")
        not_blank(shot)
        keep(shot, "mask-page.jpg")
        server.wait(timeout=20)  # saved: it ends by itself, saying so
        assert "saved:" in server.stdout.read()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
    assert server.returncode == 0
    mask = cv2.imread(str(tmp_path / "mug_mask.png"), cv2.IMREAD_UNCHANGED)
    iou = ((mask > 0) & truth).sum() / ((mask > 0) | truth).sum()
    assert iou > 0.95, iou
    record = json.loads((tmp_path / "mug_mask.png.json").read_text())
    assert record["method"] == "grabcut" and record["model"] is None
    (x, y), = record["prompts"]["points"]
    assert abs(x - 100) <= 2 and abs(y - 80) <= 2 and record["prompts"]["negative"] == []
