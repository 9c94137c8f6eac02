"""The report's charts, drawn by matplotlib (its Agg backend: no display, no fonts fetched) as PNG."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from genfab.report.model import Plot

SIZE = (6.4, 3.2)
DPI = 100


def draw(plot: Plot) -> bytes:
    """The chart as PNG bytes (640 x 320 pixels)."""
    figure, axes = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    try:
        if plot.kind == "line":
            for series in plot.series:
                if series.x:
                    axes.plot(series.x, series.y, label=series.label, marker="o" if len(series.x) < 20 else None)
        else:
            width = 0.8 / max(1, len(plot.series))
            positions = range(len(plot.names))
            for i, series in enumerate(plot.series):
                axes.bar([p + (i - (len(plot.series) - 1) / 2) * width for p in positions], series.y, width,
                         label=series.label)
            axes.set_xticks(list(positions), plot.names, rotation=30 if len(plot.names) > 4 else 0, ha="right"
                            if len(plot.names) > 4 else "center")
        if plot.log_y:
            axes.set_yscale("log")
        axes.set_title(plot.title)
        axes.set_xlabel(plot.xlabel)
        axes.set_ylabel(plot.ylabel)
        axes.grid(alpha=0.3)
        if len(plot.series) > 1:
            axes.legend()
        out = io.BytesIO()
        figure.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(figure)
