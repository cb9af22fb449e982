"""The minimum sample size for developing a prediction model of a continuous outcome
(Riley et al. 2020, BMJ 368:m441, criteria for continuous outcomes), here the measured
change of the pain threshold:

1. expected shrinkage of the predictor effects >= 0.9:  n = p / ((S - 1) ln(1 - R2 / S));
2. small optimism in R2 (apparent - adjusted <= 0.05):   n = p (1 - R2) / 0.05 + p + 1;
3. the residual SD estimated within a multiplicative margin of 10 %:
   the smallest n with sqrt((n - p - 1) / chi2_{0.025, n-p-1}) < 1.1;
4. the mean outcome estimated within +/- 10 % of the outcome SD: n = (1.96 / 0.1)^2 (1 - R2).

p counts parameters honestly: each numeric predictor as the degrees of freedom of a
smooth term (4), each categorical one as its levels - 1, each derived feature as a
numeric one. Gradient-boosted trees spend more than that; the figure is a floor, not a
guarantee. R2 is the anticipated R-squared of the outcome (0.10 by default: EIH is
weakly predictable; the simulator's truth reaches about that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import chi2

from data_contracts.fields import BY_NAME

SPLINE_DF = 4
SHRINKAGE = 0.9
OPTIMISM = 0.05
SD_MARGIN = 1.1
MEAN_MARGIN = 0.1


@dataclass(frozen=True)
class SampleSize:
    """The four criteria's minimum n, the largest of them, and the inputs."""

    parameters: int
    r2: float
    shrinkage_n: int
    optimism_n: int
    residual_sd_n: int
    mean_n: int

    @property
    def minimum(self) -> int:
        return max(self.shrinkage_n, self.optimism_n, self.residual_sd_n, self.mean_n)

    def text(self, n_available: int) -> str:
        """One sentence for the console and the card."""
        verdict = "enough" if n_available >= self.minimum else "FEWER than needed: expect optimistic, unstable estimates"
        return (f"minimum sample size (Riley et al. 2020, continuous outcome, {self.parameters} parameters, anticipated"
                f" R2 {self.r2:.2f}): {self.minimum:,} (shrinkage {self.shrinkage_n:,}, optimism {self.optimism_n:,},"
                f" residual SD {self.residual_sd_n:,}, mean {self.mean_n:,}); {n_available:,} available: {verdict}")


def count_parameters(features: tuple[str, ...]) -> int:
    """Model parameters of a smooth additive model of these features."""
    p = 0
    for name in features:
        f = BY_NAME.get(name)
        p += (len(f.categories) - 1) if f is not None and f.kind == "category" else SPLINE_DF
    return p


def _residual_sd_n(p: int) -> int:
    n = p + 3
    while math.sqrt((n - p - 1) / chi2.ppf(0.025, n - p - 1)) >= SD_MARGIN:
        n += max(1, n // 50)
    return n


def minimum_sample_size(features: tuple[str, ...], r2: float = 0.10) -> SampleSize:
    """The four criteria for a model of `features` anticipating R-squared `r2`."""
    p = count_parameters(features)
    shrink = math.ceil(p / ((SHRINKAGE - 1) * math.log(1 - r2 / SHRINKAGE)))
    optimism = math.ceil(p * (1 - r2) / OPTIMISM + p + 1)
    mean = math.ceil((1.96 / MEAN_MARGIN) ** 2 * (1 - r2))
    return SampleSize(p, r2, shrink, optimism, _residual_sd_n(p), mean)
