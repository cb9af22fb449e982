"""The clinician page at GET /clinic: one person's measures in, one answer out.

- `page()`: server-rendered HTML. The form comes from the contract (serving/clinic_form.py);
  the answer area is filled by a small local script (serving/clinic_js.py) that sends the
  form as JSON in the body of POST /predict (and POST /recommend when the served service has
  that route) and draws the probabilities, the risk band, the expected change with its
  intervals, a waterfall of the top reasons and the recommended protocols. A print style
  sheet turns the answer into a page to attach to a clinical note.
- `asset(name)`: the page's style sheet and script (a fixed list; kept here as text so they
  travel with the module into any wheel or Bento; no CDN).
- `HEADERS`: a Content-Security-Policy that allows only this origin's scripts, styles and
  requests and forbids native form submission (`form-action 'none'`), so typed values can
  only leave the page in the body of the script's requests, never in a URL; no referrer,
  no caching of the page.

Token: the page and its two files are the same for everyone and hold nothing about the
served model (only the contract's field definitions, which are public in
docs/contract-v1.md), so they are served without a token (`PUBLIC_PATHS`, passed to the
safety middleware). Everything model-specific (the model's name and version, the risk
cut-offs, any prediction) comes from the token-guarded routes: when EIH_API_TOKEN is set
the page asks for the token first, checks it on GET /docs.json, keeps it in the tab's
sessionStorage (never in a URL) and sends it as a bearer token.

Nothing typed is logged or stored by the server: the access log carries method, path and
status only, and the prediction routes never quote a value.
"""

from __future__ import annotations

import html

from serving.clinic_form import form_html
from serving.clinic_js import CLINIC_JS

PATH = "/clinic"
CLINIC_CSS = """\
:root { --ink: #1b1b1b; --muted: #4a4a4a; --line: #b1b4b6; --focus: #fd0; --link: #1d5fa8;
  --hypo: #1d6f5f; --hyper: #b5401b; --neutral: #5a5a5a; --error: #b00020; --bg-soft: #f3f2f1; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
a { color: var(--link); }
header, main, footer { max-width: 1280px; margin: 0 auto; padding: 0 16px; }
header h1 { font-size: 1.5rem; margin: 0.7em 0 0.2em; }
.model-line, .note, .hint { color: var(--muted); }
.skip { position: absolute; left: -999px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
.skip:focus { left: 16px; top: 8px; background: #fff; padding: 4px 8px; }
[tabindex="-1"]:focus { outline: none; box-shadow: none; }
:focus-visible { outline: 3px solid var(--ink); box-shadow: 0 0 0 6px var(--focus); outline-offset: 0; }
fieldset { border: 1px solid var(--line); margin: 0 0 16px; padding: 8px 12px 4px; }
legend { font-weight: 700; font-size: 1.1rem; padding: 0 4px; }
.field { margin: 0 0 12px; }
.field label { display: block; font-weight: 600; }
.unit { font-weight: 400; }
.req, .opt { font-size: 0.8rem; font-weight: 600; padding: 0 4px; border-radius: 3px; margin-left: 4px; }
.req { background: #1d1d1b; color: #fff; }
.opt { background: var(--bg-soft); color: var(--muted); }
input, select { font: inherit; width: 100%; max-width: 22rem; padding: 6px 8px; border: 2px solid var(--ink);
  border-radius: 0; background: #fff; }
input[aria-invalid="true"], select[aria-invalid="true"] { border-color: var(--error); border-width: 3px; }
.hint { margin: 2px 0 0; font-size: 0.9rem; }
.error { margin: 2px 0 0; color: var(--error); font-weight: 600; }
button { font: inherit; padding: 8px 16px; border: 2px solid #0b4c2a; background: #00703c; color: #fff;
  cursor: pointer; margin: 0 8px 8px 0; }
button.secondary { background: #fff; color: var(--ink); border-color: var(--ink); }
button:disabled { opacity: 0.6; cursor: default; }
.actions { margin: 8px 0 24px; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr); gap: 24px; }
@media (min-width: 960px) { .layout { grid-template-columns: minmax(0, 5fr) minmax(0, 6fr); } }
#answer h2, #recommend h2 { font-size: 1.3rem; margin: 0.6em 0 0.3em; }
#answer h3 { font-size: 1.05rem; margin: 1em 0 0.3em; }
.summary { border: 3px solid var(--error); padding: 8px 12px; margin: 8px 0; }
.summary h2 { color: var(--error); margin-top: 0.2em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar-track { display: block; height: 0.9em; background: var(--bg-soft); min-width: 4rem; }
.bar { display: block; height: 100%; }
.bar.hypoalgesia, .wf-bar.up { background: var(--hypo); }
.bar.hyperalgesia, .wf-bar.down { background: var(--hyper); }
.bar.no_change, .wf-bar.total { background: var(--neutral); }
.risk { font-size: 1.1rem; font-weight: 700; }
.risk-low { color: var(--hypo); } .risk-moderate { color: #7a4b00; } .risk-high { color: var(--hyper); }
.change { font-size: 1.1rem; }
ol.waterfall { list-style: none; margin: 0; padding: 0; }
ol.waterfall li { display: grid; grid-template-columns: 1fr 4.5rem; gap: 2px 8px; padding: 6px 0;
  border-bottom: 1px solid var(--line); }
.wf-text { grid-column: 1 / 3; }
.wf-track { position: relative; display: block; height: 1rem; background: var(--bg-soft); }
.wf-bar { position: absolute; top: 0; bottom: 0; min-width: 2px; }
.wf-zero { position: absolute; top: -2px; bottom: -2px; width: 2px; background: var(--ink); }
.wf-num { text-align: right; font-variant-numeric: tabular-nums; font-weight: 600; }
.current-row { background: #fff7d6; }
td.protocol { min-width: 12rem; }
.print-only { display: none; }
.table-wrap { overflow-x: auto; }
footer { color: var(--muted); font-size: 0.9rem; padding-bottom: 24px; }
@media print {
  body { font-size: 11pt; }
  .no-print, form, #token-box, button, .skip, footer { display: none !important; }
  .print-only { display: block; }
  .layout { display: block; }
  .bar, .wf-bar, .wf-zero { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
  h2, h3 { break-after: avoid; } tr, li { break-inside: avoid; }
}
"""
_ASSETS = {"clinic.css": (CLINIC_CSS, "text/css; charset=utf-8"),
           "clinic.js": (CLINIC_JS, "application/javascript; charset=utf-8")}
