"""Inline SVG charts for the quarterly report: no JavaScript, no external resources.

Every chart is an ``<svg role="img">`` with a ``<title>`` (what it shows) and a
``<desc>``, drawn in a fixed ``viewBox`` and scaled by CSS, so it renders the same on
screen, in print and in a PDF. Every mark carries ``data-*`` attributes with its exact
value (tests and screen readers read those, not pixel positions) and a ``<title>``
tooltip. Colours are the Okabe-Ito palette (readable with colour-vision deficiencies);
series are also told apart by shape or dash, never by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe-Ito
VERMILLION, BLUE, GREEN, ORANGE, SKY, PURPLE, YELLOW, GREY = (
    "#D55E00", "#0072B2", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#777777")
SERIES_COLOURS = (BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, GREY)
WIDTH, HEIGHT = 720, 280
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 16, 52


def _a(value: object) -> str:
    """An attribute value, escaped."""
    return escape("" if value is None else str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(maximum: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (1, 2, 2.5, 5 x 10^k steps)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < maximum - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


FONT = 'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="11" fill="#333333"'
GRID, AXIS, MUTED, HIGHLIGHT = "#e3e6ea", "#555555", "#5b6470", "#eaf3fa"


def _svg_open(kind: str, title: str, desc: str, width: int = WIDTH, height: int = HEIGHT,
              natural: bool = False) -> list[str]:
    # Presentation attributes rather than CSS, so every renderer (browsers, WeasyPrint) draws
    # the same; ``natural`` charts are never scaled above their own size.
    style = f' style="max-width: {width}px"' if natural else ""
    return [
        f'<svg class="chart chart-{_a(kind)}{" natural" if natural else ""}" data-chart="{_a(kind)}" role="img" '
        f'viewBox="0 0 {width} {height}" '
        f'preserveAspectRatio="xMidYMid meet" aria-label="{_a(title)}" {FONT}{style}>',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(desc)}</desc>",
    ]


def _y_axis(ticks: list[float], y_of, label_of, plot_right: float) -> list[str]:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{plot_right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(label_of(tick))}</text>")
    return parts


def _legend(items: Sequence[tuple[str, str, str]], x: float, y: float) -> list[str]:
    """items: (label, colour, shape 'square' | 'line' | 'dash')."""
    parts = ['<g class="legend">']
    for label, colour, shape in items:
        if shape == "square":
            parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="11" height="11" fill="{colour}"/>')
        else:
            dash = ' stroke-dasharray="5 3"' if shape == "dash" else ""
            parts.append(f'<line x1="{x:.1f}" x2="{x + 16:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" '
                         f'stroke="{colour}" stroke-width="2.5"{dash}/>')
        parts.append(f'<text class="legend-label" x="{x + 20:.1f}" y="{y:.1f}">{escape(label)}</text>')
        x += 28 + 7 * len(label)
    parts.append("</g>")
    return parts


# ----------------------------------------------------------------------------- bars
@dataclass(frozen=True)
class Series:
    key: str
    label: str
    colour: str
    values: Sequence[float | None]


def grouped_bars(kind: str, title: str, desc: str, categories: Sequence[str], series: Sequence[Series],
                 highlight: int | None = None, category_keys: Sequence[str] | None = None) -> str:
    """Bars per category, one per series; ``highlight`` marks one category (the report's quarter)."""
    category_keys = category_keys or categories
    plot_right, plot_bottom = WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(max(values, default=0))
    top = ticks[-1]

    def y_of(v: float) -> float:
        return plot_bottom - (plot_bottom - MARGIN_TOP) * (v / top)

    parts = _svg_open(kind, title, desc)
    parts += _y_axis(ticks, y_of, lambda t: f"{t:,.0f}" if t == int(t) else _num(t), plot_right)
    n = max(len(categories), 1)
    slot = (plot_right - MARGIN_LEFT) / n
    bar = min(28.0, slot * 0.8 / max(len(series), 1))
    for i, (category, key) in enumerate(zip(categories, category_keys, strict=True)):
        x0 = MARGIN_LEFT + slot * i
        if i == highlight:
            parts.append(f'<rect class="highlight" x="{x0:.1f}" y="{MARGIN_TOP}" width="{slot:.1f}" '
                         f'height="{plot_bottom - MARGIN_TOP:.1f}" fill="{HIGHLIGHT}"/>')
        group_left = x0 + (slot - bar * len(series)) / 2
        for j, s in enumerate(series):
            value = s.values[i]
            x = group_left + bar * j
            if value is None:
                parts.append(f'<text class="na" x="{x + bar / 2:.1f}" y="{plot_bottom - 4:.1f}" '
                             f'text-anchor="middle">–</text>')
                continue
            y = y_of(value)
            parts.append(
                f'<rect class="bar" data-series="{_a(s.key)}" data-category="{_a(key)}" data-value="{_a(value)}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{max(plot_bottom - y, 0):.1f}" '
                f'fill="{s.colour}"><title>{escape(f"{s.label}, {category}: {value:,}")}</title></rect>')
        weight = ' font-weight="700"' if i == highlight else ""
        parts.append(f'<text class="category" x="{x0 + slot / 2:.1f}" y="{plot_bottom + 16:.1f}" '
                     f'text-anchor="middle"{weight}>{escape(category)}</text>')
    parts.append(f'<line class="axis" x1="{MARGIN_LEFT}" x2="{plot_right}" y1="{plot_bottom}" y2="{plot_bottom}" '
                 f'stroke="{AXIS}" stroke-width="1"/>')
    parts += _legend([(s.label, s.colour, "square") for s in series], MARGIN_LEFT, HEIGHT - 12)
    parts.append("</svg>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- lines
@dataclass(frozen=True)
class Line:
    key: str
    label: str
    colour: str
    points: Sequence[tuple[float, float | None, bool]]   # (x, y or None for a gap, final?)
    dashed: bool = False


def line_chart(kind: str, title: str, desc: str, lines: Sequence[Line], x_ticks: Sequence[tuple[float, str]],
               y_max: float | None = None, y_format=lambda v: f"{v:.0%}", highlight_x: float | None = None,
               point_keys: Sequence[str] | None = None) -> str:
    """Lines over a numeric x axis; ``None`` y values leave a gap; not-final points are hollow
    and the segment leading to them dashed (the figure can still change)."""
    plot_right, plot_bottom = WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM
    xs = [x for x, _ in x_ticks] or [0.0, 1.0]
    x_min, x_max = min(xs), max(xs)
    span = (x_max - x_min) or 1.0
    values = [y for line in lines for _, y, _ in line.points if y is not None]
    top = y_max if y_max is not None else nice_ticks(max(values, default=0))[-1]
    top = top or 1.0
    ticks = [top * k / 4 for k in range(5)]
    inset = 18.0

    def x_of(x: float) -> float:
        return MARGIN_LEFT + inset + (plot_right - MARGIN_LEFT - 2 * inset) * (x - x_min) / span

    def y_of(v: float) -> float:
        return plot_bottom - (plot_bottom - MARGIN_TOP) * (v / top)

    parts = _svg_open(kind, title, desc)
    parts += _y_axis(ticks, y_of, y_format, plot_right)
    if highlight_x is not None:
        hx = x_of(highlight_x)
        parts.append(f'<rect class="highlight" x="{hx - 14:.1f}" y="{MARGIN_TOP}" width="28" '
                     f'height="{plot_bottom - MARGIN_TOP}" fill="{HIGHLIGHT}"/>')
    for x, label in x_ticks:
        weight = ' font-weight="700"' if highlight_x is not None and x == highlight_x else ""
        parts.append(f'<text class="category" x="{x_of(x):.1f}" y="{plot_bottom + 16:.1f}" '
                     f'text-anchor="middle"{weight}>{escape(label)}</text>')
    for line in lines:
        parts.append(f'<g class="series" data-series="{_a(line.key)}">')
        previous: tuple[float, float, bool] | None = None
        for x, y, final in line.points:
            if y is None:
                previous = None
                continue
            px, py = x_of(x), y_of(y)
            if previous is not None:
                dashed = line.dashed or not final
                dash = ' stroke-dasharray="5 4"' if dashed else ""
                parts.append(f'<line class="segment" x1="{previous[0]:.1f}" y1="{previous[1]:.1f}" '
                             f'x2="{px:.1f}" y2="{py:.1f}" stroke="{line.colour}" stroke-width="2.5"{dash}/>')
            previous = (px, py, final)
        for index, (x, y, final) in enumerate(line.points):
            if y is None:
                continue
            fill = line.colour if final else "#ffffff"
            key = point_keys[index] if point_keys and index < len(point_keys) else _num(x)
            label = next((lbl for tx, lbl in x_ticks if tx == x), _num(x))
            note = "" if final else " (not final yet)"
            parts.append(
                f'<circle class="point" data-series="{_a(line.key)}" data-x="{_a(key)}" data-value="{_a(y)}" '
                f'data-final="{str(final).lower()}" cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="4" '
                f'fill="{fill}" stroke="{line.colour}" stroke-width="2">'
                f"<title>{escape(f'{line.label}, {label}: {y_format(y)}{note}')}</title></circle>")
        parts.append("</g>")
    parts.append(f'<line class="axis" x1="{MARGIN_LEFT}" x2="{plot_right}" y1="{plot_bottom}" y2="{plot_bottom}" '
                 f'stroke="{AXIS}" stroke-width="1"/>')
    parts += _legend([(line.label, line.colour, "dash" if line.dashed else "line") for line in lines],
                     MARGIN_LEFT, HEIGHT - 12)
    parts.append("</svg>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- heatmap
def _blend(share: float) -> str:
    """White to the report's blue, by share in [0, 1]."""
    share = min(max(share, 0.0), 1.0)
    low, high = (255, 255, 255), (0, 114, 178)
    rgb = [round(lo + (hi - lo) * share) for lo, hi in zip(low, high, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(kind: str, title: str, desc: str, classes: Sequence[str], cells: dict[tuple[str, str], int],
            row_label: str = "from (previous quarter end)", column_label: str = "to (this quarter end)") -> str:
    """A from x to matrix of client counts; the diagonal (no move) is outlined (say so in the caption)."""
    n = len(classes)
    cell = 38
    left, top = 96, 40
    width = left + cell * n + 16
    height = top + cell * n + 8
    biggest = max(cells.values(), default=0)
    parts = _svg_open(kind, title, desc, width, height, natural=True)
    parts.append(f'<text class="axis-title" x="{left + cell * n / 2:.1f}" y="14" text-anchor="middle" '
                 f'fill="{MUTED}">{escape(column_label)}</text>')
    parts.append(f'<text class="axis-title" x="14" y="{top + cell * n / 2:.1f}" text-anchor="middle" fill="{MUTED}" '
                 f'transform="rotate(-90 14 {top + cell * n / 2:.1f})">{escape(row_label)}</text>')
    for j, name in enumerate(classes):
        parts.append(f'<text class="category" x="{left + cell * j + cell / 2}" y="{top - 8}" '
                     f'text-anchor="middle">{escape(name)}</text>')
    for i, source in enumerate(classes):
        y = top + cell * i
        parts.append(f'<text class="category" x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end">'
                     f"{escape(source)}</text>")
        for j, target in enumerate(classes):
            x = left + cell * j
            count = cells.get((source, target), 0)
            share = count / biggest if biggest else 0.0
            fill = _blend(0.12 + 0.88 * share) if count else "#f4f4f4"
            parts.append(
                f'<rect class="cell" data-from="{_a(source)}" data-to="{_a(target)}" data-clients="{count}" '
                f'x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#ffffff" stroke-width="1">'
                f"<title>{escape(f'{source} → {target}: {count:,} clients')}</title></rect>")
            if count:
                colour = "#ffffff" if share > 0.55 else "#111111"
                parts.append(f'<text class="cell-label" x="{x + cell / 2}" y="{y + cell / 2 + 4}" '
                             f'text-anchor="middle" font-weight="700" fill="{colour}">{count:,}</text>')
    for k in range(n):  # the diagonal (kept their segment), drawn over the cells
        parts.append(f'<rect class="diagonal" x="{left + cell * k + 1}" y="{top + cell * k + 1}" width="{cell - 2}" '
                     f'height="{cell - 2}" fill="none" stroke="#222222" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "\n".join(parts)
