"""Small bar charts drawn as SVG on the server: no script, no CDN, and no style attribute
(the console's Content-Security-Policy allows only its own stylesheet), so colours and sizes
are SVG presentation attributes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 400  # user units; about the width of a third of the console at 1366 px, so text keeps its size
ROW = 22
BAR = 14
LABEL_WIDTH = 130
VALUE_WIDTH = 80
LABEL_CHARS = 20
BRAND = "#0b5cab"
COLOURS = {"brand": BRAND, "ok": "#1b7f3b", "warn": "#b45f06", "bad": "#b3261e", "muted": "#8a96a3"}


@dataclass(frozen=True)
class Bar:
    """One labelled value; `note` (such as a share, "40.0%") is written after the value."""

    label: str
    value: int
    colour: str = "brand"
    note: str = ""


def horizontal_bars(bars: Sequence[Bar], title: str) -> Markup:
    """One row a bar, the largest spanning the chart, each with its label and value beside it."""
    peak = max((bar.value for bar in bars), default=0) or 1
    height = ROW * len(bars) + 4
    rows = Markup("").join(_row(index, bar, peak) for index, bar in enumerate(bars))
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="{title}"><title>{title}</title>{rows}</svg>'
    ).format(width=WIDTH, height=height, title=title, rows=rows)


def _row(index: int, bar: Bar, peak: int) -> Markup:
    """A bar's label, its rectangle scaled to the largest value, and the value; hovering shows it all."""
    top = index * ROW
    length = round((WIDTH - LABEL_WIDTH - VALUE_WIDTH) * bar.value / peak, 1)
    value = f"{bar.value:,}" + (f" · {bar.note}" if bar.note else "")
    return Markup(
        "<g><title>{label}: {value}</title>"
        '<text x="0" y="{text_y}">{short}</text>'
        '<rect x="{left}" y="{bar_y}" width="{length}" height="{bar}" rx="2" fill="{fill}"></rect>'
        '<text x="{value_x}" y="{text_y}">{value}</text></g>'
    ).format(
        label=bar.label,
        value=value,
        short=_shorten(bar.label),
        text_y=top + 15,
        left=LABEL_WIDTH,
        bar_y=top + 4,
        length=length,
        bar=BAR,
        fill=COLOURS.get(bar.colour, BRAND),
        value_x=LABEL_WIDTH + length + 4,
    )


def _shorten(label: str) -> str:
    """A long district name is cut to fit the label column; the bar's tooltip keeps it whole."""
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
