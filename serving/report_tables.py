"""The cohort report's tables, computed from the job's aggregates (never from records):
expected shares per group and per site with 95 % intervals for small groups, the sites'
drift against the training data, predictions against measured outcomes, and the main
drivers of each model output.

Intervals: the mean probability of a group gets a Student-t interval from the group's
sums and sums of squares (what a bootstrap of the group's people gives, to a normal
approximation); an observed share gets a Wilson interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from features.reference import PSI_FLAG, psi_from_counts
from serving.batch.sites import NO_SITE, OutcomeSums
from serving.report_words import effect_values, is_change_model

SMALL_GROUP = 30
"""Groups under this many people are flagged and shown with 95 % intervals."""
MIN_SHOWN = 5
"""Groups under this many people show their size only: their means would be close to one person's values."""
SITE_DRIFT_MIN_N = 200
"""Sites under this many people are not judged for drift: the PSI of a small group is mostly noise (about
(bins - 1) / n for a field with no drift at all)."""
OFF_BY = 0.02
"""An expected share is called off when it lies outside the observed share's 95 % interval and
at least this far from it (a large cohort's narrow interval alone would flag differences too small to matter)."""
MAX_SITES = 30
"""Sites listed one by one (the largest); the others are summed in one row."""


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95 % interval of an observed share k / n."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def mean_interval(s: float, sq: float, n: int, lo: float = 0.0, hi: float = 1.0) -> tuple[float, float]:
    """The 95 % Student-t interval of a mean from its sum `s` and sum of squares `sq`, clipped to [lo, hi]."""
    if n < 2:
        return math.nan, math.nan
    mean = s / n
    var = max((sq - n * mean * mean) / (n - 1), 0.0)
    half = float(student_t.ppf(0.975, n - 1)) * math.sqrt(var / n)
    return max(lo, mean - half), min(hi, mean + half)


@dataclass
class GroupRow:
    """One group of people: its size and expected shares (with intervals when small)."""

    name: str
    n: int
    shares: np.ndarray  # (3,) mean probabilities
    lo: np.ndarray  # (3,) 95 % interval, NaN unless the group is small
    hi: np.ndarray
    change: float  # mean expected change in %-points (NaN for a class-margin model)

    @property
    def small(self) -> bool:
        """Under SMALL_GROUP people."""
        return self.n < SMALL_GROUP

    @property
    def hidden(self) -> bool:
        """Under MIN_SHOWN people: only the size is shown."""
        return self.n < MIN_SHOWN


def group_row(name: str, n: int, psum: np.ndarray, psq: np.ndarray, change_sum: float | None) -> GroupRow:
    """A GroupRow from a group's sums (intervals only for small groups)."""
    lo = np.full(len(psum), np.nan)
    hi = np.full(len(psum), np.nan)
    if n < SMALL_GROUP:
        for k in range(len(psum)):
            lo[k], hi[k] = mean_interval(float(psum[k]), float(psq[k]), n)
    change = change_sum / n if change_sum is not None and n else math.nan
    return GroupRow(name, n, psum / max(n, 1), lo, hi, change)


def group_rows(d, group: str) -> list[GroupRow]:
    """The groups of one grouping (pain condition, modality, protocol) with people in them."""
    agg = d.agg
    if group not in agg.group_n:
        return []
    ch = agg.group_change.get(group)
    return [group_row(level.replace("_", " "), int(agg.group_n[group][i]), agg.group_psum[group][i], agg.group_psq[group][i],
                      float(ch[i]) if ch is not None else None)
            for i, level in enumerate(d.group_levels[group]) if agg.group_n[group][i] > 0]


def named_sites(agg) -> list[str]:
    """The sites named in the cohort (without the rows whose site is not given)."""
    return sorted(k for k in agg.sites if k != NO_SITE)


def has_sites(agg) -> bool:
    """Whether the cohort names more than one site (the report then has a section per site)."""
    return len(named_sites(agg)) > 1


def shown_sites(agg) -> tuple[list[str], list[str]]:
    """(sites listed one by one, sorted by name; sites summed into one row): the MAX_SITES
    largest are listed, and the rows without a site come last."""
    names = named_sites(agg)
    listed = sorted(sorted(names, key=lambda s: -agg.sites[s].n)[:MAX_SITES])
    rest = [s for s in names if s not in listed]
    return listed + ([NO_SITE] if NO_SITE in agg.sites else []), rest


