"""Inline SVG charts drawn on the server: no chart library, no script, and nothing in them
but numbers and escaped labels. Colours come from classes the stylesheet sets."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def _points(values: Sequence[float], width: float, height: float, top: float, pad: float = 1.0) -> str:
    """x,y pairs of `values` scaled into the box, the largest at `top` (0 at the bottom)."""
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    scale = (height - 2 * pad) / top if top else 0.0
    return " ".join(f"{pad + i * step:.1f},{height - pad - v * scale:.1f}" for i, v in enumerate(values))


def sparkline(values: Sequence[float], width: int = 120, height: int = 28, label: str = "") -> Markup:
    """A trend for a table cell; `label` is its accessible name."""
    if not values:
        values = [0]
    line = _points(values, width, height, max(values))
    area = f"1,{height - 1} {line} {width - 1},{height - 1}"
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f'<polygon class="area" points="{area}"/><polyline class="line" points="{line}"/></svg>'
    )


def chart(title: str, series: Sequence[tuple[str, Sequence[float]]], unit: str = "", width: int = 380, height: int = 140) -> Markup:
    """A small line chart of one or more series over the same minutes, with its largest value
    on the axis and the time span under it. Series are styled `s0`, `s1`, ... in order."""
    left, bottom, top_pad = 48, 18, 8
    plot_w, plot_h = width - left - 4, height - bottom - top_pad
    top = max((max(values, default=0) for _, values in series), default=0)
    lines = []
    for index, (name, values) in enumerate(series):
        points = _points(values or [0], plot_w, plot_h, top)
        lines.append(f'<polyline class="s{index}" points="{points}"><title>{escape(name)}</title></polyline>')
    minutes = max((len(values) for _, values in series), default=0)
    legend = "".join(f'<tspan class="k{i}" dx="10">● {escape(name)}</tspan>' for i, (name, _) in enumerate(series))
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f'<text class="title" x="{left}" y="12">{escape(title)}{legend}</text>'
        f'<g transform="translate({left},{top_pad + 6})">'
        f'<rect class="frame" width="{plot_w}" height="{plot_h}"/>'
        f"{''.join(lines)}</g>"
        f'<text class="axis" x="{left - 4}" y="{top_pad + 16}" text-anchor="end">{escape(_number(top, unit))}</text>'
        f'<text class="axis" x="{left - 4}" y="{top_pad + 6 + plot_h}" text-anchor="end">0</text>'
        f'<text class="axis" x="{left}" y="{height - 3}">-{minutes} min</text>'
        f'<text class="axis" x="{width - 4}" y="{height - 3}" text-anchor="end">now</text></svg>'
    )


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return duration(value)
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def duration(seconds: float | None) -> str:
    """Latency as people read it: '3.2 ms', '1.40 s'; '—' when there were no calls."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"
