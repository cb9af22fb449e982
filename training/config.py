"""Every tunable of a training run, with defaults. `--config FILE` (TOML or JSON)
overrides any subset; the effective config is logged to MLflow as parameters."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from data_contracts.fields import BEFORE_BOUT_PREDICTORS, DEFAULT_THRESHOLD_PCT, PREDICTORS
from features.derived import EXERCISE_DOSE, EXERCISE_LOAD, check_names
from features.interactions import PERSON_X_PROTOCOL, STRUCTURES


@dataclass(frozen=True)
class SearchSpace:
    """(low, high) bounds of each hyper-parameter the search draws."""

    max_depth: tuple[int, int] = (2, 6)
    learning_rate: tuple[float, float] = (0.04, 0.3)
    min_child_weight: tuple[float, float] = (1.0, 64.0)
    subsample: tuple[float, float] = (0.6, 1.0)
    colsample_bytree: tuple[float, float] = (0.5, 1.0)
    reg_lambda: tuple[float, float] = (0.1, 30.0)
    gamma: tuple[float, float] = (0.0, 2.0)


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (defaults here; `load_config` applies overrides)."""

    label_threshold_pct: float = DEFAULT_THRESHOLD_PCT
    model: str = "distributional"
    """`distributional`: XGBoost regression of the measured eih_pct and a second booster for
    the spread of the measured change around it (fitted to out-of-fold squared residuals),
    class probabilities from that person's normal distribution.
    `ordinal`: the same expected change with one spread for everyone.
    `multiclass`: one softmax margin per response class, fitted to the labels."""
    families: tuple[str, ...] = ("xgboost", "spline")
    """Model families the validation chooses between: `xgboost` (gradient-boosted trees, the
    searched configurations) and `spline` (an elastic-net regression of the change on B-splines
    of each field with the same normal link; training/spline.py), for the expected-change models.
    Held-out splits choose by the search's CV log-loss, repeated CV by its out-of-fold log-loss."""
    derived_features: tuple[str, ...] = (EXERCISE_DOSE, EXERCISE_LOAD)
    """Derived features added after the contract fields (features/derived.py); [] for the contract fields only."""
    use_after_bout_fields: bool = False
    """Also read the predictors measured after the bout (post-bout lactate). Such a model is for
    research: it cannot be used to choose a protocol (/recommend and `eih recommend` refuse it)."""
    validation: str = "auto"
    """`auto`: repeated cross-validation below `resampling_below` rows, a held-out test split at or
    above it; `repeated_cv` or `holdout` to force one (training/internal.py)."""
    resampling_below: int = 5000
    """Below this many rows a 20 % test split holds < 1,000 people, whose log-loss interval is wider
    than the differences between models; repeated CV uses every person for both fit and test."""
    cv_repeats: int = 5
    outer_folds: int = 5
    outer_folds_small: int = 10
    small_below: int = 1000
    """Below `small_below` rows repeated CV uses `outer_folds_small` folds: each fold's model then
    sees 90 % of the people instead of 80 %, and at a few hundred people that difference alone
    makes the internal estimate pessimistic (benchmarks/small_cohort_bench.py)."""

    def n_outer_folds(self, n_rows: int) -> int:
        """The outer folds of repeated cross-validation for a cohort of `n_rows`."""
        return self.outer_folds_small if n_rows < self.small_below else self.outer_folds
    test_fraction: float = 0.2
    cv_folds: int = 4
    n_trials: int = 30
    max_rounds: int = 800
    early_stopping_rounds: int = 40
    average_of: int = 5
    """The expected-change booster is the average of this many fits of the chosen configuration
    that differ only in their random seed, merged into one booster (training/averaging.py;
    explanations stay exact, and cost this many times one fit's); 1 for a single fit."""
    cost_tolerance: float = 0.0
    """Among candidates within this relative margin of the best CV log-loss, take the cheapest to
    explain (0: the best CV log-loss wins; explanation cost is reported, not traded)."""
    spread_max_depth: int = 3
    spread_learning_rate: float = 0.03
    spread_min_child_weight: float = 30.0
    spread_max_rounds: int = 400
    """The spread booster (distributional model): shallow, slow and strongly regularized,
    because the spread carries far less signal than the mean; rounds by early stopping."""
    calibration_min_gain: float = 0.0005
    """Apply the temperature/bias correction only if it lowers out-of-fold log-loss by at least this much."""
    monotone: bool = False
    """Constrain the expected change to move with the literature's firm directions
    (`tune.MONOTONE`: up with CPM and self-efficacy, down with catastrophizing and central
    sensitization) for every person and protocol; the spread stays free; the spline family is
    not searched (its curves are not constrained). Off by default:
    `benchmarks/model_bench.py --monotone` measures it against the free model."""
    interactions: str = PERSON_X_PROTOCOL
    """Which columns one tree of a booster may combine (features/interactions.py): the protocol
    with one person field or one group of fields read together ("person_x_protocol"), or any
    ("free"). `benchmarks/model_bench.py --interactions` measures both."""
    varying: bool = True
    """Blend the searched trees with a varying-coefficient regression of the expected change
    (each modality's dose and load effects linear in the person fields through one or two shared
    person indices or a full coefficient matrix, chosen by cross-validation; training/coefficients.py),
    distilled into trees of the same structure and merged into the one booster (training/varying.py); the blend's
    weight is chosen by out-of-fold log-loss, so cross-validation may keep the trees alone. Not
    with the spline family, the multiclass model or monotone constraints.
    `benchmarks/model_bench.py --varying both` measures it against the trees alone."""
    varying_min_rows: int = 5000
    """The blend only when the training rows number at least this many. Its gain was measured at
    20,000 people; at 300, where the weight is chosen on four folds of about 70 people, it cost one of
    two simulated cohorts 0.24 of capture on fresh people (benchmarks/RESULTS.md)."""
    bootstrap: int = 200
    risk_moderate: float = 0.20
    risk_high: float = 0.35
    nthread: int = 2
    search: SearchSpace = field(default_factory=SearchSpace)

    @property
    def ordinal(self) -> bool:
        """Whether the booster learns the measured change (ordinal and distributional models)."""
        return self.model in ("ordinal", "distributional")

    @property
    def predictors(self) -> tuple[str, ...]:
        """The contract predictors the model reads: those measured before the bout, unless
        `use_after_bout_fields`."""
        return PREDICTORS if self.use_after_bout_fields else BEFORE_BOUT_PREDICTORS

    @property
    def distributional(self) -> bool:
        """Whether the spread of the change has a booster of its own."""
        return self.model == "distributional"

    def flat(self) -> dict:
        """The config as flat MLflow parameters: derived_features joined by commas ("none" when
        empty) and each search range as `search_<name>` = "low-high"."""
        d = asdict(self)
        search = d.pop("search")
        d["derived_features"] = ",".join(self.derived_features) or "none"
        d["families"] = ",".join(self.families)
        d.update({f"search_{k}": f"{v[0]}-{v[1]}" for k, v in search.items()})
        return d


