"""The transparency report's charts: one PNG bar chart per :data:`CHARTS` entry, drawn with
matplotlib's Agg backend (pyplot's global backend is never touched); a chart with nothing to plot
says "no data"."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

CHARTS = (
    ("scanned_per_kind", "Items scanned per kind"),
    ("hits_per_detector", "Hits and reports per detector"),
    ("verdicts_per_detector", "EU Centre verdicts per detector"),
    ("review_times", "Human review times per detector"),
    ("deletions", "Deletions per store"),
)

_COLOURS = {"main": "#1f77b4", "second": "#ff7f0e", "confirmed": "#2ca02c", "unfounded": "#d62728",
            "p90": "#9467bd", "max": "#8c564b"}


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.4), dpi=110)
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    return fig, fig.add_subplot(1, 1, 1)


def _no_data(ax, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=16, color="grey", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("lightgrey")


def _bars(ax, names: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], stacked: bool = False) -> None:
    import numpy as np

    x = np.arange(len(names))
    width = 0.8 if stacked else 0.8 / len(series)
    bottom = np.zeros(len(names))
    for i, (label, values, colour) in enumerate(series):
        values = np.asarray(values, dtype=float)
        offset = 0 if stacked else (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, values, width, bottom=bottom if stacked else None, label=label, color=colour)
        if stacked:
            bottom = bottom + values
    ax.set_xticks(x, names, rotation=15 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    if len(series) > 1:
        ax.legend(fontsize=8)


def _chart_series(summary: Mapping, name: str):
    """``(categories, [(label, values, colour)], y label, stacked)`` of one chart."""
    s = summary
    if name == "scanned_per_kind":
        kinds = sorted(set(s["scanned"]) | set(s["not_covered"]))
        return kinds, [("scanned", [s["scanned"].get(k, 0) for k in kinds], _COLOURS["main"]),
                       ("not covered", [s["not_covered"].get(k, 0) for k in kinds], _COLOURS["second"])], "items", False
    if name == "hits_per_detector":
        dets = sorted(set(s["hit"]) | set(s["reported"]))
        return dets, [("hits", [s["hit"].get(d, 0) for d in dets], _COLOURS["main"]),
                      ("reported", [s["reported"].get(d, 0) for d in dets], _COLOURS["second"])], "items", False
    if name == "verdicts_per_detector":
        rows = s["verdicts"]["by_detector_version"]
        names = [f"{r['detector']}\n{r['detector_version']}" for r in rows]
        return names, [("confirmed", [r["confirmed"] for r in rows], _COLOURS["confirmed"]),
                       ("manifestly unfounded", [r["manifestly_unfounded"] for r in rows], _COLOURS["unfounded"])], \
            "verdicts", True
    if name == "review_times":
        dets = sorted(s["review_seconds"])
        hours = lambda key: [(s["review_seconds"][d][key] or 0) / 3600 for d in dets]  # noqa: E731
        return dets, [("median", hours("median"), _COLOURS["main"]), ("90th percentile", hours("p90"), _COLOURS["p90"]),
                      ("longest", hours("max"), _COLOURS["max"])], "hours", False
    if name == "deletions":
        stores = sorted(s["deleted"])
        return stores, [("deleted", [s["deleted"][k] for k in stores], _COLOURS["main"])], "items", False
    raise KeyError(name)


def write_chart(summary: Mapping, name: str, title: str, path: Path) -> Path:
    """One chart as PNG; a chart that says "no data" when there is nothing to plot."""
    names, series, ylabel, stacked = _chart_series(summary, name)
    fig, ax = _figure()
    if not names or not any(v for _, values, _ in series for v in values):
        _no_data(ax, title)
    else:
        _bars(ax, names, series, stacked)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        if ylabel != "hours":
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def write_charts(summary: Mapping, out_dir: Path) -> dict[str, Path]:
    return {name: write_chart(summary, name, title, out_dir / f"{name}.png") for name, title in CHARTS}
