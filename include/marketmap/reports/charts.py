"""Charts for reports: matplotlib (Agg backend) rendered to inline SVG strings.

Every chart has a title, labelled axes with units, and stays legible from 3 bars to 50:
bar charts with many categories turn horizontal and grow in height, labels are
shortened, values are printed next to the bars when there is room. SVG text is kept as
text (``svg.fonttype = none``), so reports stay small, searchable and printable, and the
element ids are salted per chart so several charts can share one HTML page.
"""

from __future__ import annotations

import io
import itertools
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on workers or the api-server

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from marketmap import units  # noqa: E402

TIER_COLORS = {"T1": "#1f4e79", "T2": "#2e86c1", "T3": "#85c1e9", "OUT": "#b3b6b7", "none": "#d5d8dc"}
PALETTE = ["#1f4e79", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d4ac0d"]
MAX_LABEL = 28
_counter = itertools.count()

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.family": "DejaVu Sans",
        "font.size": 10,
        "axes.titlesize": 12,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        # labels are data (industries, company names): "$\\frac{1}{$" is text, never TeX/mathtext
        "text.parse_math": False,
        "text.usetex": False,
    }
)


# --------------------------------------------------------------------------- number formats


def money(v: float) -> str:
    """``$1.2M``-style amount in the report's currency (see :func:`marketmap.units.use_currency`)."""
    return units.money(v)


_nozero = units._nozero


