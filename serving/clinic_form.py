"""The clinician page's form, generated from the contract's field definitions.

Every field a record may hold (`data_contracts.fields.FIELDS`, the outcome left out) is one
labelled control in one group, in the order the clinic takes the measures: the person, the
pain, the sensory tests, the questionnaires, the biomarkers, the protocol. A control shows
the field's label, unit, range or choices and whether it is required; an empty paragraph
beside it receives the service's 422 problem for that field (the rule text included).

Numbers are text inputs with a decimal keyboard rather than `type=number`, so that what was
typed reaches the service as typed and the service's own rule answers it (a browser's
number input silently empties text it cannot read). No control offers autofill.
"""

from __future__ import annotations

import html

from data_contracts.fields import FIELDS, Field

GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("person", "The person", ("subject_id", "site", "age_years", "sex", "bmi_kg_m2")),
    ("pain", "Pain", ("pain_condition", "pain_mechanism", "pain_duration_months", "pain_intensity_nrs")),
    ("sensory", "Sensory tests", ("ppt_baseline_kpa", "cpm_pct", "temporal_summation_nrs")),
    ("questionnaires", "Questionnaires",
     ("csi_score", "paindetect_score", "pcs_total", "tsk17_total", "pseq_total", "hads_anxiety", "hads_depression",
      "expected_pain_change_nrs")),
    ("biomarkers", "Biomarkers", ("bdnf_ng_ml", "bdnf_matrix", "il6_pg_ml", "lactate_mmol_l")),
    ("protocol", "The exercise protocol", ("exercise_modality", "exercise_intensity_pct", "exercise_duration_min")),
)
"""(id, legend, fields) of every group of the form, in page order."""

FORM_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.role != "outcome")
"""The fields a record sent by the page may hold: every contract field but the outcome."""

PROTOCOL_FIELDS: tuple[str, ...] = GROUPS[-1][2]

_CHOICE_WORDS = {"hiit": "HIIT", "mind_body": "mind-body", "dynamic_resistance": "dynamic resistance",
                 "none": "none (pain-free)"}


def choice_label(value: str) -> str:
    """A category value as a clinician reads it ("chronic_low_back_pain" -> "chronic low back pain")."""
    return _CHOICE_WORDS.get(value, value.replace("_", " "))


def hint(f: Field) -> str:
    """The short rule shown under a control: the range and unit, or the identifier's characters."""
    if f.kind == "number":
        unit = f" {f.unit}" if f.unit else ""
        return f"{f.min:g} to {f.max:g}{unit}"
    if f.kind == "category":
        return f"one of {len(f.categories)}"
    return f.rule


def _describe(f: Field) -> str:
    parts = [hint(f)] if f.kind != "category" else []
    if f.description and f.description.lower() != f.label.lower():
        parts.append(f.description)
    if f.measured == "after":
        parts.append("measured right after the bout: leave it empty to prescribe")
    return " · ".join(parts)


def _label(f: Field) -> str:
    e = html.escape
    unit = f' <span class="unit">({e(f.unit)})</span>' if f.unit else ""
    need = '<span class="req">required</span>' if f.required else '<span class="opt">optional</span>'
    return f'<label for="f-{f.name}">{e(f.label)}{unit} {need}</label>'


def _control(f: Field) -> str:
    e = html.escape
    common = (f'id="f-{f.name}" name="{f.name}" data-kind="{f.kind}" data-label="{e(f.label)}" '
              f'aria-describedby="h-{f.name} e-{f.name}"' + (" required" if f.required else ""))
    if f.kind == "category":
        empty = "choose" if f.required else "not measured"
        options = [f'<option value="">{e(empty)}</option>']
        options += [f'<option value="{e(c)}">{e(choice_label(c))}</option>' for c in f.categories]
        return f'<select {common}>{"".join(options)}</select>'
    mode = "decimal" if f.kind == "number" else "text"
    size = ' maxlength="64"' if f.kind == "string" else ""
    return (f'<input {common} type="text" inputmode="{mode}" autocomplete="off" autocapitalize="off" '
            f'spellcheck="false"{size}>')


def field_html(f: Field) -> str:
    """One field: label (with unit and required/optional), control, rule hint, error slot."""
    return (f'<div class="field" id="w-{f.name}">{_label(f)}{_control(f)}'
            f'<p class="hint" id="h-{f.name}">{html.escape(_describe(f))}</p>'
            f'<p class="error" id="e-{f.name}" hidden></p></div>')


def form_html() -> str:
    """The whole form: one fieldset per group, then the buttons."""
    by_name = {f.name: f for f in FIELDS}
    sets = []
    for gid, legend, names in GROUPS:
        inner = "\n".join(field_html(by_name[n]) for n in names)
        sets.append(f'<fieldset id="g-{gid}"><legend>{html.escape(legend)}</legend>\n{inner}\n</fieldset>')
    buttons = ('<div class="actions"><button type="submit" id="predict">Predict</button>'
               '<button type="reset" id="clear" class="secondary">Clear the form</button></div>')
    return ('<form id="clinic-form" novalidate aria-describedby="form-note">\n'
            '<p id="form-note" class="note">Required fields are marked <span class="req">required</span>; '
            "leave an optional measure empty when it was not taken.</p>\n"
            + "\n".join(sets) + "\n" + buttons + "\n</form>")
