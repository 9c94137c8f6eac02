"""How busy the GPU is while a benchmark runs: NVML's utilisation (the share of time a kernel ran),
sampled in a thread with timestamps, so a benchmark can average it over its own processing window
(model loading left out). Used by relighting_gpu.py and reference_object.py (run as scripts: this
folder is on their path)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class GpuSampler:
    """NVML utilisation (percent of time a kernel ran) every `period` seconds, with timestamps."""

    def __init__(self, period: float = 0.05) -> None:
        self.samples: list[tuple[float, int]] = []
        self.period = period
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle: Any = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.nvml: Any = pynvml
        except Exception:
            self.handle = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))
            time.sleep(self.period)

    def __enter__(self) -> GpuSampler:
        if self.handle is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.handle is not None:
            self._thread.join()

    def busy(self, start: float, stop: float) -> float | None:
        window = [u for t, u in self.samples if start <= t <= stop]
        return float(np.mean(window)) / 100 if window else None