@dataclass
class SiteDrift:
    """A site's inputs against the training data: the largest PSI and the fields flagged."""

    judged: bool
    max_psi: float
    max_field: str | None
    flagged: list[str]


def site_drift(site, reference: dict) -> SiteDrift:
    """The PSI of every input of one site against the training reference."""
    psis = {}
    for name, counts in site.input_counts.items():
        ref = reference.get(name)
        v = psi_from_counts(ref, counts) if ref is not None else None
        if v is not None:
            psis[name] = v
    if site.n < SITE_DRIFT_MIN_N or not psis:
        return SiteDrift(False, math.nan, None, [])
    worst = max(psis, key=psis.get)
    return SiteDrift(True, psis[worst], worst, sorted(f for f, v in psis.items() if v > PSI_FLAG))


def site_rows(d) -> list[tuple[GroupRow, SiteDrift | None]]:
    """Each listed site's GroupRow and drift, then one row for the other sites (no drift)."""
    agg = d.agg
    change = is_change_model(agg.outputs)
    listed, rest = shown_sites(agg)
    rows = []
    for key in listed:
        s = agg.sites[key]
        rows.append((group_row(key or "site not given", s.n, s.p_sum, s.p_sq, s.change_sum if change else None),
                     site_drift(s, d.reference)))
    if rest:
        n = sum(agg.sites[k].n for k in rest)
        psum = sum(agg.sites[k].p_sum for k in rest)
        psq = sum(agg.sites[k].p_sq for k in rest)
        ch = sum(agg.sites[k].change_sum for k in rest)
        rows.append((group_row(f"{len(rest)} other sites", n, psum, psq, ch if change else None), None))
    return rows


@dataclass
class OutcomeRow:
    """Predictions against measured outcomes for one group of people."""

    name: str
    n: int
    observed: np.ndarray  # (3,) observed shares
    lo: np.ndarray  # (3,) Wilson 95 % interval of the observed shares
    hi: np.ndarray
    expected: np.ndarray  # (3,) mean predicted probabilities of the same people
    log_loss: float
    change_observed: float
    change_lo: float
    change_hi: float
    change_expected: float  # NaN for a class-margin model

    @property
    def off(self) -> list[int]:
        """The responses whose expected share lies outside the observed share's interval."""
        return [k for k in range(len(self.expected))
                if not self.lo[k] <= self.expected[k] <= self.hi[k] and abs(self.expected[k] - self.observed[k]) >= OFF_BY]


def outcome_row(name: str, o: OutcomeSums, change_model: bool) -> OutcomeRow:
    """An OutcomeRow from the sums of the people with a measured outcome."""
    n = o.n
    ci = np.array([wilson(float(k), n) for k in o.observed])
    c_lo, c_hi = mean_interval(o.observed_change_sum, o.observed_change_sq, n, -math.inf, math.inf)
    return OutcomeRow(name, n, o.observed / n, ci[:, 0], ci[:, 1], o.p_sum / n, o.log_loss_sum / n,
                      o.observed_change_sum / n, c_lo, c_hi, o.expected_change_sum / n if change_model else math.nan)


def outcome_rows(d, change_model: bool) -> list[OutcomeRow]:
    """The whole cohort, then each listed site with a measured outcome (sites only when
    the cohort has more than one)."""
    agg = d.agg
    if agg.outcome.n == 0:
        return []
    rows = [outcome_row("whole cohort", agg.outcome, change_model)]
    if has_sites(agg):
        for key in shown_sites(agg)[0]:
            if agg.sites[key].outcome.n:
                rows.append(outcome_row(key, agg.sites[key].outcome, change_model))
    return rows


def drivers(agg, k: int) -> list[tuple[str, float]]:
    """(field, mean |effect| on output k in the unit `effect_unit` names), largest first."""
    if agg.abs_contrib_sum is None or agg.n_contrib == 0:
        return []
    mean = agg.abs_contrib_sum[k] / agg.n_contrib
    shown = effect_values(agg.outputs[k], mean)
    order = np.argsort(-shown, kind="stable")
    return [(agg.fields[j], float(shown[j])) for j in order]