MODEL_KINDS = ("distributional", "ordinal", "multiclass")
FAMILIES = ("xgboost", "spline")
VALIDATIONS = ("auto", "repeated_cv", "holdout")


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """The defaults, overridden by the file at `path` (TOML if it ends in .toml, else JSON),
    then by the keyword `overrides` that are not None. Raises ValueError on an unknown key,
    an unknown derived feature or an unknown model kind."""
    cfg = TrainConfig()
    data: dict = {}
    if path is not None:
        p = Path(path)
        text = p.read_text()
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    data.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    if "search" in data:
        s = {k: tuple(v) for k, v in data.pop("search").items()}
        data["search"] = replace(SearchSpace(), **s)
    if "families" in data:
        data["families"] = tuple(data["families"])
        if not data["families"] or set(data["families"]) - set(FAMILIES):
            raise ValueError(f"families must be a non-empty list of {', '.join(FAMILIES)}")
    if "derived_features" in data:
        data["derived_features"] = tuple(data["derived_features"])
        check_names(data["derived_features"])
    cfg = replace(cfg, **data)
    if cfg.validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {', '.join(VALIDATIONS)}")
    if cfg.average_of < 1:
        raise ValueError("average_of must be at least 1")
    if cfg.interactions not in STRUCTURES:
        raise ValueError(f"interactions must be one of {', '.join(STRUCTURES)}")
    if not isinstance(cfg.varying, bool):
        raise ValueError("varying must be true or false")
    if cfg.varying_min_rows < 0:
        raise ValueError("varying_min_rows must be at least 0")
    if cfg.model not in MODEL_KINDS:
        raise ValueError(f"model must be one of {', '.join(MODEL_KINDS)}")
    return cfg
