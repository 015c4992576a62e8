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


HOURS_HEIGHT = 120  # the columns' area, in user units
HOURS_LEFT = 34  # room for the largest value, written at the top of the scale
HOURS_LEGEND = 18


@dataclass(frozen=True)
class Series:
    """One measure counted hour by hour (calls, requests), drawn as one column an hour."""

    label: str
    values: Sequence[int]
    colour: str = "brand"


def hourly_columns(series: Sequence[Series], hours: Sequence[str], title: str) -> Markup:
    """Side-by-side columns an hour (each series its colour), the hours written every third, a legend on top."""
    peak = max((value for s in series for value in s.values), default=0) or 1
    slot = (WIDTH - HOURS_LEFT) / max(len(hours), 1)
    column = max(slot * 0.8 / max(len(series), 1), 1.0)
    base = HOURS_LEGEND + HOURS_HEIGHT
    parts = [_legend(index, s) for index, s in enumerate(series)]
    parts.append(
        Markup('<text x="0" y="{y}">{peak}</text><text x="0" y="{base}">0</text>').format(
            y=HOURS_LEGEND + 10, peak=f"{peak:,}", base=base
        )
    )
    for hour, label in enumerate(hours):
        left = HOURS_LEFT + hour * slot
        for index, s in enumerate(series):
            value = s.values[hour] if hour < len(s.values) else 0
            height = round(HOURS_HEIGHT * value / peak, 1)
            parts.append(
                Markup(
                    '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}">'
                    "<title>{hour} · {label}: {value}</title></rect>"
                ).format(
                    x=round(left + index * column, 1),
                    y=round(base - height, 1),
                    w=round(column, 1),
                    h=height,
                    fill=COLOURS.get(s.colour, BRAND),
                    hour=label,
                    label=s.label,
                    value=f"{value:,}",
                )
            )
        if hour % 3 == 0:
            parts.append(
                Markup('<text x="{x}" y="{y}">{label}</text>').format(x=round(left, 1), y=base + 14, label=label)
            )
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="100%" '
        'role="img" aria-label="{title}"><title>{title}</title>{parts}</svg>'
    ).format(width=WIDTH, height=base + 20, title=title, parts=Markup("").join(parts))


def _legend(index: int, series: Series) -> Markup:
    left = HOURS_LEFT + index * 130
    return Markup(
        '<rect x="{x}" y="2" width="10" height="10" fill="{fill}"></rect><text x="{tx}" y="11">{label}</text>'
    ).format(x=left, tx=left + 14, fill=COLOURS.get(series.colour, BRAND), label=series.label)
