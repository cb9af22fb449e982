"""The cohort report's HTML pieces: the inline style sheet, escaping, tables of
formatted cells, and the cells of a share with its interval. No scripts, no external
files: the page stays one self-contained file."""

from __future__ import annotations

import html
import math

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em;margin-top:1.4em}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border-bottom:1px solid #eee;padding:.25em .6em;text-align:right;vertical-align:top}th{background:#f6f6f6}
td.l,th.l{text-align:left}.muted{color:#666;font-size:.9em}.flag{color:#b00020;font-weight:600}
tr.small td{background:#fff8e6}
.tag{display:inline-block;font-size:.8em;padding:0 .4em;border-radius:3px;background:#f4d58d;color:#5a4400;font-weight:600}
.ok{color:#2a7d2a}.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}.card b{font-size:1.5em;display:block}
.card span{color:#666;font-size:.85em;display:block}img{max-width:100%}
.note{background:#f8f8f2;border-left:3px solid #ccc;padding:.5em 1em}
.model{border:2px solid #457b9d;border-radius:8px;padding:.4em 1.2em;margin:1.2em 0;background:#f5f9fc}
.model h2{border:none;margin-top:.4em}.legend{font-size:.85em;margin:.3em 0 1em}.legend div{margin:.15em 0}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin:0 .25em 0 .7em;vertical-align:middle}
.grad{display:inline-block;width:6em;height:.7em;vertical-align:middle;margin:0 .3em;
background:linear-gradient(90deg,#3b4cc0,#dddddd,#b40426)}
.bars{margin:.8em 0 1em;font-size:.85em}.bars .bt{font-weight:600;margin-bottom:.3em}
.bars .row{display:flex;align-items:center;margin:3px 0}.bars .lab{flex:0 0 19em;text-align:right;padding-right:.7em}
.bars .row.small .lab{color:#8a6d00}.bars .bar{flex:1;display:flex;align-items:center;height:1.35em}
.bars .bar i{display:block;height:100%;flex:none}.bars .bar em{font-style:normal;padding-left:.4em;white-space:nowrap}
.bars .stack{background:#f2f2f2}
.bars .stack i{color:#fff;font-size:.8em;font-style:normal;text-align:center;line-height:1.7em;overflow:hidden;white-space:nowrap}
.trio{display:flex;gap:1.5em;flex-wrap:wrap}.trio>div.main{flex:1.7}.trio .main .bars{font-size:1em}
.trio>div{flex:1;min-width:16em}.trio .bars .lab{flex-basis:7em}
tr.flagged td{color:#9b1c1c}
"""


def esc(x) -> str:
    """Text escaped for HTML."""
    return html.escape(str(x))


def table(headers: list[str], rows: list[list[str]], left: int = 1, row_classes: list[str] | None = None,
          text: tuple[int, ...] = ()) -> str:
    """A table of already formatted cells (escaped here); the first `left` columns and the
    columns in `text` are left-aligned."""
    if not rows:
        return '<p class="muted">none</p>'
    cls = lambda i: ' class="l"' if i < left or i in text else ""  # noqa: E731
    out = ["<table><tr>" + "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers)) + "</tr>"]
    for r, row in enumerate(rows):
        rc = row_classes[r] if row_classes and row_classes[r] else ""
        out.append((f'<tr class="{rc}">' if rc else "<tr>")
                   + "".join(f"<td{cls(i)}>{esc(c)}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def pct(v: float, digits: int = 1) -> str:
    """A share as a percentage ("18.7 %"), a dash when unknown."""
    return "–" if v is None or math.isnan(v) else f"{100 * v:.{digits}f} %"


def share_cell(v: float, lo: float = math.nan, hi: float = math.nan) -> str:
    """A share with its 95 % interval when there is one ("18.7 % (9.1–28.3)")."""
    if math.isnan(lo) or math.isnan(hi):
        return pct(v)
    return f"{pct(v)} ({100 * lo:.1f}–{100 * hi:.1f})"


def points(v: float, digits: int = 1) -> str:
    """A change in %-points with its sign, a dash when unknown."""
    return "–" if v is None or math.isnan(v) else f"{v:+.{digits}f}"


def tag(text: str) -> str:
    """A small highlighted label (HTML, already escaped)."""
    return f'<span class="tag">{esc(text)}</span>'


def swatch(color: str) -> str:
    """A small coloured dot for a legend."""
    return f"<span class='sw' style='background:{color}'></span>"


def bar_chart(title: str, items: list[tuple[str, float, str]], scale: float, fmt: str = "{:.1f} %",
              faded: bool = False) -> str:
    """Horizontal bars drawn in HTML: (label, value, colour) each, widths value / scale,
    the value written beside its bar."""
    style = " style='opacity:.5'" if faded else ""
    rows = "".join(
        f"<div class='row'><span class='lab'>{esc(label)}</span><span class='bar'>"
        f"<i style='width:{max(0.0, min(100.0, 100 * v / scale)):.2f}%;background:{color}'{style}></i>"
        f"<em>{esc(fmt.format(v))}</em></span></div>"
        for label, v, color in items)
    return f"<div class='bars'><div class='bt'>{esc(title)}</div>{rows}</div>"


def stacked_chart(title: str, rows: list[tuple[str, list[float], bool]], legend: list[tuple[str, str]]) -> str:
    """Bars of shares that add up to 100 %, one row per group: (label, shares in %, small
    group?) each, the parts coloured as in `legend` (name, colour)."""
    colors = [c for _, c in legend]
    head = "".join(f"{swatch(c)}{esc(name)}" for name, c in legend)
    body = []
    for label, shares, small in rows:
        parts = "".join(f"<i style='width:{v:.2f}%;background:{c}'>{f'{v:.0f}%' if v >= 7 else ''}</i>"
                        for v, c in zip(shares, colors, strict=True))
        body.append(f"<div class='row{' small' if small else ''}'><span class='lab'>{esc(label)}</span>"
                    f"<span class='bar stack'>{parts}</span></div>")
    return (f"<div class='bars'><div class='bt'>{esc(title)}</div><div class='legend'>{head}</div>"
            + "".join(body) + "</div>")