ASSET_NAMES = frozenset(_ASSETS)
PUBLIC_PATHS = frozenset({PATH, *(f"{PATH}/{name}" for name in ASSET_NAMES)})
"""The page and its files: served without a token (they hold nothing about the served model)."""

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff"}


def asset(name: str) -> tuple[str, str] | None:
    """(text, media type) of /clinic/NAME, or None for any other name."""
    return _ASSETS.get(name)


_ANSWER = """\
<section id="answer" aria-labelledby="answer-title">
<h2 id="answer-title" tabindex="-1">The answer</h2>
<p id="status" role="status" class="note">Fill in the form and press Predict. Nothing you type is stored or logged.</p>
<div id="summary" class="summary" hidden tabindex="-1"></div>
<div id="result" hidden>
<p class="print-only" id="print-head"></p>
<h3 id="probs-title">Response to one bout</h3>
<table aria-labelledby="probs-title"><thead><tr><th scope="col">outcome</th><th scope="col" class="num">probability</th>
<th scope="col"><span class="visually-hidden">bar</span></th></tr></thead><tbody id="probs"></tbody></table>
<p class="risk" id="risk"></p>
<h3>Expected change of the pressure pain threshold</h3>
<p class="change" id="change"></p>
<ul id="intervals"></ul>
<h3 id="reasons-title">Why: the main reasons</h3>
<p class="note" id="reasons-note"></p>
<ol class="waterfall" id="reasons" aria-labelledby="reasons-title"></ol>
<p class="note" id="missing"></p>
<ul id="warnings"></ul>
<div class="print-only"><h3>The measures sent</h3><table><tbody id="inputs"></tbody></table></div>
<p class="no-print"><button type="button" id="print" class="secondary">Print for the clinical note</button></p>
</div>
</section>
<section id="recommend" aria-labelledby="recommend-title" hidden>
<h2 id="recommend-title">Protocols with the best odds for this person</h2>
<p class="note" id="recommend-note"></p>
<div class="table-wrap"><table><caption class="note" id="recommend-caption"></caption>
<thead><tr><th scope="col">rank</th><th scope="col">protocol</th><th scope="col" class="num">P(hypoalgesia)</th>
<th scope="col" class="num">P(hyperalgesia)</th><th scope="col" class="num">benefit</th><th scope="col">risk</th>
<th scope="col">notes</th></tr></thead><tbody id="recommend-rows"></tbody></table></div>
<p id="current-note"></p>
<p class="no-print"><button type="button" id="compare" class="secondary">Compare the typed protocol</button></p>
</section>
"""


def page() -> str:
    """The HTML of GET /clinic: the same for everyone, nothing about the served model in it."""
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>EIH clinician page</title>
<link rel="stylesheet" href="./clinic/clinic.css">
</head>
<body>
<a class="skip" href="#clinic-form">Skip to the form</a>
<header>
<h1>Exercise-induced hypoalgesia: one person, one protocol</h1>
<p class="model-line" id="model-line">{e("Connecting to the service…")}</p>
<noscript><p>This page needs JavaScript to send the form to the service.</p></noscript>
</header>
<main>
<section id="token-box" class="no-print" hidden aria-labelledby="token-title">
<h2 id="token-title">This service needs its API token</h2>
<form id="token-form" novalidate>
<div class="field"><label for="token-input">API token</label>
<input id="token-input" name="token" type="password" aria-describedby="token-hint token-error">
<p class="hint" id="token-hint">Kept in this browser tab only (until the tab closes) and sent as a bearer token.</p>
<p class="error" id="token-error" role="alert"></p></div>
<button type="submit">Use this token</button>
</form>
</section>
<div class="layout" id="clinic" hidden>
<div id="form-col">
<h2 class="no-print">The person's measures</h2>
{form_html()}
</div>
<div id="answer-col">
{_ANSWER}
</div>
</div>
</main>
<footer><p>Probabilities, not verdicts: exercise-induced hypoalgesia is weakly predictable and noisily measured.
<button type="button" id="forget" class="secondary" hidden>Forget the token</button></p></footer>
<script src="./clinic/clinic.js"></script>
</body>
</html>
"""
