"""Server-rendered charts: SVG line charts of per-epoch curves and heat-map colours for table cells.

No JavaScript and nothing from a CDN: the SVG is part of the page, so charts show in screenshots, print and work
with scripts off."""
import math

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

register = template.Library()

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def series_color(index):
    return PALETTE[index % len(PALETTE)]


def _ticks(lo, hi, n=4):
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(value):
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


@register.simple_tag
def line_chart(series, title="", width=420, height=220, y_min=None, y_max=None):
    """An SVG line chart. `series`: [{"name": str, "points": [(x, y), ...]}, ...]; points whose y is None are
    skipped; "dashed": True draws it dashed. Colours come from the palette by "group" (default: the position), so
    series of one group (a run's train and validation curves) share a colour and one legend entry."""
    pts = [(x, y) for s in series for x, y in s["points"] if y is not None and math.isfinite(y)]
    if not pts:
        return format_html('<p class="chart-empty">{}: no data yet</p>', title)
    # The title and the legend share a band above the plot, so no line is ever drawn under a label.
    left, right, top, bottom = 46, 10, 34, 30
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    y_lo = min(ys) if y_min is None else y_min
    y_hi = max(ys) if y_max is None else y_max
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y):
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">']
    if title:
        out.append(f'<text x="{left}" y="13" class="chart-title">{escape(title)}</text>')
    for t in _ticks(y_lo, y_hi):
        y = sy(t)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="chart-grid"/>')
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="chart-tick" text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x_lo, x_hi, 6):
        if float(t).is_integer() or x_hi - x_lo < 6:
            x = sx(t)
            out.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" class="chart-tick" '
                       f'text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 3}" class="chart-tick" '
               f'text-anchor="middle">epoch</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="chart-frame"/>')
    legend_x, named = left, set()
    for i, s in enumerate(series):
        color = series_color(s.get("group", i))
        line = [(x, y) for x, y in s["points"] if y is not None and math.isfinite(y)]
        if not line:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        dash = ' stroke-dasharray="4 3"' if s.get("dashed") else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"{dash}>'
                   f'<title>{escape(s["name"])}</title></polyline>')
        if len(line) == 1:
            out.append(f'<circle cx="{sx(line[0][0]):.1f}" cy="{sy(line[0][1]):.1f}" r="2.5" fill="{color}"/>')
        if s["name"] in named:  # e.g. a run's train and validation curves: one colour, one legend entry
            continue
        named.add(s["name"])
        out.append(f'<rect x="{legend_x}" y="20" width="9" height="9" fill="{color}"/>'
                   f'<text x="{legend_x + 12}" y="28" class="chart-legend">{escape(s["name"])}</text>')
        legend_x += 12 + 6 * len(s["name"]) + 10
    out.append("</svg>")
    return mark_safe("".join(out))


@register.simple_tag
def heat_style(value, total):
    """Inline style of a heat-map cell: the darker, the larger value / total (a row's share)."""
    share = (value / total) if total else 0.0
    share = min(max(share, 0.0), 1.0)
    # White to the site's dark blue; text turns white once the background is dark enough to need it.
    r, g, b = (round(255 + (c - 255) * share) for c in (35, 88, 160))
    text = "#fff" if share > 0.45 else "#1d1d1f"
    return f"background:rgb({r},{g},{b});color:{text}"


def _n(value):
    """A count, or a report figure's count ({"n": ...})."""
    return value["n"] if isinstance(value, dict) else (value or 0)


# Before and after cleaning: a light and a dark blue, told apart by lightness in grey too.
BEFORE, AFTER = "#9cc3e4", "#23589f"


