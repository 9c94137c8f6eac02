"""The report's charts, drawn by matplotlib (its Agg backend: no display, no fonts fetched) as PNG."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genfab.report.model import Plot

SIZE = (6.4, 3.2)
DPI = 100
MARGINS = {"left": 0.11, "right": 0.98, "top": 0.9, "bottom": 0.17}
"""Fixed margins (fractions of the figure): room for the title, the axis labels and slanted names.
matplotlib's constrained layout measured every text twice and was a third of a chart's time."""
SLANTED_BOTTOM = 0.3
"""The bottom margin under slanted bar names."""


def draw(plot: Plot) -> bytes:
    """The chart as PNG bytes (640 x 320 pixels). A Figure of its own (no pyplot state: nothing to
    close, nothing shared between charts)."""
    figure = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    slanted = plot.kind != "line" and len(plot.names) > 4
    figure.subplots_adjust(**{**MARGINS, **({"bottom": SLANTED_BOTTOM} if slanted else {})})
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
        axes.set_xticks(list(positions), plot.names, rotation=30 if slanted else 0,
                        ha="right" if slanted else "center")
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
