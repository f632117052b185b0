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
