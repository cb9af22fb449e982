"""Clinical words for the cohort report: the names of the responses, of the model's
outputs and of the fields, the units an effect is measured in and the colours the
figures give them. The page speaks of "the expected change of the pain threshold" and
"the uncertainty of the change", never of the names the model stores internally.
"""

from __future__ import annotations

import numpy as np

from model_runtime.links import ORDINAL_OUTPUT, SPREAD_OUTPUT

COLORS = {"hypoalgesia": "#2a9d8f", "no_change": "#b0b0b0", "hyperalgesia": "#e76f51",
          ORDINAL_OUTPUT: "#457b9d", SPREAD_OUTPUT: "#9c6644"}
RISK_COLORS = {"low": "#8ab17d", "moderate": "#e9c46a", "high": "#e76f51"}
MEANING = {
    "hypoalgesia": "less pain sensitivity after the bout (pain threshold up by at least the label threshold)",
    "no_change": "pain threshold within the label threshold of its baseline",
    "hyperalgesia": "more pain sensitivity after the bout (pain threshold down by at least the label threshold)",
}
CHANGE = "expected change of the pain threshold"
SPREAD = "uncertainty of the change"


def response(r: str) -> str:
    """A response class as a clinician reads it ("no change" for no_change)."""
    return r.replace("_", " ")


def field_name(f: str) -> str:
    """A contract field or derived feature in clinical words (the HTTP explanations' labels)."""
    from serving.explain import label

    name = label(f)
    return name if name != f else f.replace("_", " ")


def output_name(o: str) -> str:
    """One of the model's outputs in clinical words."""
    if o == ORDINAL_OUTPUT:
        return f"{CHANGE} (%-points)"
    if o == SPREAD_OUTPUT:
        return SPREAD
    return f"chance of {response(o)}"


def short_output(o: str) -> str:
    """One of the model's outputs in a few words (for table cells)."""
    if o == ORDINAL_OUTPUT:
        return "expected change"
    return SPREAD if o == SPREAD_OUTPUT else f"chance of {response(o)}"


def is_change_model(outputs) -> bool:
    """Whether the model's first output is the expected change (ordinal and distributional models)."""
    return tuple(outputs)[:1] == (ORDINAL_OUTPUT,)


def effect_unit(o: str) -> str:
    """The unit a field's effect on output `o` is shown in."""
    if o == ORDINAL_OUTPUT:
        return "%-points of the expected change"
    if o == SPREAD_OUTPUT:
        return "% larger or smaller spread of the change"
    return "log-odds against the other responses"


def effect_axis(o: str) -> str:
    """The x-axis of a beeswarm panel of output `o`: what the effect is and which way is right."""
    if o == ORDINAL_OUTPUT:
        return "effect on the expected change (%-points; right = toward hypoalgesia)"
    if o == SPREAD_OUTPUT:
        return "effect on the spread of the change (%; right = more uncertain)"
    return f"effect on the chance of {response(o)} (log-odds; right = more likely)"


def effect_values(o: str, contributions: np.ndarray) -> np.ndarray:
    """Contributions to output `o` in the unit `effect_unit` names: the spread's are log
    factors, shown as the % by which they widen (+) or narrow (-) a person's spread."""
    if o == SPREAD_OUTPUT:
        return 100.0 * np.expm1(contributions)
    return contributions


def driver_outputs(outputs) -> list[int]:
    """The outputs whose drivers the report shows: every output of a change model (the
    expected change, and its uncertainty when the model has one); the hypoalgesia and
    hyperalgesia margins of a class-margin model."""
    outputs = tuple(outputs)
    if is_change_model(outputs):
        return list(range(len(outputs)))
    return [k for k, o in enumerate(outputs) if o != "no_change"] or list(range(len(outputs)))


def signed(v: float, digits: int = 1) -> str:
    """A number with its sign ("+8.1", "-3.0")."""
    return f"{v:+.{digits}f}"
