"""Static PNG images of the shared plotly figures (moodstream.figures), drawn by matplotlib.

The PDF reports print the same figures the dashboard and the HTML report show: the pure
builders stay the one definition of every chart (data, colours, titles, ranges), and this
module only draws what a builder returned. It covers what the builders use: line, marker
and stacked-area scatters, grouped or stacked bars (either orientation), a second y axis,
horizontal reference lines, percent ticks and the "why is it blank" annotation.

matplotlib rather than plotly's own exporter (kaleido) because kaleido drives a Chromium
for every export: measured in benchmarks/RESULTS.md ("PDF reports").
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: a file renderer only (before pyplot's first import)

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from moodstream.figures import OKABE_ITO  # noqa: E402

# Traces without a colour of their own take the Okabe-Ito colours in turn, as on paper the
# palette has to survive a grey-scale printer and colour-blind readers alike.
_CYCLE = [OKABE_ITO[name] for name in ("blue", "orange", "bluish_green", "vermillion",
                                       "reddish_purple", "sky_blue", "grey")]
DPI = 150
_MANY_BARS = 200
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def figure_png(fig: go.Figure | dict, width_in: float = 7.0, height_in: float = 2.8) -> bytes:
    """The figure (a go.Figure, or a builder's plain plotly dict) as a PNG of width_in x
    height_in inches at DPI dots per inch."""
    if isinstance(fig, dict):
        fig = go.Figure(fig)
    canvas = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    ax = canvas.add_subplot()
    layout = fig.layout
    ax.set_title(layout.title.text or "", fontsize=10, loc="left")
    if _draw_annotation_only(ax, fig):
        return _png(canvas)
    colours = iter(_CYCLE)
    axes = {"y": ax}
    _draw_stacks(ax, fig, colours)
    _draw_bars(ax, fig, colours)
    for trace in fig.data:
        if isinstance(trace, go.Scatter) and not trace.stackgroup:
            target = _axis_for(trace, axes, ax)
            _draw_line(target, trace, next(colours) if not _colour(trace) else _colour(trace))
    for shape in layout.shapes or ():
        if shape.type == "line" and shape.y0 == shape.y1:
            ax.axhline(shape.y0, color="#888888", linewidth=0.8, linestyle=":")
    _style_axes(ax, layout.xaxis, layout.yaxis)
    if any(_xy(trace.x).dtype.kind == "M" for trace in fig.data):
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator(),
                                                                 show_offset=False))
    if "y2" in axes:
        _style_axes(axes["y2"], None, layout.yaxis2)
    _legend(canvas, axes.values())
    return _png(canvas)


def _png(canvas: Figure) -> bytes:
    buf = io.BytesIO()
    canvas.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _draw_annotation_only(ax, fig: go.Figure) -> bool:
    """An empty_figure(): no traces, one centred message."""
    if fig.data:
        return False
    ax.set_axis_off()
    for note in fig.layout.annotations or ():
        ax.text(0.5, 0.5, note.text, ha="center", va="center", color="#888888",
                transform=ax.transAxes, fontsize=10)
    return True


def _colour(trace) -> Any:
    if isinstance(trace, go.Bar):
        return trace.marker.color
    return trace.line.color or trace.marker.color


def _xy(values) -> np.ndarray:
    """plotly data as an array matplotlib plots: NaN gaps kept, times as datetime64."""
    array = np.asarray(values if values is not None else [])
    if array.dtype.kind in "OU" and all(_ISO_TIME.match(str(v)) for v in array):
        return array.astype("datetime64[ms]")  # ISO times as text: times, not categories
    return array


def _axis_for(trace, axes: dict, ax):
    if trace.yaxis != "y2":
        return ax
    if "y2" not in axes:
        axes["y2"] = ax.twinx()
    return axes["y2"]


def _draw_line(ax, trace: go.Scatter, colour) -> None:
    mode = trace.mode or "lines"
    style = "-" if "lines" in mode else ""
    marker = "o" if "markers" in mode else ""
    ax.plot(_xy(trace.x), np.asarray(trace.y, dtype=float), linestyle=style or "None",
            marker=marker or None, markersize=2.5, linewidth=1.2, color=colour,
            label=trace.name)


def _draw_stacks(ax, fig: go.Figure, colours) -> None:
    groups: dict[str, list[go.Scatter]] = {}
    for trace in fig.data:
        if isinstance(trace, go.Scatter) and trace.stackgroup:
            groups.setdefault(trace.stackgroup, []).append(trace)
    for traces in groups.values():
        ax.stackplot(_xy(traces[0].x), *[np.nan_to_num(np.asarray(t.y, dtype=float))
                                         for t in traces],
                     colors=[_colour(t) or next(colours) for t in traces],
                     labels=[t.name for t in traces], linewidth=0.3)


def _draw_bars(ax, fig: go.Figure, colours) -> None:
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    stacked = fig.layout.barmode == "stack"
    base = None
    for trace in bars:
        horizontal = trace.orientation == "h"
        where, size = (trace.y, trace.x) if horizontal else (trace.x, trace.y)
        where, size = _xy(where), np.nan_to_num(np.asarray(size, dtype=float))
        colour = _colour(trace) or next(colours)
        colour = list(colour) if isinstance(colour, (list, tuple)) else colour
        offset = base if stacked and base is not None else np.zeros(len(size))
        if horizontal:
            ax.barh(where, size, left=offset, color=colour, label=trace.name, height=0.7)
        elif len(where) > _MANY_BARS and where.dtype.kind in "if" and isinstance(colour, str):
            _bar_outline(ax, where.astype(float), size, offset, colour, trace.name)
        else:
            ax.bar(where, size, bottom=offset, color=colour, label=trace.name,
                   width=_bar_width(where))
        base = offset + size


def _bar_outline(ax, where: np.ndarray, size: np.ndarray, offset: np.ndarray, colour: str,
                 name: str | None) -> None:
    """Thousands of bars (an hour of seconds) as one filled step outline: a bar each is one
    matplotlib patch each (seconds per chart), and at print size they are narrower than a
    dot anyway."""
    mids = (where[1:] + where[:-1]) / 2
    edges = np.concatenate([[where[0] - 0.5], mids, [where[-1] + 0.5]])
    ax.stairs(offset + size, edges, baseline=offset, fill=True, color=colour, label=name)


def _bar_width(where: np.ndarray) -> float:
    """80% of the smallest step between bars, in the axis' own units (days for times)."""
    if where.dtype.kind == "M":
        steps = np.diff(mdates.date2num(where))
    elif where.dtype.kind in "if":
        steps = np.diff(where.astype(float))
    else:
        return 0.8
    steps = steps[steps > 0]
    return 0.8 * float(steps.min()) if steps.size else 0.8


def _style_axes(ax, xaxis, yaxis) -> None:
    for axis, spec, set_label, set_lim in (
            (ax.xaxis, xaxis, ax.set_xlabel, ax.set_xlim),
            (ax.yaxis, yaxis, ax.set_ylabel, ax.set_ylim)):
        if spec is None:
            continue
        if spec.visible is False:
            axis.set_visible(False)
        set_label(spec.title.text or "", fontsize=8)
        if spec.range:
            set_lim(*spec.range)
        elif spec.rangemode == "tozero":
            set_lim(bottom=0) if axis is ax.yaxis else set_lim(left=0)
        if spec.tickformat and spec.tickformat.endswith("%"):
            axis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", color="#dddddd", linewidth=0.5)


def _legend(canvas: Figure, axes) -> None:
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if len(handles) > 1:
        canvas.legend(handles, labels, loc="outside lower center", ncols=min(7, len(handles)),
                      fontsize=7, frameon=False)