def pct(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else _nozero(f"{v:.0%}")


def count(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else _nozero(f"{v:,.0f}")


FORMATS: dict[str, Callable[[float], str]] = {"money": money, "pct": pct, "count": count}


def _short(label: object) -> str:
    """A category label that fits: wrapped on word boundaries onto at most two lines; only
    what does not fit on two lines is cut, at a word boundary, with an ellipsis."""
    text = "–" if label is None else " ".join(str(label).split())
    if len(text) <= MAX_LABEL:
        return text
    lines = [
        x if len(x) <= MAX_LABEL else x[: MAX_LABEL - 1] + "…"  # one word longer than a line
        for x in textwrap.wrap(text, MAX_LABEL, break_long_words=False)
    ]
    if len(lines) > 2:
        rest = " ".join(lines[1:])
        second = textwrap.shorten(rest, MAX_LABEL, placeholder=" …")
        if second.strip(" …") == "":  # no whole word fits: cut the first one instead
            second = rest[: MAX_LABEL - 1] + "…"
        lines = [lines[0], second]
    return "\n".join(lines)


def _axis(axis, unit: str) -> None:
    """Value-axis ticks written in ``unit``; counts only ever get whole-number ticks."""
    fmt = FORMATS[unit]
    if unit == "count":
        axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axis.set_major_formatter(FuncFormatter(lambda v, _p: fmt(v)))


def _legend_outside(ax) -> None:
    """The legend to the right of the plot: it never covers bars, lines or labels."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML
    # Prefix every id (and reference to one) so several charts can share one HTML page.
    p = f"c{next(_counter)}-"
    return text.replace('id="', f'id="{p}').replace("url(#", f"url(#{p}").replace('href="#', f'href="#{p}')


def _colors(labels: Sequence[object], color: str | None) -> list[str]:
    if color:
        return [color] * len(labels)
    return [TIER_COLORS.get(str(lab), PALETTE[0]) for lab in labels]


def _figure(n: int, horizontal: bool, labels: Sequence[str] = ()) -> tuple:
    if horizontal:  # two-line labels need a taller row
        row = 0.42 if any("\n" in str(x) for x in labels) else 0.32
        return plt.subplots(figsize=(8, max(2.6, row * n + 1.3)))
    return plt.subplots(figsize=(max(5.5, 0.55 * n + 2), 3.6))


# --------------------------------------------------------------------------- charts


def bar(
    labels: Sequence[object],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    unit: str = "count",
    color: str | None = None,
    horizontal: bool | None = None,
    reference: float | None = None,
    reference_label: str | None = None,
) -> str:
    """One bar per label; horizontal when there are many or long labels (or ``horizontal=True``).

    ``xlabel`` and ``ylabel`` name the axes as drawn; when the function itself turns a
    vertical chart horizontal, it swaps them so the category label stays with the categories.

    Args:
        unit: ``count``, ``money`` or ``pct``: how the value axis and bar labels are written.
        reference: draws a dashed line at this value (a target or an average).
    """
    labels = [_short(x) for x in labels]
    vals = np.asarray(
        [0 if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values], float
    )
    if horizontal is None:  # many bars, or labels too long to sit side by side under vertical bars
        horizontal = len(labels) > 8 or sum(len(str(x)) for x in labels) > 48
        if horizontal:  # the caller named the axes for vertical bars: categories go on y now
            xlabel, ylabel = ylabel, xlabel
    fmt = FORMATS[unit]
    fig, ax = _figure(len(labels), horizontal, labels)
    colors = _colors(labels, color)
    if horizontal:
        pos = np.arange(len(labels))[::-1]  # first label on top, reading order
        bars = ax.barh(pos, vals, color=colors)
        ax.set_yticks(pos, labels)
        _axis(ax.xaxis, unit)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if reference is not None:
            ax.axvline(reference, color="#c0392b", linestyle="--", linewidth=1.2, label=reference_label)
    else:
        bars = ax.bar(np.arange(len(labels)), vals, color=colors)
        ax.set_xticks(
            np.arange(len(labels)),
            labels,
            rotation=30 if len(labels) > 5 else 0,
            ha="right" if len(labels) > 5 else "center",
        )
        _axis(ax.yaxis, unit)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if reference is not None:
            ax.axhline(reference, color="#c0392b", linestyle="--", linewidth=1.2, label=reference_label)
    if len(labels) <= 30:
        ax.bar_label(bars, labels=[fmt(v) for v in vals], padding=2, fontsize=8)
    if reference is not None and reference_label:
        _legend_outside(ax)
    ax.set_title(title)
    if not len(labels):
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return _svg(fig)


def stacked_bar(
    categories: Sequence[object],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    unit: str = "count",
    horizontal: bool | None = None,
) -> str:
    """Bars per category, stacked by series (e.g. accounts per rep stacked by tier)."""
    cats = [_short(c) for c in categories]
    horizontal = len(cats) > 8 if horizontal is None else horizontal
    fig, ax = _figure(len(cats), horizontal, cats)
    pos = np.arange(len(cats))[::-1] if horizontal else np.arange(len(cats))
    base = np.zeros(len(cats))
    for i, (name, vals) in enumerate(series.items()):
        v = np.nan_to_num(np.asarray(vals, dtype=float))
        color = TIER_COLORS.get(name, PALETTE[i % len(PALETTE)])
        if horizontal:
            ax.barh(pos, v, left=base, color=color, label=name)
        else:
            ax.bar(pos, v, bottom=base, color=color, label=name)
        base = base + v
    if horizontal:
        ax.set_yticks(pos, cats)
        _axis(ax.xaxis, unit)
        ax.grid(axis="y", visible=False)
    else:
        ax.set_xticks(
            pos, cats, rotation=30 if len(cats) > 5 else 0, ha="right" if len(cats) > 5 else "center"
        )
        _axis(ax.yaxis, unit)
        ax.grid(axis="x", visible=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax)  # never covers bars or the axis label, whatever the number of bars
    return _svg(fig)


def grouped_bar(
    categories: Sequence[object],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    unit: str = "count",
) -> str:
    """Side-by-side bars per category (e.g. current vs candidate rubric per tier)."""
    cats = [_short(c) for c in categories]
    fmt = FORMATS[unit]
    k = max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(5.5, 0.5 * len(cats) * k + 2), 3.6))
    width = 0.8 / k
    x = np.arange(len(cats))
    for i, (name, vals) in enumerate(series.items()):
        v = np.nan_to_num(np.asarray(vals, dtype=float))
        bars = ax.bar(x + (i - (k - 1) / 2) * width, v, width, label=name, color=PALETTE[i % len(PALETTE)])
        if len(cats) * k <= 24:
            ax.bar_label(bars, labels=[fmt(val) for val in v], padding=2, fontsize=7)
    ax.set_xticks(x, cats)
    _axis(ax.yaxis, unit)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax)
    return _svg(fig)


def heatmap(
    matrix: Sequence[Sequence[float]],
    rows: Sequence[object],
    cols: Sequence[object],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    unit: str = "count",
    value_label: str = "accounts",
) -> str:
    """A labelled matrix (e.g. the tier-move matrix: current tier x candidate tier, in accounts)."""
    m = np.asarray(matrix, dtype=float)
    fmt = FORMATS[unit]
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2.5, 0.8 * len(rows) + 1.8))
    im = ax.imshow(m, cmap="Blues", aspect="auto")
    ax.set_xticks(np.arange(len(cols)), [_short(c) for c in cols])
    ax.set_yticks(np.arange(len(rows)), [_short(r) for r in rows])
    ax.grid(False)
    top = m.max() if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, fmt(m[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if top and m[i, j] > top * 0.6 else "black")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=value_label)
    return _svg(fig)


def scatter(
    x: Sequence[float],
    y: Sequence[float],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    unit: str = "money",
    diagonal: bool = True,
) -> str:
    """Points with an optional y = x line (e.g. estimated vs actual ARR)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter(xs, ys, s=18, alpha=0.7, color=PALETTE[0])
    if diagonal and len(xs):
        hi = float(np.nanmax(np.concatenate([xs, ys])))
        ax.plot([0, hi], [0, hi], linestyle="--", color="#c0392b", linewidth=1, label="estimate = actual")
        _legend_outside(ax)
    _axis(ax.xaxis, unit)
    _axis(ax.yaxis, unit)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _svg(fig)


def lines(
    x: Sequence[object],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    unit: str = "pct",
) -> str:
    """One line per series over ``x`` (e.g. win rate by tier per quarter)."""
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(x) + 2), 3.6))
    pos = np.arange(len(x))
    for i, (name, vals) in enumerate(series.items()):
        ax.plot(pos, np.asarray(vals, dtype=float), marker="o", label=name,
                color=TIER_COLORS.get(name, PALETTE[i % len(PALETTE)]))  # fmt: skip
    ax.set_xticks(pos, [_short(v) for v in x], rotation=30 if len(x) > 6 else 0)
    _axis(ax.yaxis, unit)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend_outside(ax)
    return _svg(fig)
