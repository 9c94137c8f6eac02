"""Prometheus metrics of a stage Pod, served on `GENFAB_METRICS_PORT` (scraped by the PodMonitor)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric

from genfab.api.quality import FIGURES, declared_values, figure_items

SAMPLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class StageMetrics:
    """Metric names are part of the chart's dashboard and alerts; a test cross-checks them."""

    def __init__(self, stage: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.stage = stage
        labels = ["stage"]
        self.sample_seconds = Histogram(
            "genfab_stage_sample_seconds", "Seconds to produce one sample", labels,
            buckets=SAMPLE_BUCKETS, registry=self.registry).labels(stage)
        self._samples = Counter(
            "genfab_stage_samples", "Samples handled by this Pod, by outcome (succeeded, failed, reused)",
            [*labels, "outcome"], registry=self.registry)
        self._failures = Counter(
            "genfab_stage_sample_failures", "Failed samples by reason (SampleError reason or exception class)",
            [*labels, "reason"], registry=self.registry)
        self.model_load_seconds = Gauge(
            "genfab_stage_model_load_seconds", "Seconds the stage spent loading its models", labels,
            registry=self.registry).labels(stage)
        self.gpu_memory_peak = Gauge(
            "genfab_stage_gpu_memory_peak_bytes", "Peak GPU memory allocated by the stage process", labels,
            registry=self.registry).labels(stage)
        self._model_load = Gauge(
            "genfab_stage_model_seconds", "Seconds one model took to load and place, by model id",
            [*labels, "model"], registry=self.registry)
        self._model_bytes = Gauge(
            "genfab_stage_model_gpu_bytes", "GPU memory one model holds after loading, by model id",
            [*labels, "model"], registry=self.registry)
        # One histogram per quality figure (genfab.api.quality), its buckets the figure's own bins.
        self._quality = {f.name: Histogram(
            quality_metric(f.name), f"Quality figure {f.name} of the samples produced ({f.unit})", labels,
            buckets=f.edges[1:], registry=self.registry) for f in FIGURES.values()}
        self.shard_progress = Gauge(
            "genfab_stage_shard_progress_ratio", "Fraction of this shard's samples done", labels,
            registry=self.registry).labels(stage)

    def sample(self, outcome: str, seconds: float | None = None, reason: str | None = None) -> None:
        self._samples.labels(self.stage, outcome).inc()
        if reason is not None:
            self._failures.labels(self.stage, reason).inc()
        if seconds is not None:
            self.sample_seconds.observe(seconds)
        self.update_gpu_peak()

    def figures(self, measured: Mapping[str, Any] | None) -> None:
        """A produced sample's quality figures (its params' `quality`: its own, or each of its items'),
        each into its histogram."""
        for _, own in figure_items("", measured):
            for name, value in declared_values(own).items():
                self._quality[name].labels(self.stage).observe(value)

    def model_loaded(self, model: str, seconds: float, gpu_bytes: int) -> None:
        self._model_load.labels(self.stage, model).set(seconds)
        self._model_bytes.labels(self.stage, model).set(gpu_bytes)
        self.update_gpu_peak()

    def update_gpu_peak(self) -> None:
        peak = gpu_peak_bytes()
        if peak is not None:
            self.gpu_memory_peak.set(peak)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


class SharedPodMetrics:
    """The metrics of every stage a shared worker Pod runs (genfab.stages.runtime.group), on its one port:
    each stage's registry collected, families of one name merged (their samples differ by `stage`), so
    the page says each metric once, as a Pod of one stage does."""

    def __init__(self) -> None:
        self.stages: list[StageMetrics] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # a collector: it has `collect`

    def add(self, metrics: StageMetrics) -> None:
        self.stages.append(metrics)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for stage in list(self.stages):
            for family in stage.registry.collect():
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        yield from merged.values()

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


def quality_metric(figure: str) -> str:
    """`maskArea` -> `genfab_stage_quality_mask_area`."""
    return "genfab_stage_quality_" + re.sub(r"(?<!^)(?=[A-Z])", "_", figure).lower()


def gpu_peak_bytes() -> int | None:
    """Peak CUDA memory of this process, only if the stage itself imported torch (the runtime never
    does) and initialised CUDA (asking must not create a CUDA context in a CPU stage)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.max_memory_allocated())
