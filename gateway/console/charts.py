"""Server-rendered SVG bar charts for the console's usage page: no chart library, no CDN, nothing executable.

Every text in the SVG is escaped; the browser shows the document as an <img> (scripts in an image never run).
"""

from __future__ import annotations

from html import escape

W, H = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 34


def _nice_max(v: int) -> int:
    """Four ticks of a round step (1/2/5 × 10^k) that reach v: the axis labels are whole, round numbers."""
    need, scale = -(-max(int(v), 1) // 4), 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= need:
                return 4 * m * scale
        scale *= 10


def _short(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            text = f"{n / size:.1f}".rstrip("0").rstrip(".")
            return text + unit
    return str(n)


def bar_chart(title: str, labels: list[str], values: list[int], *, label_every: int = 1) -> str:
    top = _nice_max(max(values, default=0))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = max(len(values), 1)
    slot = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(', '.join(f'{a}: {b}' for a, b in zip(labels, values)))}</desc>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#1f2933">{escape(title)}</text>',
    ]
    for i in range(5):  # grid lines and y ticks
        v = top * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#52606d">{_short(v)}</text>')
    for i, (label, v) in enumerate(zip(labels, values)):
        h = plot_h * v / top
        x = LEFT + i * slot + slot * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="#3f6ad8"><title>{escape(label)}: {v}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" '
                f'fill="#52606d">{escape(label)}</text>'
            )
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#9aa5b1"/>')
    parts.append("</svg>")
    return "".join(parts)
