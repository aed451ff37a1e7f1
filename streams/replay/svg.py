"""Small inline-SVG charts for the HTML report: axes with ticks, lines, stacked bars, a legend.

Hand-drawn so the report is one offline file with no plotting dependency. Every piece of
text is escaped here, so callers may pass user-supplied names as series labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

DAY = 86400.0
# Colour-blind-friendly categorical palette; the report maps fixed names onto it.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")

_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 20, 34, 46
_CHAR_WIDTH = 7.0  # a generous width of one character at the charts' font size (11)


@dataclass(frozen=True, slots=True)
class Axis:
    lo: float
    hi: float
    ticks: list[tuple[float, str]]
    label: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _number(v: float, step: float) -> str:
    if step >= 1:
        return f"{v:,.0f}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{v:.{decimals}f}"


def value_axis(lo: float, hi: float, label: str, target: int = 5,
               fmt: Callable[[float], str] | None = None) -> Axis:
    """A linear axis widened to round tick values."""
    if hi <= lo:
        hi = lo + 1.0
    step = _nice_step(hi - lo, target)
    lo = math.floor(lo / step + 1e-9) * step
    hi = math.ceil(hi / step - 1e-9) * step
    n = round((hi - lo) / step)
    values = [lo + i * step for i in range(n + 1)]
    return Axis(lo, hi, [(v, fmt(v) if fmt else _number(v, step)) for v in values], label)


def day_axis(lo: float, hi: float, label: str = "day (UTC)", target: int = 7) -> Axis:
    """A time axis in epoch seconds with ticks on whole days, labelled by date."""
    if hi <= lo:
        lo, hi = lo - DAY, hi + DAY
    span_days = (hi - lo) / DAY
    step_days = next((s for s in (1, 2, 7, 14, 28, 56, 91, 182, 364, 728)
                      if span_days / s <= target), math.ceil(span_days / target))
    first = math.ceil(lo / DAY) * DAY
    ticks = []
    t = first
    while t <= hi + 1e-6:
        ticks.append((t, datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")))
        t += step_days * DAY
    return Axis(lo, hi, ticks, label)


def _f(v: float) -> str:
    return f"{v:.1f}"


class _Frame:
    """Maps data coordinates onto the plot area."""

    def __init__(self, x: Axis, y: Axis, width: int, height: int) -> None:
        self.x, self.y, self.width, self.height = x, y, width, height
        self.x0, self.x1 = _LEFT, width - _RIGHT
        self.y0, self.y1 = height - _BOTTOM, _TOP  # y0 is the bottom edge in pixels

    def px(self, v: float) -> float:
        return self.x0 + (v - self.x.lo) / (self.x.hi - self.x.lo) * (self.x1 - self.x0)

    def py(self, v: float) -> float:
        return self.y0 - (v - self.y.lo) / (self.y.hi - self.y.lo) * (self.y0 - self.y1)

    def axes(self) -> list[str]:
        out = []
        for v, text in self.y.ticks:
            y = _f(self.py(v))
            out.append(f'<line x1="{self.x0}" y1="{y}" x2="{self.x1}" y2="{y}" '
                       'stroke="#e3e3e3"/>')
            out.append(f'<text x="{self.x0 - 6}" y="{y}" text-anchor="end" '
                       f'dominant-baseline="middle">{escape(text)}</text>')
        for v, text in self.x.ticks:
            at = self.px(v)
            x = _f(at)
            out.append(f'<line x1="{x}" y1="{self.y0}" x2="{x}" y2="{self.y0 + 4}" '
                       'stroke="#555"/>')
            # a label centred on a tick near the right edge would run off the picture
            anchor = "end" if at + len(text) * _CHAR_WIDTH / 2 > self.width else "middle"
            out.append(f'<text x="{x}" y="{self.y0 + 16}" text-anchor="{anchor}">'
                       f'{escape(text)}</text>')
        out.append(f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" '
                   'stroke="#555"/>')
        out.append(f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x0}" y2="{self.y1}" '
                   'stroke="#555"/>')
        mid_x, mid_y = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        out.append(f'<text x="{_f(mid_x)}" y="{self.height - 8}" text-anchor="middle">'
                   f'{escape(self.x.label)}</text>')
        out.append(f'<text x="14" y="{_f(mid_y)}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {_f(mid_y)})">{escape(self.y.label)}</text>')
        return out


def _legend(series: Sequence[Series], width: int) -> list[str]:
    out, x = [], _LEFT
    for s in series:
        if x > width - 80:  # out of room: the tables beside each chart carry the rest
            break
        out.append(f'<rect x="{x}" y="10" width="12" height="12" fill="{s.color}"/>')
        out.append(f'<text x="{x + 16}" y="20">{escape(s.name)}</text>')
        x += 28 + 7 * len(s.name)
    return out


def _svg(title: str, width: int, height: int, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" font-family="sans-serif" '
            f'font-size="11"><title>{escape(title)}</title>{"".join(body)}</svg>')


def line_chart(title: str, x: Axis, y: Axis, series: Sequence[Series], *,
               width: int = 760, height: int = 300, markers: bool = False,
               diagonal: bool = False) -> str:
    """Lines (and optional point markers); ``diagonal`` draws y = x, for calibration."""
    fr = _Frame(x, y, width, height)
    body = fr.axes()
    if diagonal:
        lo, hi = max(x.lo, y.lo), min(x.hi, y.hi)
        body.append(f'<line x1="{_f(fr.px(lo))}" y1="{_f(fr.py(lo))}" x2="{_f(fr.px(hi))}" '
                    f'y2="{_f(fr.py(hi))}" stroke="#999" stroke-dasharray="4 4"/>')
    for s in series:
        pts = " ".join(f"{_f(fr.px(a))},{_f(fr.py(b))}" for a, b in s.points)
        body.append(f'<polyline points="{pts}" fill="none" stroke="{s.color}" '
                    'stroke-width="2"/>')
        if markers:
            body += [f'<circle cx="{_f(fr.px(a))}" cy="{_f(fr.py(b))}" r="3.5" '
                     f'fill="{s.color}"/>' for a, b in s.points]
    keys = [*series, Series("perfect calibration", [], "#999")] if diagonal else series
    return _svg(title, width, height, body + _legend(keys, width))


def stacked_bar_chart(title: str, x: Axis, y: Axis, series: Sequence[Series], bar_width: float,
                      *, width: int = 760, height: int = 300) -> str:
    """Bars centred on each x, the series stacked in the order given."""
    fr = _Frame(x, y, width, height)
    body = fr.axes()
    base: dict[float, float] = {}
    half = max((fr.px(x.lo + bar_width) - fr.px(x.lo)) * 0.45, 0.5)
    for s in series:
        for a, b in s.points:
            if b <= 0:
                continue
            bottom = base.get(a, 0.0)
            top = bottom + b
            base[a] = top
            y_top = fr.py(top)
            body.append(f'<rect x="{_f(fr.px(a) - half)}" y="{_f(y_top)}" '
                        f'width="{_f(2 * half)}" height="{_f(fr.py(bottom) - y_top)}" '
                        f'fill="{s.color}"/>')
    return _svg(title, width, height, body + _legend(series, width))