@register.simple_tag
def class_bars(classes, title="Images per class, before and after cleaning", width=560):
    """An SVG bar chart of images per class before (as imported) and after cleaning (current labels, excluded left
    out): two bars per class. `classes`: [{"name", "before", "after"}], counts or report figures. Drawn with
    presentation attributes only (no style sheet, nothing the content security policy blocks); hidden from screen
    readers, which read the table beside it."""
    rows = [(c["name"], _n(c["before"]), _n(c["after"])) for c in classes]
    top = max([b for _, b, _ in rows] + [a for _, _, a in rows] + [1])
    left, right, head, bar, gap = 70, 50, 24, 9, 8
    plot = width - left - right
    height = head + len(rows) * (2 * bar + gap) + 6
    out = [f'<svg class="chart class-bars" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" aria-hidden="true" font-family="sans-serif" font-size="11">',
           f'<title>{escape(title)}</title>',
           f'<rect x="{left}" y="4" width="10" height="10" fill="{BEFORE}"/>'
           f'<text x="{left + 14}" y="13" fill="#1d1d1f">before (as imported)</text>'
           f'<rect x="{left + 150}" y="4" width="10" height="10" fill="{AFTER}"/>'
           f'<text x="{left + 164}" y="13" fill="#1d1d1f">after (excluded left out)</text>']
    for i, (name, before, after) in enumerate(rows):
        y = head + i * (2 * bar + gap)
        out.append(f'<text x="{left - 6}" y="{y + bar + 4}" text-anchor="end" fill="#1d1d1f">{escape(name)}</text>')
        for j, (value, color) in enumerate(((before, BEFORE), (after, AFTER))):
            w = plot * value / top
            yy = y + j * bar
            out.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar - 1}" fill="{color}" '
                       f'data-class="{escape(name)}" data-value="{value}"><title>{escape(name)} '
                       f'{"before" if j == 0 else "after"}: {value}</title></rect>'
                       f'<text x="{left + w + 3:.1f}" y="{yy + bar - 1}" fill="#1d1d1f" font-size="9">{value}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))


def _heat_fill(share):
    share = min(max(share, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * share) for c in (35, 88, 160))
    return f"rgb({r},{g},{b})", ("#fff" if share > 0.45 else "#1d1d1f")


@register.simple_tag
def heat_map(matrix, title, row_axis="given", column_axis="reviewed"):
    """An SVG heat map of a confusion matrix: rows {"name", "cells": [{"column", "n", "url"?}], "total"}, each
    cell's shade its share of the row. A cell with a `url` links to its images. Hidden from screen readers, which
    read the table beside it (its links are the same, and out of the tab order here)."""
    columns = matrix["columns"]
    rows = matrix["rows"]
    cell, left, top = 34, 74, 70
    width, height = left + cell * len(columns) + 44, top + cell * len(rows) + 4  # room for the last rotated name
    out = [f'<svg class="chart heat-map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" aria-hidden="true" font-family="sans-serif" font-size="10">',
           f'<title>{escape(title)}</title>',
           f'<text x="2" y="12" fill="#1d1d1f" font-size="11">rows: {escape(row_axis)}; columns: '
           f'{escape(column_axis)}</text>']
    for j, name in enumerate(columns):
        x = left + j * cell + cell / 2
        out.append(f'<text transform="translate({x:.1f},{top - 4}) rotate(-50)" fill="#1d1d1f">{escape(name)}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell
        out.append(f'<text x="{left - 4}" y="{y + cell / 2 + 4:.1f}" text-anchor="end" fill="#1d1d1f">'
                   f'{escape(row["name"])}</text>')
        for j, c in enumerate(row["cells"]):
            x = left + j * cell
            fill, ink = _heat_fill(c["n"] / row["total"] if row["total"] else 0.0)
            tip = f'{row_axis} {row["name"]}, {column_axis} {c["column"]}: {c["n"]}'
            body = (f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}" stroke="#ddd"/>'
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" fill="{ink}">'
                    f'{c["n"] if c["n"] else ""}</text><title>{escape(tip)}</title>')
            if c.get("url") and c["n"]:
                out.append(f'<a href="{escape(c["url"])}" tabindex="-1" class="heat-cell">{body}</a>')
            else:
                out.append(f"<g>{body}</g>")
    out.append("</svg>")
    return mark_safe("".join(out))
