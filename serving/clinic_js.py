"""The clinician page's script (served as /clinic/clinic.js; serving/clinic.py owns the page).

What it does, in order: checks GET /docs.json (with the bearer token kept in this tab's
sessionStorage, if any); on 401 it asks for the token and nothing else is shown; then it
reads the served model's name, version and risk cut-offs from GET /metadata and whether the
service has POST /recommend. On submit it sends the form as one JSON record in the body of
POST /predict (never in a URL), writes each 422 problem next to its field (with the rule the
service gives) and a summary linking to them, or draws the answer: the probabilities, the
risk band, the expected change with its 80 and 90 % intervals in words, a waterfall of the
top contributions and, when /recommend exists, the protocols with the best odds and, on
request, the typed protocol beside them. It logs nothing and stores nothing but the token.
"""

CLINIC_JS = r"""
(function () {
  "use strict";
  var KEY = "eih.clinic.token";
  var PROTOCOL = ["exercise_modality", "exercise_intensity_pct", "exercise_duration_min"];
  var OUTCOMES = [["hypoalgesia", "Hypoalgesia (less pain sensitivity)"], ["no_change", "No change"],
                  ["hyperalgesia", "Hyperalgesia (more pain sensitivity)"]];
  var CHOICES = {hiit: "HIIT", mind_body: "mind-body"};
  var INTENSITY = {aerobic: "% HRmax", hiit: "% HRmax", mind_body: "% HRmax", isometric: "% MVC",
                   dynamic_resistance: "% 1RM"};
  var token = sessionStorage.getItem(KEY) || "";
  var state = {recommend: false, meta: null, record: null};
  var form = $("clinic-form");

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined) { n.textContent = text; }
    return n;
  }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } return node; }
  function pct(p) { return (100 * p).toFixed(1) + " %"; }
  function signed(x, digits) {
    var s = Math.abs(x).toFixed(digits);
    return Number(s) === 0 ? s : (x > 0 ? "+" : "\u2212") + s;
  }
  function label(name) { var c = $("f-" + name); return c ? c.getAttribute("data-label") : name; }
  function words(v) { return CHOICES[v] || String(v).replace(/_/g, " "); }

  function call(method, path, body) {
    var h = {};
    if (body !== undefined) { h["Content-Type"] = "application/json"; }
    if (token) { h["Authorization"] = "Bearer " + token; }
    return fetch(path, {method: method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
                        cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer"})
      .then(function (r) {
        return r.text().then(function (t) {
          var j = null;
          try { j = JSON.parse(t); } catch (e) { j = null; }
          return {status: r.status, body: j};
        });
      }, function () { return {status: 0, body: {error: "the service did not answer"}}; });
  }
  function errorText(r) {
    var msg = r.body && r.body.error ? r.body.error : "unexpected answer";
    return "The service answered " + (r.status || "nothing") + ": " + msg;
  }
  function status(text) { $("status").textContent = text; }

  // ---- token and start ---------------------------------------------------------------------
  function askToken(message) {
    $("clinic").hidden = true;
    $("token-box").hidden = false;
    $("model-line").textContent = "The service needs its API token.";
    $("token-error").textContent = message || "";
    $("token-input").focus();
  }
  function start() {
    return call("GET", "./docs.json").then(function (r) {
      if (r.status === 401) { askToken(token ? "That token was not accepted." : ""); return; }
      if (r.status !== 200) { $("model-line").textContent = errorText(r); return; }
      state.recommend = !!(r.body && r.body.paths && r.body.paths["/recommend"]);
      $("token-box").hidden = true;
      $("clinic").hidden = false;
      $("forget").hidden = !token;
      return loadMeta();
    });
  }
  function loadMeta() {
    return call("GET", "./metadata").then(function (r) {
      if (r.status !== 200) { $("model-line").textContent = errorText(r); return; }
      state.meta = r.body;
      var m = r.body.model || {};
      $("model-line").textContent = "Model " + (m.name || "from a URI") + " version " + (m.version || "?") +
        " \u00b7 data contract " + (m.contract_version || "?") + " \u00b7 a change of \u00b1" +
        (m.label_threshold_pct || 10) + " % of the pain threshold counts as a response";
    });
  }
  $("token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    token = $("token-input").value.trim();
    $("token-input").value = "";
    start().then(function () { if (!$("clinic").hidden && token) { sessionStorage.setItem(KEY, token); } });
  });
  $("forget").addEventListener("click", function () {
    sessionStorage.removeItem(KEY);
    token = "";
    askToken("");
  });

  // ---- the form ----------------------------------------------------------------------------
  function readForm() {
    var rec = {};
    Array.prototype.forEach.call(form.elements, function (c) {
      if (!c.name) { return; }
      var v = c.value.trim();
      if (v === "") { return; }
      if (c.getAttribute("data-kind") === "number") {
        var t = v.replace(",", ".");
        rec[c.name] = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t) ? Number(t) : v;
      } else {
        rec[c.name] = v;
      }
    });
    return rec;
  }
  function clearErrors() {
    var s = clear($("summary"));
    s.hidden = true;
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (c) {
      c.removeAttribute("aria-invalid");
    });
    Array.prototype.forEach.call(form.querySelectorAll(".error"), function (p) { p.textContent = ""; p.hidden = true; });
  }
  function showProblems(body) {
    var problems = (body && body.problems) || [];
    var s = clear($("summary"));
    s.appendChild(el("h2", null, "Nothing was scored: " + problems.length + " problem" +
                     (problems.length === 1 ? "" : "s") + " to correct"));
    var list = s.appendChild(el("ul"));
    problems.forEach(function (p) {
      var slot = p.field ? $("e-" + p.field) : null;
      var li = list.appendChild(el("li"));
      if (slot) {
        slot.textContent = p.problem;
        slot.hidden = false;
        $("f-" + p.field).setAttribute("aria-invalid", "true");
        var a = li.appendChild(el("a", null, label(p.field) + ": " + p.problem));
        a.href = "#f-" + p.field;
        a.addEventListener("click", function (ev) { ev.preventDefault(); $("f-" + p.field).focus(); });
      } else {
        li.textContent = p.problem || (body && body.error) || "the request was refused";
      }
    });
    if (!problems.length) { list.appendChild(el("li", null, (body && body.error) || "the request was refused")); }
    $("result").hidden = true;
    $("recommend").hidden = true;
    s.hidden = false;
    status("The form has problems: see the list and the fields marked.");
    s.focus();
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    clearErrors();
    var rec = readForm();
    status("Scoring\u2026");
    $("predict").disabled = true;
    call("POST", "./predict", {records: [rec]}).then(function (r) {
      $("predict").disabled = false;
      if (r.status === 401) { askToken("The token was not accepted: enter it again."); return; }
      if (r.status === 422) { showProblems(r.body); return; }
      if (r.status !== 200) { status(errorText(r)); return; }
      state.record = rec;
      render(r.body.predictions[0], rec);
      if (state.recommend) { recommend(rec, false); }
    });
  });
  form.addEventListener("reset", function () {
    clearErrors();
    $("result").hidden = true;
    $("recommend").hidden = true;
    state.record = null;
    status("The form was cleared.");
  });

  // ---- the answer --------------------------------------------------------------------------
  function render(p, rec) {
    var probs = clear($("probs"));
    OUTCOMES.forEach(function (o) {
      var tr = probs.appendChild(el("tr"));
      tr.setAttribute("data-outcome", o[0]);
      tr.appendChild(el("th", null, o[1])).setAttribute("scope", "row");
      tr.appendChild(el("td", "num", pct(p.probabilities[o[0]])));
      var track = tr.appendChild(el("td")).appendChild(el("span", "bar-track"));
      track.setAttribute("aria-hidden", "true");
      track.appendChild(el("span", "bar " + o[0])).style.width = (100 * p.probabilities[o[0]]).toFixed(1) + "%";
    });
    var cut = (state.meta && state.meta.risk_cutoffs) || {};
    var risk = $("risk");
    risk.className = "risk risk-" + p.hyperalgesia_risk;
    risk.textContent = "Risk of hyperalgesia: " + p.hyperalgesia_risk +
      (cut.moderate !== undefined ? " (moderate from " + pct(cut.moderate) + ", high from " + pct(cut.high) + ")" : "");
    renderChange(p);
    renderReasons(p);
    $("missing").textContent = p.missing_inputs.length ? "Not given (the model handles them as missing): " +
      p.missing_inputs.map(label).join(", ") + "." : "";
    var w = clear($("warnings"));
    p.warnings.forEach(function (t) { w.appendChild(el("li", null, t)); });
    renderInputs(rec);
    $("result").hidden = false;
    status("Answer for " + p.subject_id + ": most likely " + words(p.predicted_response) + ".");
    $("answer-title").focus();
  }
  function renderChange(p) {
    var ivs = clear($("intervals"));
    if (p.expected_change_pct === undefined || p.expected_change_pct === null) {
      $("change").textContent = "This model gives probabilities only (no expected change).";
      return;
    }
    $("change").textContent = "Expected: " + signed(p.expected_change_pct, 1) + " % (a rise means less pain " +
      "sensitivity after the bout), give or take " + p.change_sd_pct.toFixed(1) + " %-points.";
    Object.keys(p.change_interval_pct || {}).sort().forEach(function (level) {
      var b = p.change_interval_pct[level];
      var n = Number(level) / 10;
      ivs.appendChild(el("li", null, n + " in 10 people like this one change between " + signed(b[0], 0) +
        " % and " + signed(b[1], 0) + " %."));
    });
  }
  function renderReasons(p) {
    var ol = clear($("reasons"));
    var ordinal = p.expected_change_pct !== undefined && p.expected_change_pct !== null;
    if (!ordinal) {
      $("reasons-note").textContent = "The fields that weigh most, in log-odds toward the outcome named.";
      p.top_contributions.forEach(function (c) { ol.appendChild(el("li")).appendChild(el("span", "wf-text", c.statement)); });
      return;
    }
    var steps = p.top_contributions.map(function (c) {
      return {text: c.statement, delta: c.toward === "hyperalgesia" ? -c.contribution : c.contribution};
    });
    var end = p.expected_change_pct;
    var start = steps.reduce(function (acc, s) { return acc - s.delta; }, end);
    $("reasons-note").textContent = "From the average person in training (with this person's other fields) to " +
      "this person's expected change, in %-points; green raises the pain threshold, orange lowers it.";
    var rows = [{text: "The average person, with this person's other fields", from: 0, to: start, total: true}];
    var at = start;
    steps.forEach(function (s) { rows.push({text: s.text, from: at, to: at + s.delta}); at += s.delta; });
    rows.push({text: "This person's expected change", from: 0, to: end, total: true});
    var lo = Math.min(0, Math.min.apply(null, rows.map(function (r) { return Math.min(r.from, r.to); })));
    var hi = Math.max(0, Math.max.apply(null, rows.map(function (r) { return Math.max(r.from, r.to); })));
    var span = (hi - lo) || 1;
    rows.forEach(function (r) {
      var li = ol.appendChild(el("li"));
      li.appendChild(el("span", "wf-text", r.text));
      var track = li.appendChild(el("span", "wf-track"));
      track.setAttribute("aria-hidden", "true");
      var bar = track.appendChild(el("span", "wf-bar " + (r.total ? "total" : r.to >= r.from ? "up" : "down")));
      bar.style.left = (100 * (Math.min(r.from, r.to) - lo) / span).toFixed(2) + "%";
      bar.style.width = (100 * Math.abs(r.to - r.from) / span).toFixed(2) + "%";
      track.appendChild(el("span", "wf-zero")).style.left = (100 * (0 - lo) / span).toFixed(2) + "%";
      li.appendChild(el("span", "wf-num", signed(r.total ? r.to : r.to - r.from, 1)));
    });
  }
  function renderInputs(rec) {
    var body = clear($("inputs"));
    Object.keys(rec).forEach(function (k) {
      var tr = body.appendChild(el("tr"));
      tr.appendChild(el("th", null, label(k))).setAttribute("scope", "row");
      tr.appendChild(el("td", null, words(rec[k])));
    });
    var m = (state.meta && state.meta.model) || {};
    $("print-head").textContent = "EIH prediction, model " + (m.name || "?") + " version " + (m.version || "?") +
      ", printed " + new Date().toLocaleString() + ".";
  }
  $("print").addEventListener("click", function () { window.print(); });

  // ---- recommended protocols ---------------------------------------------------------------
  function protocolText(pr) {
    return words(pr.exercise_modality) + ": " + pr.exercise_intensity_pct + " " +
      (INTENSITY[pr.exercise_modality] || "%") + " for " + pr.exercise_duration_min + " min";
  }
  function row(item, name) {
    var tr = el("tr", item.rank === null ? "current-row" : null);
    tr.appendChild(el("th", null, name)).setAttribute("scope", "row");
    tr.appendChild(el("td", "protocol", protocolText(item.protocol)));
    tr.appendChild(el("td", "num", pct(item.probabilities.hypoalgesia)));
    tr.appendChild(el("td", "num", pct(item.probabilities.hyperalgesia)));
    tr.appendChild(el("td", "num", signed(item.benefit, 3)));
    tr.appendChild(el("td", null, item.hyperalgesia_risk));
    tr.appendChild(el("td", null, item.warnings.join(" ")));
    return tr;
  }
  function recommend(rec, withCurrent) {
    var record = {};
    Object.keys(rec).forEach(function (k) { if (withCurrent || PROTOCOL.indexOf(k) < 0) { record[k] = rec[k]; } });
    return call("POST", "./recommend", {record: record, top: 5}).then(function (r) {
      var sec = $("recommend");
      if (r.status === 404 || r.status === 405) { state.recommend = false; sec.hidden = true; return; }
      sec.hidden = false;
      var rows = clear($("recommend-rows"));
      $("current-note").textContent = "";
      if (r.status !== 200) { $("recommend-note").textContent = errorText(r); return; }
      var b = r.body;
      $("recommend-note").textContent = (b.no_recommendation ? b.no_recommendation + " " : "") +
        (b.causal && b.causal.note ? b.causal.note : "");
      $("recommend-caption").textContent = "Benefit = P(hypoalgesia) \u2212 P(hyperalgesia); " +
        (b.grid ? b.grid.protocols_scored + " protocols scored, " + b.grid.within_constraints +
        " within the limits." : "");
      b.recommendations.forEach(function (item) { rows.appendChild(row(item, String(item.rank))); });
      if (b.current) {
        rows.appendChild(row(b.current, "typed"));
        $("current-note").textContent = "The typed protocol: " + b.current.protocols_with_more_benefit +
          " protocol(s) within the limits have more benefit" +
          (b.current.benefit_gap_to_best === null ? "" : "; its benefit is " +
           Math.abs(b.current.benefit_gap_to_best).toFixed(3) + " below the best") +
          (b.current.meets_constraints ? "." : " (it is outside the limits).");
      }
    });
  }
  $("compare").addEventListener("click", function () {
    if (state.record) { recommend(state.record, true).then(function () { $("current-note").focus(); }); }
  });
  $("current-note").setAttribute("tabindex", "-1");

  start();
})();
"""
