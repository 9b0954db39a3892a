"""One trial as an SVG picture: every repeat per side with its mean, and the interval of the gain.

Written by hand (SVG is text) so that patchq needs no plotting library. Left: the repeats of the baseline and the
candidate as dots on a shared axis, each side's mean as a bar, failed runs as crosses on the axis floor. Right: the
gain with its 95% interval against zero and the promote threshold, coloured by the verdict.
"""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 360
VERDICT_COLOUR = {"promote": "#1a7f37", "reject": "#cf222e", "neutral": "#9a6700", "still": "#1a7f37",
                  "differs": "#cf222e"}
SIDE_COLOUR = {"baseline": "#57606a", "candidate": "#0969da"}


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * step:
            step *= mult
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _range(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


def _text(x: float, y: float, body: str, *, size: int = 12, anchor: str = "start", colour: str = "#24292f",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{colour}" '
            f'font-weight="{weight}">{escape(body)}</text>')


def render(doc: dict[str, Any]) -> str:
    """The SVG text for one results document."""
    st = doc.get("statistics") or {}
    unit = doc.get("command", {}).get("unit") or ""
    verdict = doc.get("verdict", "")
    colour = VERDICT_COLOUR.get(verdict, "#24292f")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    title = f"{doc.get('stack', '')}: {', '.join(doc.get('candidate') or []) or doc.get('kind', '')}"
    parts.append(_text(16, 24, title, size=15, weight="bold"))
    parts.append(_text(16, 44, f"{verdict}: {doc.get('reason', '')}"[:110], colour=colour))
    runs = [r for r in doc.get("runs") or [] if r.get("phase") == "measure"]
    sides = [s for s in ("baseline", "candidate") if (st.get(s) or {}).get("n")]
    values = [v for s in sides for v in st[s]["values"]]
    top, bottom, left, right = 70, HEIGHT - 50, 70, 400
    if values:
        low, high = _range(values)

        def y_of(v: float) -> float:
            return bottom - (v - low) / (high - low) * (bottom - top)
        parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#8c959f"/>')
        for tick in _ticks(low, high):
            y = y_of(tick)
            parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eaeef2"/>')
            parts.append(_text(left - 8, y + 4, f"{tick:.4g}", size=10, anchor="end"))
        parts.append(_text(18, (top + bottom) / 2, unit or "metric", size=11, anchor="middle")
                     .replace("<text ", f'<text transform="rotate(-90 18 {(top + bottom) / 2:.1f})" ', 1))
        width = (right - left) / max(len(sides), 1)
        for number, side in enumerate(sides):
            centre = left + width * (number + 0.5)
            side_colour = SIDE_COLOUR[side]
            vals = st[side]["values"]
            for i, v in enumerate(vals):
                jitter = ((i * 37) % 21 - 10) * width / 80
                parts.append(f'<circle class="repeat" cx="{centre + jitter:.1f}" cy="{y_of(v):.1f}" r="4" '
                             f'fill="{side_colour}" fill-opacity="0.75"><title>{escape(side)} {v:.6g}</title>'
                             '</circle>')
            mean = st[side]["mean"]
            parts.append(f'<line class="mean" x1="{centre - width / 4:.1f}" y1="{y_of(mean):.1f}" '
                         f'x2="{centre + width / 4:.1f}" y2="{y_of(mean):.1f}" stroke="{side_colour}" '
                         'stroke-width="3"/>')
            failed = sum(1 for r in runs if r["side"] == side and r.get("status") != "ok")
            label = f"{side} n={st[side]['n']}" + (f", {failed} failed" if failed else "")
            parts.append(_text(centre, bottom + 18, label, size=11, anchor="middle", colour=side_colour))
            parts.append(_text(centre, bottom + 32, f"mean {mean:.4g}", size=10, anchor="middle"))
            for i in range(failed):
                x = centre + (i - failed / 2) * 10
                parts.append(f'<path class="failed" d="M{x - 4:.1f},{bottom - 4:.1f} l8,8 m0,-8 l-8,8" '
                             'stroke="#cf222e" stroke-width="2"/>')
    gain = st.get("gain")
    if gain:
        g_left, g_right, mid = 460, WIDTH - 30, (top + bottom) / 2
        threshold = st.get("min_effect") or 0.0
        span = [gain["low"], gain["high"], 0.0, threshold]
        low, high = _range(span)

        def x_of(v: float) -> float:
            return g_left + (v - low) / (high - low) * (g_right - g_left)
        parts.append(_text((g_left + g_right) / 2, top + 4, "gain, 95% interval", size=12, anchor="middle"))
        parts.append(f'<line x1="{g_left}" y1="{mid + 40}" x2="{g_right}" y2="{mid + 40}" stroke="#8c959f"/>')
        for tick in _ticks(low, high, 4):
            parts.append(_text(x_of(tick), mid + 56, f"{tick:.3g}", size=10, anchor="middle"))
        parts.append(f'<line class="zero" x1="{x_of(0):.1f}" y1="{top + 20}" x2="{x_of(0):.1f}" y2="{mid + 40}" '
                     'stroke="#24292f" stroke-dasharray="4 3"/>')
        if threshold:
            parts.append(f'<line class="min-effect" x1="{x_of(threshold):.1f}" y1="{top + 20}" '
                         f'x2="{x_of(threshold):.1f}" y2="{mid + 40}" stroke="#1a7f37" stroke-dasharray="2 3"/>')
        parts.append(f'<line class="interval" x1="{x_of(gain["low"]):.1f}" y1="{mid:.1f}" '
                     f'x2="{x_of(gain["high"]):.1f}" y2="{mid:.1f}" stroke="{colour}" stroke-width="4"/>')
        parts.append(f'<circle class="gain" cx="{x_of(gain["value"]):.1f}" cy="{mid:.1f}" r="6" fill="{colour}"/>')
        method = (st.get("difference") or {}).get("method", "")
        parts.append(_text((g_left + g_right) / 2, mid - 16,
                           f"{gain['value']:+.4g} [{gain['low']:+.4g}, {gain['high']:+.4g}] {unit}".strip(),
                           size=11, anchor="middle", colour=colour))
        parts.append(_text((g_left + g_right) / 2, mid + 76, f"method: {method}; better = "
                           f"{doc.get('command', {}).get('better', 'higher')}", size=10, anchor="middle"))
    elif doc.get("gates") and any(g["status"] != "passed" for g in doc["gates"]):
        failed = next(g for g in doc["gates"] if g["status"] != "passed")
        parts.append(_text(460, 120, f"gate {failed['name']} {failed['status']}: nothing measured", colour=colour))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
